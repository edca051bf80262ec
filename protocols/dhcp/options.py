"""DHCP options (RFC 2132 and friends): codes, typed values, and their wire form.

Each known option code has a *kind* that says how its bytes map to a Python value
(an address, a list of addresses, an integer, text, ...). A value that does not fit
its kind on the wire (wrong length, bad UTF-8) is kept as raw ``bytes`` rather than
rejecting the whole packet; unknown codes are always raw ``bytes``. Raw bytes are
re-emitted exactly as received.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TypeAlias

import attrs

from ._errors import LocalProtocolError


class MessageType(enum.IntEnum):
    """Option 53 values (RFC 2132 9.6, RFC 4388, RFC 6926, RFC 3203)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8
    FORCERENEW = 9
    LEASEQUERY = 10
    LEASEUNASSIGNED = 11
    LEASEUNKNOWN = 12
    LEASEACTIVE = 13
    BULKLEASEQUERY = 14
    LEASEQUERYDONE = 15
    ACTIVELEASEQUERY = 16
    LEASEQUERYSTATUS = 17
    TLS = 18


class OptionCode(enum.IntEnum):
    """Names of the option codes this package knows (any 1-254 may appear)."""

    PAD = 0
    SUBNET_MASK = 1
    TIME_OFFSET = 2
    ROUTER = 3
    TIME_SERVER = 4
    NAME_SERVER = 5
    DNS_SERVER = 6
    LOG_SERVER = 7
    HOSTNAME = 12
    BOOT_FILE_SIZE = 13
    DOMAIN_NAME = 15
    SWAP_SERVER = 16
    ROOT_PATH = 17
    EXTENSIONS_PATH = 18
    IP_FORWARDING = 19
    DEFAULT_TTL = 23
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    STATIC_ROUTE = 33
    NIS_DOMAIN = 40
    NIS_SERVERS = 41
    NTP_SERVERS = 42
    VENDOR_SPECIFIC = 43
    NETBIOS_NAME_SERVERS = 44
    NETBIOS_NODE_TYPE = 46
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS_ID = 60
    CLIENT_ID = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    USER_CLASS = 77
    CLIENT_FQDN = 81
    RELAY_AGENT_INFO = 82
    CLIENT_ARCH = 93
    CLIENT_NDI = 94
    CLIENT_MACHINE_ID = 97
    SUBNET_SELECTION = 118
    DOMAIN_SEARCH = 119
    CLASSLESS_STATIC_ROUTE = 121
    END = 255


class ClientArch(enum.IntEnum):
    """Option 93 processor architecture types (RFC 4578, IANA registry) that boot rules use."""

    BIOS = 0
    NEC_PC98 = 1
    EFI_ITANIUM = 2
    DEC_ALPHA = 3
    ARC_X86 = 4
    INTEL_LEAN = 5
    EFI_IA32 = 6
    EFI_BC = 7
    EFI_XSCALE = 8
    EFI_X86_64 = 9
    EFI_ARM32 = 10
    EFI_ARM64 = 11
    EFI_X86_64_HTTP = 16
    EFI_ARM64_HTTP = 19


@attrs.frozen
class RelayAgentInfo:
    """Option 82 (RFC 3046): the relay's sub-options, in order, as (code, bytes) pairs."""

    suboptions: tuple[tuple[int, bytes], ...] = ()

    def get(self, code: int) -> bytes | None:
        """The first sub-option with this code, or ``None``."""
        for sub, data in self.suboptions:
            if sub == code:
                return data
        return None

    @property
    def circuit_id(self) -> bytes | None:
        """Sub-option 1: the port the request came in on."""
        return self.get(1)

    @property
    def remote_id(self) -> bytes | None:
        """Sub-option 2: the remote host end of the circuit."""
        return self.get(2)

    @property
    def link_selection(self) -> IPv4Address | None:
        """Sub-option 5 (RFC 3527): the subnet the client is on, when it is not giaddr's."""
        data = self.get(5)
        return IPv4Address(data) if data is not None and len(data) == 4 else None


@attrs.frozen
class ClientNdi:
    """Option 94 (RFC 4578): the client's network interface type and UNDI version."""

    type: int = 1
    major: int = 2
    minor: int = 1


@attrs.frozen
class ClientMachineId:
    """Option 97 (RFC 4578): a type byte (0 = GUID) and the 16-byte machine identifier."""

    type: int = 0
    guid: bytes = attrs.field(default=bytes(16), validator=attrs.validators.instance_of(bytes))

    @property
    def uuid(self) -> uuid.UUID:
        """The identifier as a UUID (PXE sends it in little-endian GUID layout)."""
        return uuid.UUID(bytes_le=self.guid)


OptionValue: TypeAlias = (
    bytes
    | int
    | str
    | IPv4Address
    | tuple[IPv4Address, ...]
    | tuple[int, ...]
    | MessageType
    | RelayAgentInfo
    | ClientNdi
    | ClientMachineId
)
"""What an option's value may be; which one depends on the code (see :func:`option_kind`)."""


@attrs.frozen
class Option:
    """One option: its code and its typed value (``bytes`` for unknown or odd ones)."""

    code: int
    value: OptionValue


class Kind(enum.Enum):
    """How an option's bytes map to a value."""

    RAW = "bytes"
    IP = "one IPv4 address"
    IPS = "a list of IPv4 addresses"
    U8 = "an unsigned 8-bit integer"
    U16 = "an unsigned 16-bit integer"
    U32 = "an unsigned 32-bit integer"
    I32 = "a signed 32-bit integer"
    U16S = "a list of unsigned 16-bit integers"
    CODES = "a list of option codes"
    TEXT = "UTF-8 text"
    MESSAGE_TYPE = "a MessageType"
    RELAY = "a RelayAgentInfo"
    NDI = "a ClientNdi"
    MACHINE_ID = "a ClientMachineId"


_KINDS: dict[int, Kind] = {}
for _kind, _codes in (
    (Kind.IP, (1, 16, 28, 32, 50, 54, 118)),
    (Kind.IPS, (3, 4, 5, 6, 7, 8, 9, 10, 11, 21, 33, 41, 42, 44, 45, 48, 49, 65, 68)),
    (Kind.IPS, (69, 70, 71, 72, 73, 74, 75, 76)),
    (Kind.U8, (19, 20, 23, 27, 29, 30, 31, 34, 36, 37, 39, 46, 52, 116)),
    (Kind.U16, (13, 22, 26, 57)),
    (Kind.U32, (24, 35, 38, 51, 58, 59)),
    (Kind.I32, (2,)),
    (Kind.U16S, (25, 93)),
    (Kind.CODES, (55,)),
    (Kind.TEXT, (12, 14, 15, 17, 18, 40, 47, 56, 60, 62, 64, 66, 67)),
    (Kind.MESSAGE_TYPE, (53,)),
    (Kind.RELAY, (82,)),
    (Kind.NDI, (94,)),
    (Kind.MACHINE_ID, (97,)),
):
    for _code in _codes:
        _KINDS[_code] = _kind


def option_kind(code: int) -> Kind:
    """The kind of value an option code carries; :attr:`Kind.RAW` for codes not typed here.

    Client id (61), user class (77), vendor specific (43) and FQDN (81) are raw bytes:
    their contents vary by vendor (iPXE sends user class as plain ``b"iPXE"``).
    """
    return _KINDS.get(code, Kind.RAW)


def _ips(data: bytes) -> tuple[IPv4Address, ...] | None:
    if len(data) % 4:
        return None
    return tuple(IPv4Address(data[i : i + 4]) for i in range(0, len(data), 4))


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _relay(data: bytes) -> RelayAgentInfo | None:
    subs: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            return None
        subs.append((data[i], data[i + 2 : i + 2 + data[i + 1]]))
        i += 2 + data[i + 1]
    return RelayAgentInfo(tuple(subs))


def _message_type(data: bytes) -> MessageType | None:
    if len(data) != 1:
        return None
    try:
        return MessageType(data[0])
    except ValueError:
        return None


_DECODERS: dict[Kind, Callable[[bytes], OptionValue | None]] = {
    Kind.RAW: bytes,
    Kind.IP: lambda d: IPv4Address(d) if len(d) == 4 else None,
    Kind.IPS: _ips,
    Kind.U8: lambda d: d[0] if len(d) == 1 else None,
    Kind.U16: lambda d: int.from_bytes(d, "big") if len(d) == 2 else None,
    Kind.U32: lambda d: int.from_bytes(d, "big") if len(d) == 4 else None,
    Kind.I32: lambda d: int.from_bytes(d, "big", signed=True) if len(d) == 4 else None,
    Kind.U16S: lambda d: None if len(d) % 2 else struct.unpack(f"!{len(d) // 2}H", d),
    Kind.CODES: lambda d: tuple(d),
    Kind.TEXT: _text,
    Kind.MESSAGE_TYPE: _message_type,
    Kind.RELAY: _relay,
    Kind.NDI: lambda d: ClientNdi(d[0], d[1], d[2]) if len(d) == 3 else None,
    Kind.MACHINE_ID: lambda d: ClientMachineId(d[0], bytes(d[1:])) if len(d) == 17 else None,
}


def decode_value(code: int, data: bytes) -> OptionValue:
    """The typed value of an option's (concatenated) bytes; raw bytes when they do not fit."""
    value = _DECODERS[option_kind(code)](data)
    return bytes(data) if value is None else value


def _check_int(value: object, bits: int, signed: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise LocalProtocolError(f"expected an integer, got {value!r}")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not low <= value <= high:
        raise LocalProtocolError(f"{value} does not fit in {bits} bits")
    return value


def _check_ip(value: object) -> bytes:
    if not isinstance(value, IPv4Address):
        raise LocalProtocolError(f"expected an IPv4Address, got {value!r}")
    return value.packed


def _check_tuple(value: object) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise LocalProtocolError(f"expected a tuple, got {value!r}")
    return value


def _encode_relay(value: object) -> bytes:
    if not isinstance(value, RelayAgentInfo):
        raise LocalProtocolError(f"expected a RelayAgentInfo, got {value!r}")
    out = bytearray()
    for code, data in value.suboptions:
        if len(data) > 255:
            raise LocalProtocolError("a relay agent sub-option holds at most 255 bytes")
        out += bytes((_check_int(code, 8), len(data))) + data
    return bytes(out)


def _encode_ndi(value: object) -> bytes:
    if not isinstance(value, ClientNdi):
        raise LocalProtocolError(f"expected a ClientNdi, got {value!r}")
    return bytes(_check_int(v, 8) for v in (value.type, value.major, value.minor))


def _encode_machine_id(value: object) -> bytes:
    if not isinstance(value, ClientMachineId) or len(value.guid) != 16:
        raise LocalProtocolError(f"expected a ClientMachineId with 16 bytes, got {value!r}")
    return bytes((_check_int(value.type, 8),)) + value.guid


def _encode_text(value: object) -> bytes:
    if not isinstance(value, str):
        raise LocalProtocolError(f"expected text, got {value!r}")
    return value.encode("utf-8")


def _encode_message_type(value: object) -> bytes:
    if not isinstance(value, MessageType):
        raise LocalProtocolError(f"expected a MessageType, got {value!r}")
    return bytes((value,))


_ENCODERS: dict[Kind, Callable[[object], bytes]] = {
    Kind.IP: _check_ip,
    Kind.IPS: lambda v: b"".join(_check_ip(ip) for ip in _check_tuple(v)),
    Kind.U8: lambda v: _check_int(v, 8).to_bytes(1, "big"),
    Kind.U16: lambda v: _check_int(v, 16).to_bytes(2, "big"),
    Kind.U32: lambda v: _check_int(v, 32).to_bytes(4, "big"),
    Kind.I32: lambda v: struct.pack("!i", _check_int(v, 32, signed=True)),
    Kind.U16S: lambda v: b"".join(_check_int(i, 16).to_bytes(2, "big") for i in _check_tuple(v)),
    Kind.CODES: lambda v: bytes(_check_int(i, 8) for i in _check_tuple(v)),
    Kind.TEXT: _encode_text,
    Kind.MESSAGE_TYPE: _encode_message_type,
    Kind.RELAY: _encode_relay,
    Kind.NDI: _encode_ndi,
    Kind.MACHINE_ID: _encode_machine_id,
}


def encode_value(code: int, value: OptionValue) -> bytes:
    """The wire bytes of an option value; raw ``bytes`` are written as they are.

    Raises :class:`LocalProtocolError` when the value does not suit the code.
    """
    if isinstance(value, bytes):
        return value
    kind = option_kind(code)
    if kind is Kind.RAW:
        raise LocalProtocolError(f"option {code} has no typed form; give its value as bytes")
    return _ENCODERS[kind](value)
