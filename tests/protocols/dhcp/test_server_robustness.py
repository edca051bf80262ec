"""The DHCP server and proxy under hostile or unusual input: addresses go back to their pool,
oversized replies shed optional echoes or are dropped, replies go only where they should, and
one bad datagram never stops a service. Engine tests are sans-I/O; the one socket test stays
on 127.0.0.1."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

import trio

from protocols.dhcp import (
    ClientMachineId,
    Datagram,
    DatagramServer,
    DhcpServer,
    LeaseOffered,
    LeaseTable,
    LocalProtocolError,
    MessageType,
    Option,
    OptionCode,
    Packet,
    PacketDropped,
    ProxyConfig,
    ProxyDhcp,
    ServerConfig,
    Subnet,
    default_rules,
)

from .test_server import LOCAL, MAC, RELAY, REMOTE, SERVER

PXE = "PXEClient:Arch:00000:UNDI:002001"
OFF_NET = IPv4Address("203.0.113.9")  # in no served subnet


def make_server() -> DhcpServer:
    return DhcpServer(ServerConfig(SERVER), LeaseTable([LOCAL, REMOTE]))


def request(kind: MessageType, *options: Option, mac: bytes = MAC, **fields: object) -> bytes:
    return Packet(
        chaddr=mac, xid=7, options=[Option(OptionCode.MESSAGE_TYPE, kind), *options], **fields
    ).encode()  # type: ignore[arg-type]


# -- lease table -----------------------------------------------------------------------------------


def test_a_client_moving_to_another_subnet_does_not_leak_its_old_address() -> None:
    """When a MAC that holds an offer in one subnet asks in another, ``LeaseTable.offer``
    drops its old record, and the old address goes back to its pool: the fresh-address
    cursor has passed it, so otherwise it would never be handed out again until a restart,
    and a client (or anyone setting giaddr) could drain a subnet one address per hop."""
    server = make_server()
    first = server.receive(request(MessageType.DISCOVER, giaddr=RELAY), (str(RELAY), 67), 0.0)
    assert Packet.parse(first[0].data).yiaddr == IPv4Address("10.1.0.100")
    # the same MAC now asks on the local link: its relayed offer is dropped
    server.receive(request(MessageType.DISCOVER), ("0.0.0.0", 68), 1.0)
    assert server.leases.by_ip(IPv4Address("10.1.0.100")) is None  # no record holds it
    offered = []
    for last in (2, 3):
        mac = bytes.fromhex(f"02000000000{last}")
        out = server.receive(
            request(MessageType.DISCOVER, mac=mac, giaddr=RELAY), (str(RELAY), 67), 2.0
        )
        offered += [Packet.parse(d.data).yiaddr for d in out]
    assert sorted(offered) == [IPv4Address("10.1.0.100"), IPv4Address("10.1.0.101")], offered


# -- the server engine -----------------------------------------------------------------------------


def test_a_long_but_legal_hostname_still_gets_an_offer() -> None:
    """Option 12 of 250 octets is legal (RFC 2132: one option, length <= 255). The server
    echoes the host name, but with the 576-octet default reply size the echo does not fit.
    Echoing it is optional, so the OFFER goes out without it (and the offer is reported)
    rather than not at all."""
    server = make_server()
    out = server.receive(
        request(MessageType.DISCOVER, Option(OptionCode.HOSTNAME, "h" * 250)), ("0.0.0.0", 68), 0.0
    )
    events = server.take_events()
    assert len(out) == 1, events
    assert Packet.parse(out[0].data).message_type is MessageType.OFFER
    assert Packet.parse(out[0].data).hostname is None  # the echo is left out
    assert not any(isinstance(e, PacketDropped) for e in events)
    assert any(isinstance(e, LeaseOffered) for e in events)


def test_no_address_is_held_or_bound_for_a_reply_that_cannot_be_sent() -> None:
    """When even without the optional echoes a reply does not fit (here a subnet configured
    with 600 octets of extra options), the packet is dropped: no offer is reported or held,
    and a REQUEST binds nothing."""
    bulky = Subnet("10.0.0.0/24", [("10.0.0.100", "10.0.0.199")], options=[Option(224, bytes(600))])
    server = DhcpServer(ServerConfig(SERVER), LeaseTable([bulky]))
    assert server.receive(request(MessageType.DISCOVER), ("0.0.0.0", 68), 0.0) == []
    events = server.take_events()
    assert any(isinstance(e, PacketDropped) for e in events)
    assert not any(isinstance(e, LeaseOffered) for e in events)
    held = server.leases.by_mac(Packet(chaddr=MAC).mac)
    assert held is None or held.reclaimable
    wanted = IPv4Address("10.0.0.100")
    out = server.receive(
        request(MessageType.REQUEST, Option(OptionCode.REQUESTED_IP, wanted)), ("0.0.0.0", 68), 1.0
    )
    assert out == []
    bound = server.leases.by_ip(wanted)
    assert bound is None or bound.reclaimable


def test_an_inform_from_an_address_in_the_subnet_is_answered_there() -> None:
    """A DHCPINFORM from a client with an address in the served subnet gets its ACK at that
    address (RFC 2131 4.3.5)."""
    server = make_server()
    client = IPv4Address("10.0.0.50")
    out = server.receive(request(MessageType.INFORM, ciaddr=client), (str(client), 68), 0.0)
    assert [(d.address, d.port) for d in out] == [(client, 68)]
    assert Packet.parse(out[0].data).message_type is MessageType.ACK


def test_inform_is_not_answered_to_an_address_in_no_served_subnet() -> None:
    """An unrelayed DHCPINFORM whose ``ciaddr`` lies in no served subnet (and is not the
    sender: the datagram came from 10.0.0.50) must not make the server unicast an ACK to that
    address: anyone on the link could aim the server's replies at any host on the Internet.
    Like ISC dhcpd, the server drops such an INFORM."""
    server = make_server()
    out = server.receive(request(MessageType.INFORM, ciaddr=OFF_NET), ("10.0.0.50", 68), 0.0)
    assert all(d.address != OFF_NET for d in out), [(d.address, d.port) for d in out]


def test_discover_is_not_unicast_to_a_foreign_ciaddr() -> None:
    """A DHCPDISCOVER carries ``ciaddr`` 0 (RFC 2131 table 5). One with ``ciaddr`` set to an
    address in no served subnet must not send the OFFER to 203.0.113.9:68; the OFFER
    ignores ``ciaddr`` and is broadcast."""
    server = make_server()
    out = server.receive(request(MessageType.DISCOVER, ciaddr=OFF_NET), ("0.0.0.0", 68), 0.0)
    assert all(d.address != OFF_NET for d in out), [(d.address, d.port) for d in out]


# -- the proxy -------------------------------------------------------------------------------------


def oversized_proxy_request() -> bytes:
    """A PXE REQUEST for port 4011 of at most 8192 octets whose option 43 holds as many
    PXE boot-item sub-options (71) as fit; the proxy's reply echoes the boot item."""
    item = bytes((71, 4, 0x80, 0, 0, 0))
    best = b""
    for count in range(1200, 1400):
        packet = Packet(
            chaddr=MAC,
            xid=7,
            options=[
                Option(OptionCode.MESSAGE_TYPE, MessageType.REQUEST),
                Option(OptionCode.VENDOR_CLASS_ID, PXE),
                Option(OptionCode.CLIENT_MACHINE_ID, ClientMachineId(0, bytes(16))),
                Option(OptionCode.VENDOR_SPECIFIC, item * count),
            ],
        )
        try:
            best = packet.encode()
        except LocalProtocolError:  # the largest one that encodes is kept
            break
    assert 8000 < len(best) <= 8192
    return best


def test_proxy_never_raises_on_a_request_whose_reply_would_not_fit() -> None:
    """``ProxyDhcp.receive`` must turn any datagram into replies or events, like
    ``DhcpServer.receive``, without raising: a legal request of over 8000 octets whose
    option 43 is full of boot items (71, echoed by ``_vendor_options``) must not make
    ``answer`` raise ``LocalProtocolError`` while encoding its reply."""
    proxy = ProxyDhcp(ProxyConfig(SERVER, default_rules(str(SERVER))))
    out = proxy.receive(oversized_proxy_request(), ("10.0.0.50", 4011), 0.0)
    assert out == [] or all(len(d.data) <= 8192 for d in out)


def test_proxy_drops_a_reply_that_cannot_be_encoded() -> None:
    """A boot file name too long for any reply makes ``answer`` report a dropped packet
    (and no chosen boot file) instead of raising."""
    proxy = ProxyDhcp(ProxyConfig(SERVER, default_rules(str(SERVER))))
    packet = Packet.parse(
        request(MessageType.REQUEST, Option(OptionCode.VENDOR_CLASS_ID, PXE), ciaddr=SERVER)
    )
    assert proxy.answer(packet, ("10.0.0.50", 4011), bootfile="b" * 9000) == []
    events = proxy.take_events()
    assert [type(e) for e in events] == [PacketDropped], events


async def test_a_handler_that_raises_costs_one_datagram_only() -> None:
    """An exception from the engine on one datagram is counted as a dropped datagram and
    logged; the next datagram is handled as usual."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def handle(data: bytes, source: tuple[str, int], now: float) -> list[Datagram]:
        if data == b"bad":
            raise RuntimeError("engine bug")
        return [Datagram(data.upper(), IPv4Address(source[0]), source[1])]

    server = DatagramServer(sock, handle)
    client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock, client, trio.fail_after(10):
        await client.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await client.sendto(b"bad", ("127.0.0.1", port))
            await client.sendto(b"good", ("127.0.0.1", port))
            reply, _ = await client.recvfrom(100)
            nursery.cancel_scope.cancel()
    assert reply == b"GOOD"
    assert server.dropped == 1


async def test_one_hostile_datagram_does_not_stop_the_proxy_service() -> None:
    """Over a real socket (127.0.0.1): after the oversized request above, the proxy must
    still answer a normal PXE request: nothing escapes ``DatagramServer.serve``, which would
    end the proxy (and, in the DHCP service, the nursery it shares with the server)."""
    proxy = ProxyDhcp(ProxyConfig(SERVER, default_rules(str(SERVER))))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = DatagramServer(sock, lambda data, source, now: proxy.receive(data, source, now))
    client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    crashed: BaseException | None = None
    reply = b""
    with sock, client, trio.fail_after(10):
        await client.bind(("127.0.0.1", 0))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                await client.sendto(oversized_proxy_request(), ("127.0.0.1", port))
                await trio.sleep(0.2)
                normal = request(
                    MessageType.REQUEST,
                    Option(OptionCode.VENDOR_CLASS_ID, PXE),
                    ciaddr=IPv4Address("127.0.0.1"),
                )
                await client.sendto(normal, ("127.0.0.1", port))
                with trio.move_on_after(2):
                    reply, _ = await client.recvfrom(9000)
                nursery.cancel_scope.cancel()
        except BaseException as exc:  # anything escaping serve() fails the test
            crashed = exc
    assert crashed is None, f"the proxy died: {crashed!r}"
    assert Packet.parse(reply).message_type is MessageType.ACK


def test_proxy_answers_the_requester_not_the_claimed_ciaddr() -> None:
    """On port 4011 the proxy answers at the request's source port; it must answer the
    source address too, not the ``ciaddr`` the request claims: otherwise a request from
    10.0.0.50:53 claiming ``ciaddr`` 198.51.100.7 would make the proxy send a reply to
    198.51.100.7:53, address and port of the reflection both chosen by the sender."""
    proxy = ProxyDhcp(ProxyConfig(SERVER, default_rules(str(SERVER))))
    victim = IPv4Address("198.51.100.7")
    data = request(MessageType.REQUEST, Option(OptionCode.VENDOR_CLASS_ID, PXE), ciaddr=victim)
    out = proxy.receive(data, ("10.0.0.50", 53), 0.0)
    assert out, proxy.take_events()
    assert [(d.address, d.port) for d in out] == [(IPv4Address("10.0.0.50"), 53)]
