"""ProxyDHCP: RackHD's boot-file rule table and the PXE replies on 4011 and 67."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given

from protocols.dhcp import (
    BROADCAST,
    BootFileChosen,
    BootRequest,
    BootRule,
    ClientMachineId,
    MessageType,
    Option,
    OptionCode,
    Packet,
    PacketDropped,
    ProxyConfig,
    ProxyDhcp,
    choose_rule,
    default_rules,
)
from protocols.dhcp.strategies import client_requests

API = "10.1.1.1"
PROFILES = "http://10.1.1.1:9080/api/current/profiles"
SERVER = IPv4Address("10.1.1.1")
TFTP = IPv4Address("10.1.1.2")
MAC = bytes.fromhex("52540012abcd")
CLIENT = IPv4Address("10.1.1.50")
GUID = ClientMachineId(0, bytes(range(16)))


@pytest.mark.parametrize(
    ("mac", "vendor", "arch", "user_class", "expected"),
    [
        ("52:54:00:00:00:01", "PXEClient:Arch:00000:UNDI:002001", 0, b"MonoRail", PROFILES),
        ("52:54:00:00:00:01", "PXEClient:Arch:00007:UNDI:003016", 7, b"iPXE", PROFILES),
        ("52:54:00:00:00:01", "Arista;DCS-7050", None, None, PROFILES + "?macs=52:54:00:00:00:01"),
        ("f4:52:14:00:00:01", "PXEClient:Arch:00000:UNDI:002001", 0, None, PROFILES),
        ("ec:a8:6b:00:00:01", "PXEClient:Arch:00000:UNDI:002001", 0, None, "monorail.intel.ipxe"),
        (
            "52:54:00:00:00:01",
            "PXEClient:Arch:00007:UNDI:003016",
            7,
            None,
            "monorail-efi64-snponly.efi",
        ),
        (
            "52:54:00:00:00:01",
            "PXEClient:Arch:00009:UNDI:003016",
            9,
            None,
            "monorail-efi64-snponly.efi",
        ),
        (
            "52:54:00:00:00:01",
            "PXEClient:Arch:00006:UNDI:003016",
            6,
            None,
            "monorail-efi32-snponly.efi",
        ),
        (
            "52:54:00:00:00:01",
            "PXEClient:Arch:00011:UNDI:003000",
            11,
            None,
            "monorail-arm64-snponly.efi",
        ),
        (
            "52:54:00:00:00:01",
            "PXEClient:Arch:00000:UNDI:002001",
            0,
            None,
            "monorail-undionly.kpxe",
        ),
        ("52:54:00:00:00:01", "PXEClient", None, None, "monorail.ipxe"),
        ("52:54:00:00:00:01", None, 0, None, None),
    ],
)
def test_default_rules(
    mac: str, vendor: str | None, arch: int | None, user_class: bytes | None, expected: str | None
) -> None:
    rule = choose_rule(default_rules(API), BootRequest(mac, arch, user_class, vendor))
    assert (rule.render(BootRequest(mac)) if rule else None) == expected


def test_first_matching_rule_wins_and_all_conditions_must_hold() -> None:
    rules = (
        BootRule("special.efi", "special", architectures={7}, mac_prefixes=("AA:BB:CC",)),
        BootRule("efi.efi", "efi", architectures={7, 9}),
        BootRule("any", "any"),
    )
    assert choose_rule(rules, BootRequest("aa:bb:cc:00:00:01", 7)).name == "special"  # type: ignore[union-attr]
    assert choose_rule(rules, BootRequest("aa:bb:cc:00:00:01", 9)).name == "efi"  # type: ignore[union-attr]
    assert choose_rule(rules, BootRequest("aa:bb:cd:00:00:01", 0)).name == "any"  # type: ignore[union-attr]
    assert choose_rule(rules[:2], BootRequest("aa:bb:cd:00:00:01", None)) is None


def pxe_request(kind: MessageType, *extra: Option, **fields: object) -> Packet:
    return Packet(
        xid=42,
        chaddr=MAC,
        options=[
            Option(OptionCode.MESSAGE_TYPE, kind),
            Option(OptionCode.VENDOR_CLASS_ID, "PXEClient:Arch:00007:UNDI:003016"),
            Option(OptionCode.CLIENT_ARCH, (7,)),
            Option(OptionCode.CLIENT_MACHINE_ID, GUID),
            *extra,
        ],
        **fields,
    )  # type: ignore[arg-type]


def proxy(**config: object) -> ProxyDhcp:
    return ProxyDhcp(ProxyConfig(SERVER, default_rules(API), tftp_server=TFTP, **config))  # type: ignore[arg-type]


def test_request_on_4011_gets_an_ack_with_the_boot_file_where_it_came_from() -> None:
    engine = proxy()
    boot_item = b"\x47\x04\x80\x00\x00\x00\xff"  # PXE_BOOT_ITEM, echoed back
    packet = pxe_request(MessageType.REQUEST, Option(43, boot_item), ciaddr=CLIENT)
    (datagram,) = engine.receive(packet.encode(), (str(CLIENT), 4011), 0.0)
    assert (datagram.address, datagram.port, datagram.broadcast) == (CLIENT, 4011, False)
    ack = Packet.parse(datagram.data)
    assert ack.message_type is MessageType.ACK and ack.op == 2 and ack.xid == 42
    assert ack.yiaddr == IPv4Address(0) and ack.ciaddr == CLIENT and ack.chaddr == MAC
    assert ack.siaddr == TFTP and ack.sname == b"10.1.1.2"
    assert ack.file == b"monorail-efi64-snponly.efi"
    assert ack.get(OptionCode.BOOTFILE_NAME) == "monorail-efi64-snponly.efi"
    assert ack.get(OptionCode.TFTP_SERVER_NAME) == "10.1.1.2"
    assert ack.server_id == SERVER and ack.vendor_class == "PXEClient"
    assert ack.machine_id == GUID
    assert ack.get(43) == b"\x06\x01\x08\x47\x04\x80\x00\x00\x00\xff"
    assert engine.take_events() == [
        BootFileChosen("52:54:00:12:ab:cd", CLIENT, "monorail-efi64-snponly.efi", "efi-x64", 7)
    ]
    legacy = engine.receive(packet.encode(), (str(CLIENT), 68), 0.0)
    assert legacy[0].port == 68


def test_rackhd_minimal_reply() -> None:
    engine = proxy(pxe_options=False)
    (datagram,) = engine.receive(
        pxe_request(MessageType.REQUEST, ciaddr=CLIENT).encode(), (str(CLIENT), 4011), 0.0
    )
    ack = Packet.parse(datagram.data)
    assert [o.code for o in ack.options] == [53, 67]


def test_port_67_only_when_configured_and_never_with_an_address() -> None:
    discover = pxe_request(MessageType.DISCOVER, flags=0x8000).encode()
    assert proxy().receive(discover, ("0.0.0.0", 68), 0.0, port=67) == []
    engine = proxy(answer_on_67=True)
    (datagram,) = engine.receive(discover, ("0.0.0.0", 68), 0.0, port=67)
    assert datagram.address == BROADCAST and datagram.broadcast
    offer = Packet.parse(datagram.data)
    assert offer.message_type is MessageType.OFFER and offer.yiaddr == IPv4Address(0)
    # The client's REQUEST to the real DHCP server is not the proxy's business.
    other = pxe_request(MessageType.REQUEST, Option(54, IPv4Address("10.1.1.9"))).encode()
    assert engine.receive(other, ("0.0.0.0", 68), 0.0, port=67) == []


def test_non_pxe_and_malformed_traffic() -> None:
    engine = proxy()
    plain = Packet(chaddr=MAC, options=[Option(53, MessageType.REQUEST)]).encode()
    assert engine.receive(plain, (str(CLIENT), 4011), 0.0) == []
    assert engine.receive(b"\x00" * 10, (str(CLIENT), 4011), 0.0) == []
    (event,) = engine.take_events()
    assert isinstance(event, PacketDropped) and event.reason.startswith("malformed")


def test_classify_then_answer_with_a_chosen_file() -> None:
    engine = proxy()
    packet = engine.classify(
        pxe_request(MessageType.REQUEST, ciaddr=CLIENT).encode(), (str(CLIENT), 4011)
    )
    assert packet is not None
    (datagram,) = engine.answer(packet, (str(CLIENT), 4011), bootfile="custom.ipxe")
    assert Packet.parse(datagram.data).file == b"custom.ipxe"


@given(client_requests())
def test_any_request_never_raises(packet: Packet) -> None:
    engine = proxy(answer_on_67=True)
    for port in (67, 4011):
        for datagram in engine.receive(packet.encode(), ("10.1.1.60", 68), 0.0, port=port):
            assert Packet.parse(datagram.data).yiaddr == IPv4Address(0)
