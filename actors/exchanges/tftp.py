"""``on.tftp``: declared, with no routing keys.

The conventions define nothing on this exchange and RackHD never used it. The
TFTP server reports transfers on ``on.events`` instead (``tftp.success.<node>``
and ``tftp.failure.<node>``, see ``events``). The definition keeps the exchange
in the list of nine (``rackbus exchanges``), all of which ``rackbus serve``
declares (durable, topic) at start, as RackHD's services did.
"""

from __future__ import annotations

from ..convention import ExchangeDef

NAME = "on.tftp"

EXCHANGE = ExchangeDef(
    NAME,
    "TFTP",
    "Nothing defined: TFTP transfers are reported on on.events",
    (),
)
