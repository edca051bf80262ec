"""Every ``on.dhcp`` method through the bus, with good and bad arguments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import IPv4Address

import pytest

from actors.exchanges import dhcp as conv
from actors.exchanges.dhcp import DhcpClient
from actors.services.dhcp import SERVICE_KEY, DhcpService
from protocols import dhcp
from runtime import Address, RemoteError, Runtime

SUBNET = dhcp.Subnet("10.1.0.0/24", ((IPv4Address("10.1.0.10"), IPv4Address("10.1.0.99")),))
MAC = "52:54:00:00:00:01"
OTHER = "52:54:00:00:00:02"
NOW = 1_700_000_000.0


@pytest.fixture
async def table(autojump_clock: object) -> AsyncIterator[dhcp.LeaseTable]:
    leases = dhcp.LeaseTable([SUBNET], store=dhcp.MemoryLeaseStore())
    leases.bind(MAC, IPv4Address("10.1.0.10"), SUBNET, NOW)
    leases.offer(OTHER, SUBNET, NOW)
    yield leases


@pytest.fixture
async def rt(table: dhcp.LeaseTable) -> AsyncIterator[Runtime]:
    async with Runtime() as runtime:
        await runtime.spawn(DhcpService, table, lambda: NOW, key=SERVICE_KEY)
        yield runtime


async def test_lookup_and_range(rt: Runtime) -> None:
    client = DhcpClient(rt)
    assert await client.lookup_ip_lease("10.1.0.10") == MAC
    assert await client.lookup_ip_lease("10.1.0.77") is None
    assert await client.ip_in_range("10.1.0.50") is True
    assert await client.ip_in_range("10.1.0.200") is False
    assert await client.ip_in_range("192.168.1.1") is False


async def test_peek_shows_rackhd_fields(rt: Runtime) -> None:
    table = await DhcpClient(rt).peek_lease_table()
    assert set(table.leases) == {MAC, OTHER}
    bound = table.leases[MAC]
    assert bound.ipAddress == "10.1.0.10" and bound.boundFlag and not bound.reservedFlag
    assert bound.expirationTimer == 86400 and bound.renewalTimer == 43200
    assert bound.leaseExpiresAt == int((NOW + 86400) * 1000)
    offered = table.leases[OTHER]
    assert offered.reservedFlag and not offered.boundFlag
    assert offered.reservationExpiresAt == int((NOW + 30) * 1000)
    assert table.pinned == {}


async def test_pin_and_unpin(rt: Runtime, table: dhcp.LeaseTable) -> None:
    client = DhcpClient(rt)
    pinned = await client.pin_mac(MAC)
    assert pinned is not None and pinned.pinned and pinned.mac == MAC
    assert set((await client.peek_lease_table()).pinned) == {MAC}
    unpinned = await client.unpin_mac(MAC)
    assert unpinned is not None and not unpinned.pinned
    assert await client.pin_mac("52:54:00:00:00:99") is None

    lease = await client.pin_ip("52:54:00:00:00:03", "10.1.0.50")
    assert lease is not None and lease.pinned and lease.ipAddress == "10.1.0.50"
    by_ip = table.by_ip(IPv4Address("10.1.0.50"))
    assert by_ip is not None and by_ip.mac == "52:54:00:00:00:03"
    lease = await client.unpin_ip("10.1.0.50")
    assert lease is not None and not lease.pinned
    assert await client.unpin_ip("10.1.0.51") is None


async def test_remove(rt: Runtime, table: dhcp.LeaseTable) -> None:
    client = DhcpClient(rt)
    removed = await client.remove_lease(MAC)
    assert removed is not None and removed.ipAddress == "10.1.0.10"
    assert table.by_mac(MAC) is None
    assert await client.remove_lease(MAC) is None
    removed = await client.remove_lease_by_ip(str(table.leases()[0].ip))
    assert removed is not None and removed.mac == OTHER
    assert len(table) == 0
    assert await client.remove_lease_by_ip("10.1.0.10") is None


@pytest.mark.parametrize(
    ("key", "payload"),
    [
        ("methods.lookupIpLease", {"value": "10.1.0.300"}),
        ("methods.lookupIpLease", {"nope": 1}),
        ("methods.ipInRange", "not even an object"),
        ("methods.removeLease", {"value": "52:54:00"}),
        ("methods.pinMac", {"value": 42}),
        ("methods.pinIp", {"mac": MAC}),
        ("methods.pinIp", {"mac": MAC, "ip": "not-an-ip"}),
        ("methods.unpinIp", {"value": "../../etc/passwd"}),
    ],
)
async def test_bad_arguments_are_refused_clearly(rt: Runtime, key: str, payload: object) -> None:
    with pytest.raises(RemoteError) as caught:
        await rt.call(Address(conv.NAME, key), payload)
    assert caught.value.status == 400
    assert await DhcpClient(rt).lookup_ip_lease("10.1.0.10") == MAC  # the service is still up


async def test_pinning_an_ip_outside_every_subnet_is_refused(rt: Runtime) -> None:
    with pytest.raises(RemoteError, match="in no configured subnet") as caught:
        await DhcpClient(rt).pin_ip(MAC, "192.168.7.7")
    assert caught.value.status == 400
