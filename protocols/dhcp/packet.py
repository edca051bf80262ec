"""The DHCP message (RFC 2131 section 2) and its wire codec.

Parsing is bounded and total: any input that is not a well-formed message raises
:class:`MalformedPacket` and nothing else. Options that span several instances
(RFC 3396) are joined; options carried in ``file``/``sname`` under option 52
(overload) are read and the fields reported empty. Encoding splits long options
and, when the message would exceed ``max_size``, overloads ``file`` and ``sname``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Final

import attrs

from ._errors import LocalProtocolError, MalformedPacket
from .options import (
    ClientMachineId,
    MessageType,
    Option,
    OptionCode,
    OptionValue,
    RelayAgentInfo,
    decode_value,
    encode_value,
)

BOOTREQUEST: Final = 1
BOOTREPLY: Final = 2
BROADCAST_FLAG: Final = 0x8000
MAGIC_COOKIE: Final = b"\x63\x82\x53\x63"
MAX_PACKET_SIZE: Final = 8192
"""Longest datagram parsed or written (a DHCP message fits an Ethernet frame in practice)."""
MAX_OPTION_INSTANCES: Final = 1024
"""Most option instances (fragments included) one message may carry."""
MIN_PACKET_SIZE: Final = 300
"""Encoded messages are zero-padded to the BOOTP minimum that old clients expect."""
FIXED_SIZE: Final = 240
"""The fixed header plus the magic cookie."""

ZERO: Final = IPv4Address(0)
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s4s")


def _address(raw: bytes) -> IPv4Address:
    if raw == b"\0\0\0\0":
        return ZERO
    return IPv4Address(raw)


def _options_tuple(value: Iterable[Option]) -> tuple[Option, ...]:
    return tuple(value)


@attrs.frozen
class Packet:
    """One DHCP message. ``chaddr`` holds ``min(hlen, 16)`` bytes; ``sname``/``file`` have no
    trailing NULs. ``options`` keep their order; each code appears at most once."""

    op: int = BOOTREQUEST
    xid: int = 0
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    chaddr: bytes = b""
    sname: bytes = b""
    file: bytes = b""
    options: tuple[Option, ...] = attrs.field(default=(), converter=_options_tuple)

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        """Decode one datagram; raises :class:`MalformedPacket` for anything else."""
        return parse(data)

    def encode(self, *, max_size: int = MAX_PACKET_SIZE) -> bytes:
        """The wire form; see :func:`encode`."""
        return encode(self, max_size=max_size)

    @property
    def broadcast(self) -> bool:
        """The client asked for broadcast replies (flags bit 15)."""
        return bool(self.flags & BROADCAST_FLAG)

    @property
    def mac(self) -> str:
        """``chaddr`` as lower-case colon-separated hex (the lease table's key)."""
        return self.chaddr.hex(":")

    def get(self, code: int) -> OptionValue | None:
        """The value of option ``code``, or ``None`` when absent."""
        for option in self.options:
            if option.code == code:
                return option.value
        return None

    def replace_options(self, *options: Option) -> Packet:
        """A copy with these options set (replacing same-code ones, appended otherwise)."""
        new = {o.code: o for o in options}
        kept = [new.pop(o.code, o) for o in self.options]
        return attrs.evolve(self, options=(*kept, *new.values()))

    @property
    def message_type(self) -> MessageType | None:
        """Option 53, when present and valid."""
        value = self.get(OptionCode.MESSAGE_TYPE)
        return value if isinstance(value, MessageType) else None

    @property
    def requested_ip(self) -> IPv4Address | None:
        """Option 50."""
        value = self.get(OptionCode.REQUESTED_IP)
        return value if isinstance(value, IPv4Address) else None

    @property
    def server_id(self) -> IPv4Address | None:
        """Option 54."""
        value = self.get(OptionCode.SERVER_ID)
        return value if isinstance(value, IPv4Address) else None

    @property
    def hostname(self) -> str | None:
        """Option 12, NULs stripped."""
        value = self.get(OptionCode.HOSTNAME)
        return value.rstrip("\0") if isinstance(value, str) else None

    @property
    def vendor_class(self) -> str | None:
        """Option 60 (``PXEClient:Arch:00000:UNDI:002001`` and the like), NULs stripped."""
        value = self.get(OptionCode.VENDOR_CLASS_ID)
        return value.rstrip("\0") if isinstance(value, str) else None

    @property
    def user_class(self) -> bytes | None:
        """Option 77 as sent (iPXE sends ``b"iPXE"``)."""
        value = self.get(OptionCode.USER_CLASS)
        return value if isinstance(value, bytes) else None

    @property
    def client_id(self) -> bytes | None:
        """Option 61 (type byte included)."""
        value = self.get(OptionCode.CLIENT_ID)
        return value if isinstance(value, bytes) else None

    @property
    def architectures(self) -> tuple[int, ...]:
        """Option 93: the client's architecture types, first preferred; empty when absent."""
        value = self.get(OptionCode.CLIENT_ARCH)
        if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
            return tuple(v for v in value if isinstance(v, int))
        return ()

    @property
    def machine_id(self) -> ClientMachineId | None:
        """Option 97."""
        value = self.get(OptionCode.CLIENT_MACHINE_ID)
        return value if isinstance(value, ClientMachineId) else None

    @property
    def relay_agent_info(self) -> RelayAgentInfo | None:
        """Option 82."""
        value = self.get(OptionCode.RELAY_AGENT_INFO)
        return value if isinstance(value, RelayAgentInfo) else None

    @property
    def parameter_request_list(self) -> tuple[int, ...]:
        """Option 55; empty when absent."""
        value = self.get(OptionCode.PARAMETER_REQUEST_LIST)
        if isinstance(value, tuple):
            return tuple(v for v in value if isinstance(v, int))
        return ()

    @property
    def max_message_size(self) -> int | None:
        """Option 57: the longest reply the client accepts (IP and UDP headers included)."""
        value = self.get(OptionCode.MAX_MESSAGE_SIZE)
        return value if isinstance(value, int) else None


def _scan(buf: bytes, start: int, end: int, parts: dict[int, list[bytes]], count: int) -> int:
    """Collect option instances of ``buf[start:end]`` into ``parts``; returns the new count."""
    i = start
    while i < end:
        code = buf[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        if i + 1 >= end:
            raise MalformedPacket(f"option {code} has no length byte")
        length = buf[i + 1]
        if i + 2 + length > end:
            raise MalformedPacket(f"option {code} runs past its field")
        count += 1
        if count > MAX_OPTION_INSTANCES:
            raise MalformedPacket("too many options")
        parts.setdefault(code, []).append(buf[i + 2 : i + 2 + length])
        i += 2 + length
    return count


def parse(data: bytes) -> Packet:
    """Decode one DHCP datagram (see the module docstring for the rules)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"parse takes bytes, not {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if size > MAX_PACKET_SIZE:
        raise MalformedPacket(f"{size} bytes is over the {MAX_PACKET_SIZE}-byte bound")
    if size < FIXED_SIZE:
        raise MalformedPacket(f"{size} bytes is shorter than the fixed header")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file, cookie) = (
        _HEADER.unpack_from(data)
    )
    if cookie != MAGIC_COOKIE:
        raise MalformedPacket("no DHCP magic cookie")
    parts: dict[int, list[bytes]] = {}
    count = _scan(data, FIXED_SIZE, size, parts, 0)
    overload_parts = parts.pop(OptionCode.OVERLOAD, None)
    if overload_parts is not None:
        raw = b"".join(overload_parts)
        if len(raw) != 1 or raw[0] not in (1, 2, 3):
            raise MalformedPacket("option 52 (overload) must be 1, 2 or 3")
        if raw[0] & 1:
            count = _scan(file, 0, len(file), parts, count)
            file = b""
        if raw[0] & 2:
            _scan(sname, 0, len(sname), parts, count)
            sname = b""
        parts.pop(OptionCode.OVERLOAD, None)
    options = tuple(_decoded(code, b"".join(p)) for code, p in parts.items())
    return Packet(
        op=op,
        xid=xid,
        htype=htype,
        hlen=hlen,
        hops=hops,
        secs=secs,
        flags=flags,
        ciaddr=_address(ci),
        yiaddr=_address(yi),
        siaddr=_address(si),
        giaddr=_address(gi),
        chaddr=chaddr[: min(hlen, 16)],
        sname=sname.rstrip(b"\0"),
        file=file.rstrip(b"\0"),
        options=options,
    )


@functools.lru_cache(maxsize=4096)
def _decoded(code: int, data: bytes) -> Option:
    """One option from its bytes; clients of one kind send the same ones, so decoding is
    remembered (every decoded value is immutable)."""
    return Option(code, decode_value(code, data))


def _instances(option: Option) -> tuple[bytes, ...]:
    """The wire instances of one option: long values split in 255-byte pieces (RFC 3396).

    Servers send the same options (server id, lease time, routers...) in every reply, so
    the encoding of hashable values is remembered (keyed by the value's type too, so that
    ``True`` is never taken for ``1``).
    """
    value = option.value
    try:
        return _encoded_instances(option.code, type(value).__qualname__, value)
    except TypeError:  # an unhashable value (a list where a tuple belongs): refused below
        return _encode_instances(option.code, value)


@functools.lru_cache(maxsize=4096)
def _encoded_instances(code: int, kind: str, value: OptionValue) -> tuple[bytes, ...]:
    return _encode_instances(code, value)


def _encode_instances(code: int, value: OptionValue) -> tuple[bytes, ...]:
    if not 1 <= code <= 254 or code == OptionCode.OVERLOAD:
        raise LocalProtocolError(f"option code {code} cannot be set (52 is chosen by encode)")
    data = encode_value(code, value)
    if not data:
        return (bytes((code, 0)),)
    chunks = (data[i : i + 255] for i in range(0, len(data), 255))
    return tuple(bytes((code, len(chunk))) + chunk for chunk in chunks)


def _fixed(packet: Packet, sname: bytes, file: bytes) -> bytes:
    for name, value in (("sname", sname), ("file", file), ("chaddr", packet.chaddr)):
        limit = {"sname": 64, "file": 128, "chaddr": 16}[name]
        if len(value) > limit:
            raise LocalProtocolError(f"{name} holds at most {limit} bytes")
    try:
        return _HEADER.pack(
            packet.op,
            packet.htype,
            packet.hlen,
            packet.hops,
            packet.xid,
            packet.secs,
            packet.flags,
            packet.ciaddr.packed,
            packet.yiaddr.packed,
            packet.siaddr.packed,
            packet.giaddr.packed,
            packet.chaddr,
            sname,
            file,
            MAGIC_COOKIE,
        )
    except (struct.error, AttributeError) as exc:
        raise LocalProtocolError(f"bad header field: {exc}") from exc


def encode(packet: Packet, *, max_size: int = MAX_PACKET_SIZE) -> bytes:
    """The wire form of ``packet``, at most ``max_size`` bytes (at least 300, zero-padded).

    When the options do not fit, the ones that do not are moved to ``file`` and then
    ``sname`` (option 52), which must then be empty. Raises :class:`LocalProtocolError`
    when a value does not suit its code or the message cannot fit.
    """
    max_size = min(max_size, MAX_PACKET_SIZE)
    seen: set[int] = set()
    instances: list[bytes] = []
    for option in packet.options:
        if option.code in seen:
            raise LocalProtocolError(f"option {option.code} appears twice")
        seen.add(option.code)
        instances.extend(_instances(option))
    if len(instances) > MAX_OPTION_INSTANCES:
        raise LocalProtocolError("too many options")
    body = b"".join(instances)
    if FIXED_SIZE + len(body) + 1 <= max_size:
        out = _fixed(packet, packet.sname, packet.file) + body + b"\xff"
    else:
        out = _overloaded(packet, instances, max_size)
    if len(out) < MIN_PACKET_SIZE:
        out += bytes(MIN_PACKET_SIZE - len(out))
    return out


def _overloaded(packet: Packet, instances: list[bytes], max_size: int) -> bytes:
    """Spread option instances over the options field, ``file`` and ``sname`` in that order."""
    fields: list[bytearray] = [bytearray(), bytearray(), bytearray()]
    # Room for option 52 (3 bytes) and END in the options field; END in file and sname.
    room = [max_size - FIXED_SIZE - 4, 127, 63]
    usable = [True, not packet.file, not packet.sname]
    which = 0
    for instance in instances:
        while which < 3 and (not usable[which] or len(fields[which]) + len(instance) > room[which]):
            which += 1
        if which == 3:
            raise LocalProtocolError(f"the options do not fit in {max_size} bytes")
        fields[which] += instance
    overload = (1 if fields[1] else 0) | (2 if fields[2] else 0)
    file = bytes(fields[1]) + b"\xff" if fields[1] else packet.file
    sname = bytes(fields[2]) + b"\xff" if fields[2] else packet.sname
    return _fixed(packet, sname, file) + bytes((52, 1, overload)) + bytes(fields[0]) + b"\xff"
