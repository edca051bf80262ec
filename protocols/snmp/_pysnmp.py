"""pysnmp's side of a request: register an agent with the engine once, then send PDUs to it.

hlapi's ``get_cmd``/``next_cmd``/``bulk_cmd`` redo two things on every call that numeric OIDs
do not need there. They re-check the agent's registration in the engine's configuration
tables (the LCD), and they resolve every request OID against a MIB view, which on first use
builds pysmi's MIB compiler when pysmi is installed (most of a second). Here registration is
a separate step whose result the client caches, and requests go straight to pysnmp's command
generators with plain ``(arcs, None)`` varbinds.

pysnmp never retransmits on its own here: agents are registered with no retries, and the
client sends each try itself, so nothing goes out for a request once the client gives up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pysnmp.carrier.asyncio.dgram import (  # type: ignore[import-untyped, unused-ignore]
    udp,
    udp6,
)
from pysnmp.carrier.error import CarrierError  # type: ignore[import-untyped, unused-ignore]
from pysnmp.entity.rfc3413 import cmdgen  # type: ignore[import-untyped, unused-ignore]
from pysnmp.hlapi.v3arch import asyncio as _hl  # type: ignore[import-untyped, unused-ignore]
from pysnmp.hlapi.v3arch.asyncio.lcd import (  # type: ignore[import-untyped, unused-ignore]
    CommandGeneratorLcdConfigurator,
)
from pysnmp.proto import errind  # type: ignore[import-untyped, unused-ignore]

from ._auth import AuthProtocol, CommunityAuth, PrivProtocol, UsmAuth
from ._oid import Oid

#: The command generators hlapi uses for GET, GETNEXT and GETBULK (same error handling).
GET: Any = cmdgen.GetCommandGenerator
NEXT: Any = cmdgen.NextCommandGenerator
BULK: Any = cmdgen.BulkCommandGenerator

#: pysnmp's answer: error indication, error status, error index and (name, value) pairs.
Response = tuple[Any, Any, Any, Sequence[Any]]

_LCD = CommandGeneratorLcdConfigurator()
#: The transport domains hlapi's UDP targets register the engine's sockets under.
_DOMAINS = (udp.DOMAIN_NAME, udp6.DOMAIN_NAME)

_AUTH_PROTOCOLS = {
    AuthProtocol.MD5: _hl.USM_AUTH_HMAC96_MD5,
    AuthProtocol.SHA: _hl.USM_AUTH_HMAC96_SHA,
    AuthProtocol.SHA224: _hl.USM_AUTH_HMAC128_SHA224,
    AuthProtocol.SHA256: _hl.USM_AUTH_HMAC192_SHA256,
    AuthProtocol.SHA384: _hl.USM_AUTH_HMAC256_SHA384,
    AuthProtocol.SHA512: _hl.USM_AUTH_HMAC384_SHA512,
}
_PRIV_PROTOCOLS = {
    PrivProtocol.DES: _hl.USM_PRIV_CBC56_DES,
    PrivProtocol.TRIPLE_DES: _hl.USM_PRIV_CBC168_3DES,
    PrivProtocol.AES128: _hl.USM_PRIV_CFB128_AES,
    PrivProtocol.AES192: _hl.USM_PRIV_CFB192_AES,
    PrivProtocol.AES256: _hl.USM_PRIV_CFB256_AES,
}


def pysnmp_auth(auth: CommunityAuth | UsmAuth) -> Any:
    """hlapi's credentials object for ``auth`` (v2c for a community)."""
    if isinstance(auth, CommunityAuth):
        return _hl.CommunityData(auth.community, mpModel=1)
    return _hl.UsmUserData(
        auth.user,
        authKey=auth.auth_key,
        privKey=auth.priv_key,
        authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol] if auth.auth_key else _hl.USM_AUTH_NONE,
        privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol] if auth.priv_key else _hl.USM_PRIV_NONE,
    )


async def transport(host: str, port: int, timeout: float) -> Any:
    """hlapi's UDP target for an agent (its address resolved), with one try of ``timeout``
    seconds and no retries; runs on the asyncio loop."""
    return await _hl.UdpTransportTarget.create((host, port), timeout=timeout, retries=0)


async def register(engine: Any, auth: CommunityAuth | UsmAuth, transport: Any) -> str:
    """Add ``auth`` and the agent of ``transport`` to the engine's tables (again if a v3 user's
    keys changed; otherwise nothing is written); the target name to send requests to.

    A coroutine because it must run on the asyncio loop: the first registration opens the
    engine's UDP socket there.
    """
    target_name, _params = _LCD.configure(engine, pysnmp_auth(auth), transport)
    return str(target_name)


async def send(
    engine: Any,
    generator: Any,
    target_name: str,
    context: str,
    pdu_args: Sequence[Any],
    oids: Sequence[Oid],
) -> Response:
    """Send one request PDU to a registered target, once, and wait for pysnmp's answer (or its
    timeout indication); runs on the asyncio loop."""
    answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def done(
        engine: Any, handle: Any, indication: Any, status: Any, index: Any, varbinds: Any, ctx: Any
    ) -> None:
        if not answer.done():
            answer.set_result((indication, status, index, varbinds))

    varbinds = [(oid.arcs, None) for oid in oids]
    generator().send_varbinds(engine, target_name, None, context, *pdu_args, varbinds, done)
    return await answer


def timed_out(response: Response) -> bool:
    """Whether pysnmp gave up waiting for an answer to the request."""
    return isinstance(response[0], errind.RequestTimedOut)


def stop_receiving(engine: Any) -> None:
    """Close the engine's sockets, so that no more datagrams are read; the transports stay
    registered, so a datagram already read is still handled as usual."""
    dispatcher = engine.transport_dispatcher
    if dispatcher is None:
        return
    for domain in _DOMAINS:
        try:
            dispatcher.get_transport(domain).close_transport()
        except CarrierError:  # no socket of that kind
            continue
