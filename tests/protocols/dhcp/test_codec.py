"""The DHCP codec: round trips, hostile bytes, real captures, overload, long options, option 82."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.dhcp import (
    ClientMachineId,
    ClientNdi,
    LocalProtocolError,
    MalformedPacket,
    MessageType,
    Option,
    OptionCode,
    Packet,
    ProtocolError,
    RelayAgentInfo,
    RemoteProtocolError,
    parse,
)
from protocols.dhcp.packet import MAX_PACKET_SIZE
from protocols.dhcp.strategies import client_requests, packets

MAC = bytes.fromhex("525400123456")


def header(
    *,
    op: int = 1,
    xid: int = 0x3903F326,
    flags: int = 0,
    hlen: int = 6,
    file: bytes = b"",
    sname: bytes = b"",
) -> bytes:
    """The fixed part of a message and the magic cookie, as a client writes it."""
    return (
        struct.pack("!BBBBIHH", op, 1, hlen, 0, xid, 0, flags)
        + bytes(16)
        + MAC.ljust(16, b"\0")
        + sname.ljust(64, b"\0")
        + file.ljust(128, b"\0")
        + b"\x63\x82\x53\x63"
    )


def test_errors_split_by_fault() -> None:
    assert issubclass(MalformedPacket, RemoteProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


@given(packets())
def test_round_trip(packet: Packet) -> None:
    assert parse(packet.encode()) == packet


@given(packets())
def test_encoding_is_stable(packet: Packet) -> None:
    data = packet.encode()
    assert parse(data).encode() == data


@given(st.binary(max_size=700))
def test_arbitrary_bytes_raise_only_malformed(data: bytes) -> None:
    try:
        parse(data)
    except MalformedPacket:
        pass


@given(client_requests(), st.data())
def test_mutated_packets_raise_only_malformed(packet: Packet, data: st.DataObject) -> None:
    raw = bytearray(packet.encode())
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[where] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[where:]
            if not raw:
                break
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        parse(bytes(raw))
    except MalformedPacket:
        pass


@given(client_requests(), st.integers(240, 600))
def test_truncated_packets_raise_only_malformed(packet: Packet, cut: int) -> None:
    try:
        parse(packet.encode()[:cut])
    except MalformedPacket:
        pass


def test_bounds() -> None:
    with pytest.raises(MalformedPacket):
        parse(b"\x01" * 239)
    with pytest.raises(MalformedPacket):
        parse(header() + b"\x00" * (MAX_PACKET_SIZE))
    with pytest.raises(MalformedPacket):
        parse(header()[:-4] + b"abcd")
    with pytest.raises(MalformedPacket):
        parse(header() + b"\x0c\x05ab")
    with pytest.raises(MalformedPacket):
        parse(header() + b"\x0c")
    with pytest.raises(MalformedPacket):
        parse(header() + b"\xfe\x00" * 2000)
    with pytest.raises(LocalProtocolError):
        parse("not bytes")  # type: ignore[arg-type]


def test_udhcpc_pxe_discover_capture() -> None:
    """A DISCOVER as udhcpc sends it, with the PXE options of an EFI x64 ROM."""
    options = (
        b"\x35\x01\x01"  # DHCPDISCOVER
        b"\x3d\x07\x01"
        + MAC  # client id: type 1 + MAC
        + b"\x39\x02\x05\xdc"  # max message size 1500
        b"\x37\x07\x01\x03\x06\x0c\x0f\x1c\x2a"  # parameter request list
        b"\x3c\x20PXEClient:Arch:00007:UNDI:003016"
        b"\x5d\x02\x00\x07"  # client architecture: EFI BC
        b"\x5e\x03\x01\x03\x10"  # client NDI: UNDI 3.16
        b"\x61\x11\x00"
        + bytes(range(16))  # client machine id (GUID)
        + b"\x4d\x04iPXE"
        b"\x0c\x05node1"
        b"\xff"
    )
    data = header(flags=0x8000) + options + bytes(40)
    packet = parse(data)
    assert packet.message_type is MessageType.DISCOVER
    assert packet.xid == 0x3903F326
    assert packet.broadcast
    assert packet.mac == "52:54:00:12:34:56"
    assert packet.client_id == b"\x01" + MAC
    assert packet.max_message_size == 1500
    assert packet.parameter_request_list == (1, 3, 6, 12, 15, 28, 42)
    assert packet.vendor_class == "PXEClient:Arch:00007:UNDI:003016"
    assert packet.architectures == (7,)
    assert packet.get(OptionCode.CLIENT_NDI) == ClientNdi(1, 3, 16)
    machine_id = packet.machine_id
    assert machine_id is not None and machine_id.guid == bytes(range(16))
    assert str(machine_id.uuid) == "03020100-0504-0706-0809-0a0b0c0d0e0f"
    assert packet.user_class == b"iPXE"
    assert packet.hostname == "node1"
    assert [o.code for o in packet.options] == [53, 61, 57, 55, 60, 93, 94, 97, 77, 12]
    assert packet.encode()[: len(header()) + len(options)] == data[: len(header()) + len(options)]


def test_unknown_and_odd_options_are_kept_raw_in_order() -> None:
    data = header() + b"\x35\x01\x03\xe0\x03xyz\x01\x03abc\x05\x00\xff"
    packet = parse(data)
    assert packet.options == (
        Option(53, MessageType.REQUEST),
        Option(224, b"xyz"),
        Option(1, b"abc"),  # a subnet mask of 3 bytes stays raw
        Option(5, ()),
    )
    assert packet.encode().startswith(data)


def test_option_overload_reads_file_then_sname() -> None:
    file = b"\x0c\x04host\xff"
    sname = b"\x0f\x03lab\xff"
    data = header(file=file, sname=sname) + b"\x35\x01\x01\x34\x01\x03\xff"
    packet = parse(data)
    assert packet.hostname == "host"
    assert packet.get(OptionCode.DOMAIN_NAME) == "lab"
    assert packet.file == b"" and packet.sname == b""
    assert packet.get(OptionCode.OVERLOAD) is None
    with pytest.raises(MalformedPacket):
        parse(header() + b"\x34\x01\x07\xff")


def test_encode_overloads_when_the_options_do_not_fit() -> None:
    # Nine 52-byte instances: six in the options field, two in file, one in sname.
    options = [Option(200 + i, bytes([i]) * 50) for i in range(9)]
    packet = Packet(chaddr=MAC, options=options)
    data = packet.encode(max_size=576)
    assert len(data) <= 576
    assert data[236:240] == b"\x63\x82\x53\x63"
    assert data[240:243] == b"\x34\x01\x03"
    assert data[108] == 200 + 6 and data[44] == 200 + 8
    assert parse(data) == packet
    with pytest.raises(LocalProtocolError):
        Packet(chaddr=MAC, file=b"taken", sname=b"taken", options=options).encode(max_size=576)


def test_long_options_are_split_and_joined() -> None:
    """RFC 3396: a value over 255 bytes goes out as several instances, read back as one."""
    packet = Packet(chaddr=MAC, options=[Option(OptionCode.DOMAIN_NAME, "x" * 600)])
    data = packet.encode()
    assert data[240:242] == b"\x0f\xff" and data[240 + 257 : 240 + 259] == b"\x0f\xff"
    assert parse(data) == packet
    split = header() + b"\x0c\x02ab\x35\x01\x01\x0c\x02cd\xff"
    assert parse(split).hostname == "abcd"


def test_relay_agent_information() -> None:
    info = RelayAgentInfo(((1, b"eth0:vlan7"), (2, b"switch-3"), (5, bytes([10, 1, 2, 0]))))
    packet = Packet(
        giaddr=IPv4Address("10.1.2.1"),
        chaddr=MAC,
        options=[
            Option(OptionCode.MESSAGE_TYPE, MessageType.DISCOVER),
            Option(OptionCode.RELAY_AGENT_INFO, info),
        ],
    )
    data = packet.encode()
    assert b"\x52\x1c\x01\x0aeth0:vlan7\x02\x08switch-3\x05\x04\x0a\x01\x02\x00" in data
    parsed = parse(data).relay_agent_info
    assert parsed == info
    assert parsed.circuit_id == b"eth0:vlan7"
    assert parsed.remote_id == b"switch-3"
    assert parsed.link_selection == IPv4Address("10.1.2.0")
    assert parse(header() + b"\x52\x03\x01\x05a\xff").get(82) == b"\x01\x05a"


def test_encode_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(OptionCode.LEASE_TIME, "soon")]).encode()
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(OptionCode.LEASE_TIME, 2**32)]).encode()
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(OptionCode.OVERLOAD, 3)]).encode()
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(12, "a"), Option(12, "b")]).encode()
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(224, "typed value for a raw code")]).encode()
    with pytest.raises(LocalProtocolError):
        Packet(chaddr=bytes(17)).encode()
    with pytest.raises(LocalProtocolError):
        Packet(options=[Option(97, ClientMachineId(0, b"short"))]).encode()


def test_replace_options() -> None:
    packet = Packet(options=[Option(53, MessageType.OFFER), Option(12, "a")])
    changed = packet.replace_options(Option(12, "b"), Option(15, "lab"))
    assert changed.options == (Option(53, MessageType.OFFER), Option(12, "b"), Option(15, "lab"))
