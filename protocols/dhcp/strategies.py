"""Hypothesis strategies for DHCP: MACs, addresses, typed options, whole packets.

Every packet drawn from :func:`packets` encodes and parses back to itself, so they serve
round-trip tests as well as tests of handlers (``DhcpServer.handle``, ``ProxyDhcp``).
"""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import strategies as st

from .options import (
    ClientMachineId,
    ClientNdi,
    Kind,
    MessageType,
    Option,
    OptionCode,
    OptionValue,
    RelayAgentInfo,
    option_kind,
)
from .packet import BOOTREQUEST, Packet

__all__ = [
    "client_requests",
    "ipv4_addresses",
    "mac_addresses",
    "mac_texts",
    "option_values",
    "options",
    "packets",
    "relay_agent_infos",
]


def ipv4_addresses() -> st.SearchStrategy[IPv4Address]:
    """Any IPv4 address."""
    return st.integers(0, 2**32 - 1).map(IPv4Address)


def mac_addresses() -> st.SearchStrategy[bytes]:
    """Six-byte hardware addresses (``chaddr`` of an Ethernet client)."""
    return st.binary(min_size=6, max_size=6)


def mac_texts() -> st.SearchStrategy[str]:
    """MACs as the lease table keys them (lower-case, colon-separated)."""
    return mac_addresses().map(lambda mac: mac.hex(":"))


def relay_agent_infos() -> st.SearchStrategy[RelayAgentInfo]:
    """Option 82 values with a few sub-options."""
    sub = st.tuples(st.integers(0, 255), st.binary(max_size=16))
    return st.lists(sub, max_size=4).map(lambda subs: RelayAgentInfo(tuple(subs)))


_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
_BY_KIND: dict[Kind, st.SearchStrategy[OptionValue]] = {
    Kind.RAW: st.binary(max_size=40),
    Kind.IP: ipv4_addresses(),
    Kind.IPS: st.lists(ipv4_addresses(), max_size=4).map(tuple),
    Kind.U8: st.integers(0, 255),
    Kind.U16: st.integers(0, 2**16 - 1),
    Kind.U32: st.integers(0, 2**32 - 1),
    Kind.I32: st.integers(-(2**31), 2**31 - 1),
    Kind.U16S: st.lists(st.integers(0, 2**16 - 1), max_size=4).map(tuple),
    Kind.CODES: st.lists(st.integers(0, 255), max_size=12).map(tuple),
    Kind.TEXT: _TEXT,
    Kind.MESSAGE_TYPE: st.sampled_from(MessageType),
    Kind.RELAY: relay_agent_infos(),
    Kind.NDI: st.builds(ClientNdi, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    Kind.MACHINE_ID: st.builds(
        ClientMachineId, st.integers(0, 255), st.binary(min_size=16, max_size=16)
    ),
}


def option_values(code: int) -> st.SearchStrategy[OptionValue]:
    """Values of option ``code`` that survive a round trip (typed for known codes)."""
    return _BY_KIND[option_kind(code)]


def options(
    *, codes: st.SearchStrategy[int] | None = None, max_size: int = 8
) -> st.SearchStrategy[tuple[Option, ...]]:
    """Option lists with distinct codes (never 0, 52 or 255, which the codec owns)."""
    code_strategy = codes if codes is not None else st.integers(1, 254).filter(lambda c: c != 52)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Option, ...]:
        chosen = draw(st.lists(code_strategy, unique=True, max_size=max_size))
        return tuple(Option(code, draw(option_values(code))) for code in chosen)

    return build()


@st.composite
def packets(
    draw: st.DrawFn, *, options_strategy: st.SearchStrategy[tuple[Option, ...]] | None = None
) -> Packet:
    """Any well-formed packet (requests and replies, any hardware type)."""
    hlen = draw(st.integers(0, 255))
    chaddr = draw(st.binary(min_size=min(hlen, 16), max_size=min(hlen, 16)))
    return Packet(
        op=draw(st.integers(0, 255)),
        xid=draw(st.integers(0, 2**32 - 1)),
        htype=draw(st.integers(0, 255)),
        hlen=hlen,
        hops=draw(st.integers(0, 255)),
        secs=draw(st.integers(0, 2**16 - 1)),
        flags=draw(st.integers(0, 2**16 - 1)),
        ciaddr=draw(ipv4_addresses()),
        yiaddr=draw(ipv4_addresses()),
        siaddr=draw(ipv4_addresses()),
        giaddr=draw(ipv4_addresses()),
        chaddr=chaddr,
        sname=draw(st.binary(max_size=64)).rstrip(b"\0"),
        file=draw(st.binary(max_size=128)).rstrip(b"\0"),
        options=draw(options_strategy if options_strategy is not None else options()),
    )


_PXE_VENDOR = st.sampled_from(
    [
        "PXEClient:Arch:00000:UNDI:002001",
        "PXEClient:Arch:00007:UNDI:003016",
        "PXEClient:Arch:00009:UNDI:003016",
        "PXEClient:Arch:00006:UNDI:003016",
        "PXEClient:Arch:00011:UNDI:003000",
        "PXEClient",
        "udhcp 1.36.1",
        "Arista;DCS-7050",
    ]
)


@st.composite
def client_requests(
    draw: st.DrawFn, *, kinds: st.SearchStrategy[MessageType] | None = None
) -> Packet:
    """Requests an Ethernet client might send, PXE options included now and then."""
    kind = draw(kinds if kinds is not None else st.sampled_from(MessageType))
    opts = [Option(OptionCode.MESSAGE_TYPE, kind)]
    arches = st.lists(st.sampled_from([0, 6, 7, 9, 11]), max_size=2).map(tuple)
    choices: list[tuple[OptionCode, st.SearchStrategy[OptionValue]]] = [
        (OptionCode.REQUESTED_IP, ipv4_addresses()),
        (OptionCode.SERVER_ID, ipv4_addresses()),
        (OptionCode.HOSTNAME, _TEXT),
        (OptionCode.VENDOR_CLASS_ID, _PXE_VENDOR),
        (OptionCode.USER_CLASS, st.sampled_from([b"iPXE", b"MonoRail", b"\x04iPXE"])),
        (OptionCode.CLIENT_ARCH, arches),
        (OptionCode.MAX_MESSAGE_SIZE, st.integers(0, 2**16 - 1)),
        (OptionCode.RELAY_AGENT_INFO, relay_agent_infos()),
    ]
    for code, strategy in choices:
        if draw(st.booleans()):
            opts.append(Option(code, draw(strategy)))
    return Packet(
        op=BOOTREQUEST,
        xid=draw(st.integers(0, 2**32 - 1)),
        flags=draw(st.sampled_from([0, 0x8000])),
        ciaddr=draw(st.one_of(st.just(IPv4Address(0)), ipv4_addresses())),
        giaddr=draw(st.one_of(st.just(IPv4Address(0)), ipv4_addresses())),
        chaddr=draw(mac_addresses()),
        options=opts,
    )
