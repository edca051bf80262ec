"""The lease table: allocation, pinning, quarantine, expiry and persistence."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocols.dhcp import (
    LeaseState,
    LeaseTable,
    LocalProtocolError,
    MemoryLeaseStore,
    SqliteLeaseStore,
    Subnet,
)

SUBNET = Subnet(
    "10.0.0.0/24",
    [(IPv4Address("10.0.0.10"), IPv4Address("10.0.0.15"))],
    router=[IPv4Address("10.0.0.1")],
    lease_time=300,
)
ADDRESSES = [IPv4Address(f"10.0.0.{n}") for n in range(8, 18)]
MACS = [f"02:00:00:00:00:{n:02x}" for n in range(8)]
RESERVATION, QUARANTINE = 30.0, 100.0


def table(store: MemoryLeaseStore | SqliteLeaseStore | None = None, **kwargs: int) -> LeaseTable:
    return LeaseTable(
        [SUBNET], store=store, reservation_time=RESERVATION, quarantine_time=QUARANTINE, **kwargs
    )


class LeaseTableMachine(RuleBasedStateMachine):
    """Random operations on a small pool; the model tracks pins and quarantines."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryLeaseStore()
        self.table = table(self.store)
        self.now = 1000.0
        self.pins: dict[IPv4Address, str] = {}
        self.quarantine: dict[IPv4Address, float] = {}

    def _unpin_model(self, ip: IPv4Address) -> None:
        self.pins.pop(ip, None)

    def _forget_mac_pins(self, mac: str) -> None:
        for ip in [ip for ip, owner in self.pins.items() if owner == mac]:
            del self.pins[ip]

    @rule(mac=st.sampled_from(MACS), requested=st.none() | st.sampled_from(ADDRESSES))
    def offer(self, mac: str, requested: IPv4Address | None) -> None:
        lease = self.table.offer(mac, SUBNET, self.now, requested=requested)
        if lease is None:
            return
        assert lease.mac == mac
        assert SUBNET.in_range(lease.ip) or lease.pinned
        until = self.quarantine.get(lease.ip)
        assert until is None or until <= self.now, "offered a quarantined address"
        owner = self.pins.get(lease.ip)
        assert owner in (None, mac), "offered another MAC's pinned address"

    @rule(mac=st.sampled_from(MACS), ip=st.sampled_from(ADDRESSES))
    def bind(self, mac: str, ip: IPv4Address) -> None:
        lease = self.table.bind(mac, ip, SUBNET, self.now)
        if lease is None:
            return
        assert lease.state is LeaseState.BOUND and lease.ip == ip and lease.mac == mac
        until = self.quarantine.get(ip)
        assert until is None or until <= self.now, "bound a quarantined address"
        assert self.pins.get(ip) in (None, mac)

    @rule(mac=st.sampled_from(MACS))
    def bind_own(self, mac: str) -> None:
        own = self.table.by_mac(mac)
        if own is not None and (own.pinned or SUBNET.in_range(own.ip)):
            assert self.table.bind(mac, own.ip, SUBNET, self.now) is not None

    @rule(mac=st.sampled_from(MACS), other=st.sampled_from(MACS))
    def release(self, mac: str, other: str) -> None:
        own = self.table.by_mac(mac)
        if own is None:
            return
        lease = self.table.release(mac, own.ip, self.now)
        if lease is None:
            return
        assert lease.state is LeaseState.RELEASED
        if not lease.pinned and SUBNET.in_range(lease.ip):
            assert self.table.available_to(other, lease.ip, SUBNET), "release did not free"

    @rule(mac=st.sampled_from(MACS))
    def decline(self, mac: str) -> None:
        own = self.table.by_mac(mac)
        if own is None:
            return
        lease = self.table.decline(mac, own.ip, self.now)
        if lease is not None:
            self.quarantine[own.ip] = self.now + QUARANTINE
            self._unpin_model(own.ip)
            assert self.table.by_mac(mac) is None

    @rule(mac=st.sampled_from(MACS))
    def pin_mac(self, mac: str) -> None:
        lease = self.table.pin_mac(mac)
        if lease is not None:
            self.pins[lease.ip] = mac

    @rule(mac=st.sampled_from(MACS))
    def unpin_mac(self, mac: str) -> None:
        lease = self.table.unpin_mac(mac)
        if lease is not None:
            self._unpin_model(lease.ip)

    @rule(ip=st.sampled_from(ADDRESSES))
    def unpin_ip(self, ip: IPv4Address) -> None:
        if self.table.unpin_ip(ip) is not None:
            self._unpin_model(ip)

    @rule(mac=st.sampled_from(MACS), ip=st.sampled_from(ADDRESSES))
    def pin_ip(self, mac: str, ip: IPv4Address) -> None:
        self._forget_mac_pins(mac)
        self.pins[ip] = mac
        self.quarantine.pop(ip, None)
        lease = self.table.pin_ip(mac, ip, self.now)
        assert lease.pinned and lease.mac == mac and lease.ip == ip

    @rule(mac=st.sampled_from(MACS))
    def remove_by_mac(self, mac: str) -> None:
        lease = self.table.remove_by_mac(mac)
        if lease is not None:
            self._unpin_model(lease.ip)
        assert self.table.by_mac(mac) is None

    @rule(ip=st.sampled_from(ADDRESSES))
    def remove_by_ip(self, ip: IPv4Address) -> None:
        lease = self.table.remove_by_ip(ip)
        if lease is not None:
            self._unpin_model(ip)
            self.quarantine.pop(ip, None)
        assert self.table.by_ip(ip) is None

    @rule(step=st.floats(0, 400))
    def advance(self, step: float) -> None:
        self.now += step
        deadline = self.table.next_deadline()
        expired = self.table.expire(self.now)
        if deadline is not None and deadline <= self.now:
            assert expired
        for lease in expired:
            if lease.state is LeaseState.DECLINED:
                assert self.table.by_ip(lease.ip) is None
        for ip, until in list(self.quarantine.items()):
            if until <= self.now:
                del self.quarantine[ip]

    @rule()
    def restart(self) -> None:
        before = sorted(self.table.leases(), key=lambda lease: int(lease.ip))
        self.table = table(self.store)
        after = sorted(self.table.leases(), key=lambda lease: int(lease.ip))
        assert after == before

    @invariant()
    def one_mac_per_address_and_one_address_per_mac(self) -> None:
        current: dict[str, IPv4Address] = {}
        for lease in self.table.leases():
            assert self.table.by_ip(lease.ip) == lease
            if lease.state is not LeaseState.DECLINED:
                assert lease.mac not in current, "a MAC holds two addresses"
                current[lease.mac] = lease.ip
                assert self.table.by_mac(lease.mac) == lease
        for mac in MACS:
            own = self.table.by_mac(mac)
            assert own is None or current.get(mac) == own.ip

    @invariant()
    def pins_survive(self) -> None:
        for ip, mac in self.pins.items():
            lease = self.table.by_ip(ip)
            assert lease is not None and lease.mac == mac and lease.pinned, (ip, mac, lease)

    @invariant()
    def quarantined_addresses_stay_declined(self) -> None:
        for ip, until in self.quarantine.items():
            if until > self.now:
                lease = self.table.by_ip(ip)
                assert lease is not None and lease.state is LeaseState.DECLINED

    @invariant()
    def store_matches_table(self) -> None:
        assert self.store.records == {lease.ip: lease for lease in self.table.leases()}


LeaseTableMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40)
TestLeaseTable = LeaseTableMachine.TestCase


def test_allocation_prefers_own_then_requested_then_fresh() -> None:
    leases = table()
    first = leases.offer(MACS[0], SUBNET, 0.0)
    assert first is not None and first.ip == IPv4Address("10.0.0.10")
    assert leases.offer(MACS[0], SUBNET, 1.0) == leases.by_mac(MACS[0])
    requested = leases.offer(MACS[1], SUBNET, 0.0, requested=IPv4Address("10.0.0.14"))
    assert requested is not None and requested.ip == IPv4Address("10.0.0.14")
    other = leases.offer(MACS[2], SUBNET, 0.0, requested=IPv4Address("10.0.0.14"))
    assert other is not None and other.ip == IPv4Address("10.0.0.11")


def test_pool_exhaustion_and_reuse_of_released_addresses() -> None:
    leases = table()
    for n, mac in enumerate(MACS[:6]):
        lease = leases.offer(mac, SUBNET, 0.0)
        assert lease is not None
        assert leases.bind(mac, lease.ip, SUBNET, float(n)) is not None
    assert leases.offer(MACS[6], SUBNET, 10.0) is None
    released = leases.release(MACS[0], IPv4Address("10.0.0.10"), 10.0)
    assert released is not None and released.state is LeaseState.RELEASED
    again = leases.offer(MACS[6], SUBNET, 11.0)
    assert again is not None and again.ip == IPv4Address("10.0.0.10")
    assert leases.by_mac(MACS[0]) is None


def test_offer_reservation_expires() -> None:
    leases = table()
    lease = leases.offer(MACS[0], SUBNET, 0.0)
    assert lease is not None and lease.reserved_until == RESERVATION
    assert leases.next_deadline() == RESERVATION
    assert leases.expire(RESERVATION - 1) == []
    (expired,) = leases.expire(RESERVATION)
    assert expired.state is LeaseState.OFFERED
    assert leases.by_mac(MACS[0]).state is LeaseState.EXPIRED  # type: ignore[union-attr]
    assert leases.next_deadline() is None


def test_bound_lease_times_and_expiry_keep_pinned_binding() -> None:
    leases = table()
    lease = leases.bind(MACS[0], IPv4Address("10.0.0.12"), SUBNET, 100.0)
    assert lease is not None
    assert (lease.expires, lease.renew_at, lease.rebind_at) == (400.0, 250.0, 362.0)
    leases.pin_mac(MACS[0])
    leases.expire(1000.0)
    pinned = leases.by_ip(IPv4Address("10.0.0.12"))
    assert pinned is not None and pinned.pinned and pinned.state is LeaseState.EXPIRED
    assert not leases.available_to(MACS[1], IPv4Address("10.0.0.12"), SUBNET)
    again = leases.offer(MACS[0], SUBNET, 1001.0)
    assert again is not None and again.ip == IPv4Address("10.0.0.12")


def test_pin_ip_replaces_other_holders() -> None:
    leases = table()
    leases.bind(MACS[1], IPv4Address("10.0.0.10"), SUBNET, 0.0)
    leases.bind(MACS[0], IPv4Address("10.0.0.11"), SUBNET, 0.0)
    lease = leases.pin_ip(MACS[0], IPv4Address("10.0.0.10"), 1.0)
    assert lease.pinned and leases.by_mac(MACS[1]) is None
    assert leases.by_ip(IPv4Address("10.0.0.11")) is None
    assert [p.mac for p in leases.pinned()] == [MACS[0]]
    with pytest.raises(LocalProtocolError):
        leases.pin_ip(MACS[0], IPv4Address("192.0.2.1"), 1.0)


def test_ip_in_range_and_subnet_lookup() -> None:
    leases = table()
    assert leases.ip_in_range(IPv4Address("10.0.0.10"))
    assert not leases.ip_in_range(IPv4Address("10.0.0.16"))
    assert not leases.ip_in_range(IPv4Address("10.0.0.1"))
    assert leases.subnet_for(IPv4Address("10.0.0.200")) is SUBNET
    assert leases.subnet_for(IPv4Address("10.0.1.1")) is None


def test_max_leases_bound() -> None:
    leases = table(max_leases=2)
    assert leases.offer(MACS[0], SUBNET, 0.0) is not None
    assert leases.offer(MACS[1], SUBNET, 0.0) is not None
    assert leases.offer(MACS[2], SUBNET, 0.0) is None
    leases.expire(100.0)  # both offers lapse: their addresses may be reclaimed
    assert leases.offer(MACS[2], SUBNET, 100.0) is not None
    assert len(leases) == 2


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    with SqliteLeaseStore(path) as store:
        leases = table(store)
        leases.bind(MACS[0], IPv4Address("10.0.0.10"), SUBNET, 5.0)
        leases.offer(MACS[1], SUBNET, 5.0)
        leases.pin_ip(MACS[2], IPv4Address("10.0.0.200"), 5.0)
        bound = leases.bind(MACS[3], IPv4Address("10.0.0.13"), SUBNET, 5.0)
        assert bound is not None
        leases.decline(MACS[3], bound.ip, 6.0)
        before = sorted(leases.leases(), key=lambda lease: int(lease.ip))
    with SqliteLeaseStore(path) as store:
        journal = store._db.execute("PRAGMA journal_mode").fetchone()
        assert journal == ("wal",)
        after = sorted(table(store).leases(), key=lambda lease: int(lease.ip))
    assert after == before
    assert len(after) == 4


def test_sqlite_transaction_commits_together_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    with SqliteLeaseStore(path) as store:
        leases = table(store)
        with store.transaction():
            leases.bind(MACS[0], IPv4Address("10.0.0.10"), SUBNET, 5.0)
            leases.bind(MACS[1], IPv4Address("10.0.0.11"), SUBNET, 5.0)
        try:
            with store.transaction():
                leases.bind(MACS[2], IPv4Address("10.0.0.12"), SUBNET, 5.0)
                raise OSError("disk full")
        except OSError:
            pass
    with SqliteLeaseStore(path) as store:
        kept = {lease.mac for lease in store.load_all()}
    assert kept == {MACS[0], MACS[1]}


def test_a_requested_address_is_not_offered_past_max_leases() -> None:
    leases = table(max_leases=2)
    assert leases.offer(MACS[0], SUBNET, 0.0) is not None
    assert leases.offer(MACS[1], SUBNET, 0.0) is not None
    # the address is free, but the table is full: nothing is offered, nothing recorded
    assert leases.offer(MACS[2], SUBNET, 0.0, requested=IPv4Address("10.0.0.50")) is None
    assert len(leases) == 2
    assert leases.by_ip(IPv4Address("10.0.0.50")) is None
