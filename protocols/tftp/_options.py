"""Option negotiation (RFC 2347): ``blksize`` (2348), ``timeout`` and ``tsize`` (2349),
``windowsize`` (7440).

The server side picks what it accepts from a request; the client side checks an OACK against what
it asked for. Unknown options and unusable values are ignored, as RFC 2347 allows.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._errors import RemoteProtocolError
from ._packets import MAX_BLKSIZE

MIN_BLKSIZE = 8
DEFAULT_BLKSIZE = 512
MAX_WINDOWSIZE = 65535
MAX_TIMEOUT = 255


@attrs.frozen
class TransferOptions:
    """The parameters one transfer runs with, after negotiation."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = 1.0
    tsize: int | None = None


@attrs.frozen
class NegotiationLimits:
    """What a server is willing to accept.

    ``max_window_bytes`` caps windowsize x blksize so a window fits the peer's default UDP receive
    buffer (about 208 KiB on Linux); a larger window only overruns it and forces retransmissions.
    A ``timeout`` asked above ``max_timeout`` is declined (left out of the OACK, the server's
    ``timeout`` applies): with the retries, a client's 255 s would hold a session for minutes.
    """

    max_blksize: int = MAX_BLKSIZE
    max_windowsize: int = 64
    max_window_bytes: int = 128 * 1024
    timeout: float = 1.0
    max_timeout: int = 30
    max_tsize: int | None = None


def _int(value: str) -> int | None:
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def negotiate(
    requested: Mapping[str, str],
    *,
    size: int | None,
    writing: bool,
    limits: NegotiationLimits,
) -> tuple[TransferOptions, dict[str, str]]:
    """Server side: the options a transfer runs with, and those to put in the OACK.

    ``size`` is the file's size for a read (``None`` if unknown, then ``tsize`` is not answered).
    For a write, ``tsize`` is the size the client announces; it is echoed back.
    An empty OACK dict means no OACK is sent and the transfer starts at once with defaults.
    """
    wanted = {name.lower(): value for name, value in requested.items()}
    accepted: dict[str, str] = {}
    blksize = DEFAULT_BLKSIZE
    windowsize = 1
    timeout = limits.timeout
    tsize: int | None = size if not writing else None

    value = _int(wanted.get("blksize", ""))
    if value is not None and value >= MIN_BLKSIZE:
        blksize = min(value, limits.max_blksize)
        accepted["blksize"] = str(blksize)
    value = _int(wanted.get("timeout", ""))
    if value is not None and 1 <= value <= min(MAX_TIMEOUT, limits.max_timeout):
        timeout = float(value)
        accepted["timeout"] = str(value)
    value = _int(wanted.get("tsize", ""))
    if value is not None:
        if writing:
            tsize = value
            accepted["tsize"] = str(value)
        elif size is not None:
            accepted["tsize"] = str(size)
    value = _int(wanted.get("windowsize", ""))
    if value is not None and 1 <= value <= MAX_WINDOWSIZE:
        windowsize = max(1, min(value, limits.max_windowsize, limits.max_window_bytes // blksize))
        accepted["windowsize"] = str(windowsize)
    return TransferOptions(blksize, windowsize, timeout, tsize), accepted


def request_options(
    *,
    blksize: int | None = None,
    windowsize: int | None = None,
    timeout: int | None = None,
    tsize: int | None = None,
) -> dict[str, str]:
    """Client side: the options field of a request asking for these values."""
    options: dict[str, str] = {}
    if blksize is not None:
        options["blksize"] = str(blksize)
    if timeout is not None:
        options["timeout"] = str(timeout)
    if tsize is not None:
        options["tsize"] = str(tsize)
    if windowsize is not None:
        options["windowsize"] = str(windowsize)
    return options


def accept_oack(
    requested: Mapping[str, str], oack: Mapping[str, str], *, default_timeout: float
) -> TransferOptions:
    """Client side: the options an OACK settles, or ``RemoteProtocolError`` if it breaks RFC 2347.

    A server may only answer options that were asked for, may lower ``blksize`` and
    ``windowsize`` but never raise them, and must echo ``timeout`` unchanged.
    """
    asked = {name.lower(): value for name, value in requested.items()}
    got = {name.lower(): value for name, value in oack.items()}
    extra = set(got) - set(asked)
    if extra:
        raise RemoteProtocolError(f"OACK names options not requested: {sorted(extra)}")

    def number(name: str, low: int, high: int) -> int | None:
        if name not in got:
            return None
        value = _int(got[name])
        if value is None or not low <= value <= high:
            raise RemoteProtocolError(f"OACK {name}={got[name]!r} out of range")
        return value

    blksize = number("blksize", MIN_BLKSIZE, int(asked.get("blksize", "0") or 0))
    windowsize = number("windowsize", 1, int(asked.get("windowsize", "0") or 0))
    timeout = number("timeout", 1, MAX_TIMEOUT)
    if timeout is not None and str(timeout) != asked.get("timeout"):
        raise RemoteProtocolError("OACK changed the timeout")
    tsize = number("tsize", 0, 2**63)
    return TransferOptions(
        blksize=blksize or DEFAULT_BLKSIZE,
        windowsize=windowsize or 1,
        timeout=float(timeout) if timeout is not None else default_timeout,
        tsize=tsize,
    )
