"""Client and server engines joined by an in-memory link that drops, duplicates and reorders.

Whatever the link does, every client ends bound to an address the server recorded for its
MAC, or reaches its give-up deadline; no address is bound to two clients.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dhcp import (
    ClientBound,
    ClientConfig,
    ClientState,
    DhcpClient,
    DhcpServer,
    LeaseState,
    LeaseTable,
    LocalProtocolError,
    ServerConfig,
    Subnet,
)

SERVER = IPv4Address("10.0.0.1")
RELAY = IPv4Address("10.9.0.1")
GIVE_UP = 60.0


def network(pool: int) -> list[Subnet]:
    last = IPv4Address(int(IPv4Address("10.0.0.100")) + pool - 1)
    relayed_last = IPv4Address(int(IPv4Address("10.9.0.100")) + pool - 1)
    return [
        Subnet("10.0.0.0/24", [(IPv4Address("10.0.0.100"), last)], lease_time=600),
        Subnet("10.9.0.0/24", [(IPv4Address("10.9.0.100"), relayed_last)], lease_time=600),
    ]


class Link:
    """Datagrams in flight; the test decides which one moves next and what happens to it."""

    def __init__(self, server: DhcpServer, clients: list[DhcpClient]) -> None:
        self.server = server
        self.clients = clients
        self.flight: list[tuple[str, bytes]] = []
        self.now = 0.0

    def send_to_server(self, datagrams: list[object]) -> None:
        self.flight += [("server", d.data) for d in datagrams]  # type: ignore[attr-defined]

    def deliver(self, index: int) -> None:
        target, data = self.flight.pop(index)
        if target == "server":
            replies = self.server.receive(data, ("0.0.0.0", 68), self.now)
            self.flight += [("clients", d.data) for d in replies]
        else:
            for client in self.clients:
                self.send_to_server(client.receive(data, self.now))

    def tick(self) -> bool:
        """Advance to the next deadline; what is still in flight is lost. False if none."""
        deadlines = [c.next_deadline() for c in self.clients]
        deadlines.append(self.server.next_deadline())
        pending = [d for d in deadlines if d is not None]
        if not pending:
            return False
        self.flight.clear()
        self.now = max(self.now, min(pending))
        self.server.expire(self.now)
        for client in self.clients:
            deadline = client.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.send_to_server(client.timeout(self.now))
        return True

    def settled(self) -> bool:
        return not self.flight and all(
            c.state in (ClientState.BOUND, ClientState.FAILED) for c in self.clients
        )


@settings(max_examples=100)
@given(
    st.data(),
    st.integers(1, 4),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_clients_bind_or_give_up_over_a_lossy_link(
    data: st.DataObject, count: int, pool: int, relayed: bool, seed: int
) -> None:
    table = LeaseTable(network(pool), reservation_time=10.0)
    server = DhcpServer(ServerConfig(SERVER), table)
    rng = random.Random(seed)
    clients = [
        DhcpClient(
            ClientConfig(
                bytes([2, 0, 0, 0, 0, n]),
                hostname=f"node{n}",
                relay=RELAY if relayed else None,
                server=SERVER if relayed else None,
                initial_timeout=1.0,
                max_timeout=8.0,
                give_up_after=GIVE_UP,
            ),
            rng,
        )
        for n in range(count)
    ]
    link = Link(server, clients)
    for client in clients:
        link.send_to_server(client.start(0.0))
    # The hostile phase: the test picks which datagram moves and whether it is lost or doubled.
    for _ in range(data.draw(st.integers(0, 80), label="hostile steps")):
        if not link.flight or data.draw(st.integers(0, 7), label="tick?") == 0:
            if not link.tick():
                break
            continue
        index = data.draw(st.integers(0, len(link.flight) - 1), label="which")
        fate = data.draw(st.sampled_from(["deliver", "deliver", "deliver", "drop", "duplicate"]))
        if fate == "drop":
            link.flight.pop(index)
        elif fate == "duplicate":
            link.flight.append(link.flight[index])
            link.deliver(index)
        else:
            link.deliver(index)
    # Then a calm link until every client is bound or has given up.
    for _ in range(10_000):
        if link.settled():
            break
        if link.flight:
            link.deliver(0)
        elif not link.tick():
            break
    assert link.settled()
    held: dict[IPv4Address, str] = {}
    for client in clients:
        mac = client.config.mac.hex(":")
        if client.state is ClientState.FAILED:
            assert link.now >= GIVE_UP
            continue
        lease = client.lease
        assert lease is not None
        record = table.by_mac(mac)
        assert record is not None and record.state is LeaseState.BOUND
        assert record.ip == lease.ip
        assert lease.ip not in held
        held[lease.ip] = mac
        assert lease.ip in (RELAY_NET if relayed else LOCAL_NET)
    assert len(held) <= pool


LOCAL_NET = network(1)[0].network
RELAY_NET = network(1)[1].network


def test_client_lifecycle_renew_rebind_and_release() -> None:
    table = LeaseTable(network(2))
    server = DhcpServer(ServerConfig(SERVER), table)
    config = ClientConfig(bytes([2, 0, 0, 0, 0, 9]), initial_timeout=1.0)
    client = DhcpClient(config, random.Random(1))
    link = Link(server, [client])
    link.send_to_server(client.start(0.0))
    while link.flight:
        link.deliver(0)
    (bound,) = client.take_events()
    assert isinstance(bound, ClientBound) and not bound.renewed
    assert client.next_deadline() == 300.0
    link.tick()  # RENEWING: unicast to the server; the reply is lost
    assert client.state is ClientState.RENEWING
    link.flight.clear()
    while client.state is ClientState.RENEWING:
        link.tick()
        link.flight.clear()
    assert client.state is ClientState.REBINDING and link.now >= 525.0
    link.tick()
    while link.flight:
        link.deliver(0)
    assert client.state is ClientState.BOUND
    (renewed,) = [e for e in client.take_events() if isinstance(e, ClientBound)]
    assert renewed.renewed
    release = client.release(link.now)
    assert release[0].address == SERVER and client.state is ClientState.INIT
    server.receive(release[0].data, ("10.0.0.100", 68), link.now)
    record = table.by_mac("02:00:00:00:00:09")
    assert record is not None and record.state is LeaseState.RELEASED
    with pytest.raises(LocalProtocolError):
        client.release(link.now)


def test_init_reboot_keeps_the_previous_address() -> None:
    table = LeaseTable(network(4))
    server = DhcpServer(ServerConfig(SERVER), table)
    config = ClientConfig(bytes([2, 0, 0, 0, 0, 7]), previous_ip=IPv4Address("10.0.0.102"))
    client = DhcpClient(config, random.Random(2))
    link = Link(server, [client])
    link.send_to_server(client.start(0.0))
    assert client.state is ClientState.INIT_REBOOT
    while link.flight:
        link.deliver(0)
    assert client.state is ClientState.BOUND
    assert client.lease is not None and client.lease.ip == IPv4Address("10.0.0.102")
    # A previous address on another network is refused and the client starts over.
    elsewhere = ClientConfig(bytes([2, 0, 0, 0, 0, 8]), previous_ip=IPv4Address("192.0.2.9"))
    moved = DhcpClient(elsewhere, random.Random(3))
    link = Link(server, [moved])
    link.send_to_server(moved.start(0.0))
    while link.flight:
        link.deliver(0)
    assert moved.state is ClientState.BOUND
    assert moved.lease is not None and moved.lease.ip in LOCAL_NET
