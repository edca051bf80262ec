"""The server engine: DORA, reply addressing, NAKs, DECLINE, RELEASE, INFORM, expiry, drops."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from protocols.dhcp import (
    BROADCAST,
    BROADCAST_FLAG,
    CLIENT_PORT,
    SERVER_PORT,
    Datagram,
    DhcpServer,
    LeaseBound,
    LeaseDeclined,
    LeaseExpired,
    LeaseOffered,
    LeaseReleased,
    LeaseState,
    LeaseTable,
    MessageType,
    Option,
    OptionCode,
    Packet,
    PacketDropped,
    RelayAgentInfo,
    ServerConfig,
    Subnet,
    default_rules,
)
from protocols.dhcp.strategies import client_requests, packets

SERVER = IPv4Address("10.0.0.1")
RELAY = IPv4Address("10.1.0.1")
LOCAL = Subnet(
    "10.0.0.0/24",
    [("10.0.0.100", "10.0.0.199")],
    router=[SERVER],
    dns=[SERVER],
    domain="lab",
    lease_time=600,
)
REMOTE = Subnet("10.1.0.0/24", [("10.1.0.100", "10.1.0.101")], router=[RELAY], lease_time=600)
MAC = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("020000000002")
SOURCE = ("0.0.0.0", 68)


def make_server(**config: object) -> DhcpServer:
    return DhcpServer(ServerConfig(SERVER, **config), LeaseTable([LOCAL, REMOTE]))  # type: ignore[arg-type]


def request(kind: MessageType, *options: Option, mac: bytes = MAC, **fields: object) -> bytes:
    return Packet(
        chaddr=mac, xid=7, options=[Option(OptionCode.MESSAGE_TYPE, kind), *options], **fields
    ).encode()  # type: ignore[arg-type]


def reply(datagrams: list[Datagram]) -> Packet:
    (datagram,) = datagrams
    return Packet.parse(datagram.data)


def dora(server: DhcpServer, now: float = 0.0, **fields: object) -> IPv4Address:
    offer = reply(server.receive(request(MessageType.DISCOVER, **fields), SOURCE, now))
    ack = reply(
        server.receive(
            request(
                MessageType.REQUEST,
                Option(OptionCode.REQUESTED_IP, offer.yiaddr),
                Option(OptionCode.SERVER_ID, SERVER),
                **fields,
            ),
            SOURCE,
            now,
        )
    )
    assert ack.message_type is MessageType.ACK
    return ack.yiaddr


def test_discover_offer_request_ack() -> None:
    server = make_server()
    hostname = Option(OptionCode.HOSTNAME, "node1")
    datagrams = server.receive(
        request(MessageType.DISCOVER, hostname, flags=BROADCAST_FLAG), SOURCE, 100.0
    )
    assert datagrams[0].address == BROADCAST and datagrams[0].port == CLIENT_PORT
    assert datagrams[0].broadcast
    offer = reply(datagrams)
    assert offer.message_type is MessageType.OFFER
    assert offer.xid == 7 and offer.chaddr == MAC and offer.op == 2
    assert offer.yiaddr == IPv4Address("10.0.0.100")
    assert offer.server_id == SERVER
    assert offer.get(OptionCode.SUBNET_MASK) == IPv4Address("255.255.255.0")
    assert offer.get(OptionCode.ROUTER) == (SERVER,)
    assert offer.get(OptionCode.DNS_SERVER) == (SERVER,)
    assert offer.get(OptionCode.DOMAIN_NAME) == "lab"
    assert offer.get(OptionCode.LEASE_TIME) == 600
    assert (offer.get(OptionCode.RENEWAL_TIME), offer.get(OptionCode.REBINDING_TIME)) == (300, 525)
    ack = reply(
        server.receive(
            request(
                MessageType.REQUEST,
                Option(OptionCode.REQUESTED_IP, offer.yiaddr),
                Option(OptionCode.SERVER_ID, SERVER),
                hostname,
                Option(OptionCode.VENDOR_CLASS_ID, "PXEClient:Arch:00000:UNDI:002001"),
                Option(OptionCode.CLIENT_ARCH, (0,)),
                Option(OptionCode.USER_CLASS, b"iPXE"),
                Option(OptionCode.CLIENT_ID, b"\x01" + MAC),
            ),
            SOURCE,
            101.0,
        )
    )
    assert ack.message_type is MessageType.ACK and ack.yiaddr == offer.yiaddr
    assert ack.get(OptionCode.VENDOR_CLASS_ID) == "PXEClient"  # sends PXE ROMs to the proxy
    assert server.take_events() == [
        LeaseOffered("02:00:00:00:00:01", offer.yiaddr, 130.0),
        LeaseBound(
            "02:00:00:00:00:01",
            offer.yiaddr,
            701.0,
            "node1",
            "PXEClient:Arch:00000:UNDI:002001",
            0,
            b"iPXE",
            b"\x01" + MAC,
            False,
        ),
    ]
    lease = server.leases.by_mac("02:00:00:00:00:01")
    assert lease is not None and lease.state is LeaseState.BOUND and lease.hostname == "node1"
    assert server.statistics().acks == 1


def test_relayed_requests_use_giaddr_subnet_and_reply_to_the_relay() -> None:
    server = make_server()
    info = RelayAgentInfo(((1, b"port7"),))
    datagrams = server.receive(
        request(MessageType.DISCOVER, Option(82, info), giaddr=RELAY, hops=1), (str(RELAY), 67), 0.0
    )
    assert datagrams[0].address == RELAY and datagrams[0].port == SERVER_PORT
    assert not datagrams[0].broadcast
    offer = reply(datagrams)
    assert offer.yiaddr == IPv4Address("10.1.0.100") and offer.giaddr == RELAY
    assert offer.relay_agent_info == info


def test_renewal_is_unicast_to_ciaddr_and_reports_renewed() -> None:
    server = make_server()
    ip = dora(server)
    server.take_events()
    datagrams = server.receive(request(MessageType.REQUEST, ciaddr=ip), (str(ip), 68), 300.0)
    assert datagrams[0].address == ip and datagrams[0].port == CLIENT_PORT
    ack = reply(datagrams)
    assert ack.message_type is MessageType.ACK and ack.ciaddr == ip and ack.yiaddr == ip
    (event,) = server.take_events()
    assert isinstance(event, LeaseBound) and event.renewed and event.expires == 900.0


def test_init_reboot_acks_own_address_and_naks_wrong_network() -> None:
    server = make_server()
    ip = dora(server)
    ack = reply(server.receive(request(MessageType.REQUEST, Option(50, ip)), SOURCE, 10.0))
    assert ack.message_type is MessageType.ACK
    nak = server.receive(
        request(MessageType.REQUEST, Option(50, IPv4Address("192.0.2.5"))), SOURCE, 10.0
    )
    assert nak[0].address == BROADCAST and nak[0].broadcast
    assert reply(nak).message_type is MessageType.NAK and reply(nak).yiaddr == IPv4Address(0)
    taken = server.receive(request(MessageType.REQUEST, Option(50, ip), mac=OTHER), SOURCE, 10.0)
    assert reply(taken).message_type is MessageType.NAK


def test_nak_through_a_relay_sets_the_broadcast_bit() -> None:
    server = make_server()
    nak = reply(
        server.receive(
            request(MessageType.REQUEST, Option(50, IPv4Address("10.1.0.7")), giaddr=RELAY),
            (str(RELAY), 67),
            0.0,
        )
    )
    assert nak.message_type is MessageType.NAK and nak.broadcast


def test_request_for_another_server_cancels_the_offer() -> None:
    server = make_server()
    offer = reply(server.receive(request(MessageType.DISCOVER), SOURCE, 0.0))
    out = server.receive(
        request(MessageType.REQUEST, Option(50, offer.yiaddr), Option(54, IPv4Address("10.0.0.2"))),
        SOURCE,
        1.0,
    )
    assert out == []
    lease = server.leases.by_ip(offer.yiaddr)
    assert lease is not None and lease.state is LeaseState.EXPIRED


def test_decline_quarantines_and_release_frees() -> None:
    server = make_server()
    ip = dora(server)
    server.take_events()
    assert (
        server.receive(
            request(MessageType.DECLINE, Option(50, ip), Option(54, SERVER)), SOURCE, 5.0
        )
        == []
    )
    assert server.take_events() == [LeaseDeclined("02:00:00:00:00:01", ip, 605.0)]
    assert dora(server, 6.0) != ip
    second = server.leases.by_mac("02:00:00:00:00:01")
    assert second is not None
    server.take_events()
    server.receive(
        request(MessageType.RELEASE, Option(54, SERVER), ciaddr=second.ip),
        (str(second.ip), 68),
        7.0,
    )
    assert server.take_events() == [LeaseReleased("02:00:00:00:00:01", second.ip)]
    assert server.next_deadline() == 605.0
    server.expire(605.0)
    (expired,) = server.take_events()
    assert isinstance(expired, LeaseExpired) and expired.state is LeaseState.DECLINED


def test_inform_gets_configuration_without_a_lease() -> None:
    server = make_server()
    ip = IPv4Address("10.0.0.50")
    datagrams = server.receive(request(MessageType.INFORM, ciaddr=ip), (str(ip), 68), 0.0)
    assert datagrams[0].address == ip
    ack = reply(datagrams)
    assert ack.message_type is MessageType.ACK and ack.yiaddr == IPv4Address(0)
    assert ack.get(OptionCode.LEASE_TIME) is None and ack.get(OptionCode.ROUTER) == (SERVER,)
    assert len(server.leases) == 0


def test_leases_expire_by_deadline() -> None:
    server = make_server()
    ip = dora(server)
    server.take_events()
    assert server.next_deadline() == 600.0
    server.expire(599.0)
    assert server.take_events() == []
    server.expire(600.0)
    assert server.take_events() == [LeaseExpired("02:00:00:00:00:01", ip, LeaseState.BOUND, False)]


def test_pool_exhaustion_and_bad_input_are_dropped_not_raised() -> None:
    server = make_server()
    for mac in (MAC, OTHER):
        server.receive(request(MessageType.DISCOVER, mac=mac, giaddr=RELAY), SOURCE, 0.0)
    server.take_events()
    third = bytes.fromhex("020000000003")
    assert server.receive(request(MessageType.DISCOVER, mac=third, giaddr=RELAY), SOURCE, 0.0) == []
    assert server.receive(b"garbage", SOURCE, 0.0) == []
    assert server.receive(Packet(op=2, chaddr=MAC).encode(), SOURCE, 0.0) == []
    assert server.receive(Packet(chaddr=MAC).encode(), SOURCE, 0.0) == []
    unknown_net = request(MessageType.DISCOVER, giaddr=IPv4Address("192.0.2.1"))
    assert server.receive(unknown_net, SOURCE, 0.0) == []
    reasons = [e.reason.split(":")[0] for e in server.take_events() if isinstance(e, PacketDropped)]
    assert reasons == [
        "no free address",
        "malformed",
        "not a BOOTREQUEST",
        "no DHCP message type",
        "no subnet for this client",
    ]
    assert server.statistics().dropped == 5


def test_boot_rules_put_the_boot_file_in_the_offer() -> None:
    server = make_server(boot_rules=default_rules("10.0.0.1"))
    offer = reply(
        server.receive(
            request(
                MessageType.DISCOVER,
                Option(60, "PXEClient:Arch:00009:UNDI:003016"),
                Option(93, (9,)),
            ),
            SOURCE,
            0.0,
        )
    )
    assert offer.file == b"monorail-efi64-snponly.efi" and offer.siaddr == SERVER
    assert offer.get(OptionCode.BOOTFILE_NAME) == "monorail-efi64-snponly.efi"


@given(client_requests(), st.floats(0, 10_000))
def test_any_request_gets_datagrams_or_events_never_an_exception(
    packet: Packet, now: float
) -> None:
    server = make_server()
    for datagram in server.receive(packet.encode(), SOURCE, now):
        answer = Packet.parse(datagram.data)
        assert answer.op == 2 and answer.xid == packet.xid
        assert answer.message_type in (MessageType.OFFER, MessageType.ACK, MessageType.NAK)
        assert len(datagram.data) <= 576 or (packet.max_message_size or 0) > 576


@given(packets())
def test_any_packet_is_answered_or_dropped(packet: Packet) -> None:
    server = make_server()
    for datagram in server.receive(packet.encode(), SOURCE, 0.0):
        assert Packet.parse(datagram.data).op == 2
