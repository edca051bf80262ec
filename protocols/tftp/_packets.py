"""The TFTP packet codec: RRQ, WRQ, DATA, ACK, ERROR (RFC 1350) and OACK (RFC 2347).

``decode`` turns any datagram into one of the packet classes or raises ``MalformedPacket``;
``encode`` is its inverse and raises ``LocalProtocolError`` for packets that cannot be sent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from ._errors import LocalProtocolError, MalformedPacket

#: Largest block a DATA packet may carry (RFC 2348) and so the largest datagram decoded.
MAX_BLKSIZE = 65464
MAX_DATAGRAM = MAX_BLKSIZE + 4
#: Bounds on requests, which arrive from anyone before any session exists.
MAX_REQUEST = 1024
MAX_FILENAME = 512
MAX_OPTIONS = 16
MAX_OPTION_FIELD = 64
MAX_ERROR_MESSAGE = 512


class Opcode(enum.IntEnum):
    """The first two octets of every packet."""

    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


def _frozen_options(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class ReadRequest:
    """RRQ: a client asks to read ``filename``; ``options`` as sent (RFC 2347)."""

    filename: str
    mode: str = "octet"
    options: dict[str, str] = attrs.field(factory=dict, converter=_frozen_options)


@attrs.frozen
class WriteRequest:
    """WRQ: a client asks to write ``filename``."""

    filename: str
    mode: str = "octet"
    options: dict[str, str] = attrs.field(factory=dict, converter=_frozen_options)


@attrs.frozen
class Data:
    """DATA: block ``block`` (16-bit, wraps to 0) of a transfer."""

    block: int
    data: bytes


@attrs.frozen
class Ack:
    """ACK: acknowledges block ``block`` (0 acknowledges a WRQ or an OACK)."""

    block: int


@attrs.frozen
class Error:
    """ERROR: ends a transfer with ``code`` and a human-readable ``message``."""

    code: int
    message: str = ""


@attrs.frozen
class OptionAck:
    """OACK: the options the server accepted, with the values it chose (RFC 2347)."""

    options: dict[str, str] = attrs.field(factory=dict, converter=_frozen_options)


Packet = ReadRequest | WriteRequest | Data | Ack | Error | OptionAck


# -- decoding -------------------------------------------------------------------------------------


def _strings(body: bytes) -> list[bytes]:
    """Split NUL-terminated fields; the body must end with NUL."""
    if not body.endswith(b"\0"):
        raise MalformedPacket("field not NUL-terminated")
    return body[:-1].split(b"\0")


def _ascii(field: bytes, what: str) -> str:
    if len(field) > MAX_OPTION_FIELD:
        raise MalformedPacket(f"{what} longer than {MAX_OPTION_FIELD} octets")
    try:
        return field.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedPacket(f"{what} is not ASCII") from None


def _decode_options(fields: list[bytes]) -> dict[str, str]:
    if len(fields) % 2:
        raise MalformedPacket("option without a value")
    if len(fields) // 2 > MAX_OPTIONS:
        raise MalformedPacket(f"more than {MAX_OPTIONS} options")
    options: dict[str, str] = {}
    for i in range(0, len(fields), 2):
        name = _ascii(fields[i], "option name")
        if not name:
            raise MalformedPacket("empty option name")
        if name.lower() in (n.lower() for n in options):
            raise MalformedPacket(f"option {name!r} given twice")
        options[name] = _ascii(fields[i + 1], "option value")
    return options


def _decode_request(opcode: int, datagram: bytes) -> ReadRequest | WriteRequest:
    if len(datagram) > MAX_REQUEST:
        raise MalformedPacket(f"request longer than {MAX_REQUEST} octets")
    fields = _strings(datagram[2:])
    if len(fields) < 2:
        raise MalformedPacket("request without filename and mode")
    raw_name = fields[0]
    if not raw_name:
        raise MalformedPacket("empty filename")
    if len(raw_name) > MAX_FILENAME:
        raise MalformedPacket(f"filename longer than {MAX_FILENAME} octets")
    # surrogateescape keeps every byte, so content roots can refuse odd encodings themselves
    filename = raw_name.decode("utf-8", "surrogateescape")
    mode = _ascii(fields[1], "mode")
    if not mode:
        raise MalformedPacket("empty mode")
    options = _decode_options(fields[2:])
    cls = ReadRequest if opcode == Opcode.RRQ else WriteRequest
    return cls(filename, mode, options)


def decode(datagram: bytes | bytearray | memoryview) -> Packet:
    """Decode one datagram; raises ``MalformedPacket`` for anything that is not a TFTP packet."""
    datagram = bytes(datagram)
    size = len(datagram)
    if size < 2:
        raise MalformedPacket("datagram shorter than an opcode")
    if size > MAX_DATAGRAM:
        raise MalformedPacket(f"datagram longer than {MAX_DATAGRAM} octets")
    opcode = (datagram[0] << 8) | datagram[1]
    if opcode == Opcode.DATA:
        if size < 4:
            raise MalformedPacket("DATA without a block number")
        return Data((datagram[2] << 8) | datagram[3], datagram[4:])
    if opcode == Opcode.ACK:
        if size != 4:
            raise MalformedPacket("ACK is not four octets")
        return Ack((datagram[2] << 8) | datagram[3])
    if opcode in (Opcode.RRQ, Opcode.WRQ):
        return _decode_request(opcode, datagram)
    if opcode == Opcode.ERROR:
        if size < 5:
            raise MalformedPacket("ERROR without a code")
        # the message is informative only: tolerate a missing NUL and any bytes
        message = datagram[4 : 4 + MAX_ERROR_MESSAGE].split(b"\0", 1)[0]
        return Error((datagram[2] << 8) | datagram[3], message.decode("utf-8", "replace"))
    if opcode == Opcode.OACK:
        if size > MAX_REQUEST:
            raise MalformedPacket(f"OACK longer than {MAX_REQUEST} octets")
        return OptionAck(_decode_options(_strings(datagram[2:]) if size > 2 else []))
    raise MalformedPacket(f"unknown opcode {opcode}")


# -- encoding -------------------------------------------------------------------------------------


def _field(text: str, what: str, *, errors: str = "strict", limit: int = MAX_OPTION_FIELD) -> bytes:
    try:
        raw = text.encode("utf-8", errors)
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} cannot be encoded") from None
    if b"\0" in raw:
        raise LocalProtocolError(f"{what} contains NUL")
    if len(raw) > limit:
        raise LocalProtocolError(f"{what} longer than {limit} octets")
    return raw + b"\0"


def _encode_options(options: Mapping[str, str]) -> bytes:
    if len(options) > MAX_OPTIONS:
        raise LocalProtocolError(f"more than {MAX_OPTIONS} options")
    parts = []
    for name, value in options.items():
        if not name or not name.isascii() or not value.isascii():
            raise LocalProtocolError(f"option {name!r} is empty or not ASCII")
        parts.append(_field(name, "option name") + _field(value, "option value"))
    return b"".join(parts)


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"{what} {value} out of 0..65535")
    return value.to_bytes(2, "big")


def encode(packet: Packet) -> bytes:
    """Encode a packet; raises ``LocalProtocolError`` if it breaks the protocol's bounds."""
    if isinstance(packet, Data):
        if len(packet.data) > MAX_BLKSIZE:
            raise LocalProtocolError(f"DATA longer than {MAX_BLKSIZE} octets")
        return b"\0\3" + _u16(packet.block, "block") + packet.data
    if isinstance(packet, Ack):
        return b"\0\4" + _u16(packet.block, "block")
    if isinstance(packet, ReadRequest | WriteRequest):
        opcode = b"\0\1" if isinstance(packet, ReadRequest) else b"\0\2"
        if not packet.filename or not packet.mode:
            raise LocalProtocolError("empty filename or mode")
        if not packet.mode.isascii():
            raise LocalProtocolError("mode is not ASCII")
        out = (
            opcode
            + _field(packet.filename, "filename", errors="surrogateescape", limit=MAX_FILENAME)
            + _field(packet.mode, "mode")
            + _encode_options(packet.options)
        )
        if len(out) > MAX_REQUEST:
            raise LocalProtocolError(f"request longer than {MAX_REQUEST} octets")
        return out
    if isinstance(packet, Error):
        return (
            b"\0\5"
            + _u16(packet.code, "error code")
            + _field(packet.message, "message", errors="replace", limit=MAX_ERROR_MESSAGE)
        )
    if isinstance(packet, OptionAck):
        out = b"\0\6" + _encode_options(packet.options)
        if len(out) > MAX_REQUEST:
            raise LocalProtocolError(f"OACK longer than {MAX_REQUEST} octets")
        return out
    raise LocalProtocolError(f"not a TFTP packet: {packet!r}")
