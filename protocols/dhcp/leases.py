"""The lease table: configured subnets, leases by MAC and by IP, allocation, pinning, expiry.

Time is always passed in (``now``, seconds since the epoch as a float). Each address has at
most one lease record, so an address is never held by two MACs. A lease that expires or is
released stays in the table as a record (the client gets the same address back) until its
address is needed for someone else. A *pinned* lease is a static reservation (RackHD's
``pinMac``/``pinIp``): its MAC-to-IP binding survives expiry and is never reassigned.
Every change is written through to the optional :class:`~protocols.dhcp.store.LeaseStore`.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

import attrs

from ._errors import LocalProtocolError
from .subnet import Pool, Subnet

if TYPE_CHECKING:
    from .store import LeaseStore

DEFAULT_MAX_LEASES = 1_000_000


class LeaseState(enum.Enum):
    """Where a lease is in its life."""

    OFFERED = "offered"
    """Offered and held for the client until ``reserved_until``."""
    BOUND = "bound"
    """Acknowledged; lasts until ``expires``."""
    EXPIRED = "expired"
    """Past its end (or never bound, for a pin); the address may go to another MAC unless pinned."""
    RELEASED = "released"
    """Given back by the client; the address may go to another MAC unless pinned."""
    DECLINED = "declined"
    """The client found the address in use; quarantined until ``expires``, then forgotten."""


@attrs.frozen
class Lease:
    """One lease record (immutable; the table replaces it on every change)."""

    mac: str
    ip: IPv4Address
    state: LeaseState
    updated: float
    """When the record last changed."""
    reserved_until: float | None = None
    expires: float | None = None
    """End of the lease (bound) or of the quarantine (declined)."""
    renew_at: float | None = None
    rebind_at: float | None = None
    pinned: bool = False
    hostname: str | None = None

    @property
    def deadline(self) -> float | None:
        """When the table changes this lease on its own, if ever."""
        if self.state is LeaseState.OFFERED:
            return self.reserved_until
        if self.state in (LeaseState.BOUND, LeaseState.DECLINED):
            return self.expires
        return None

    @property
    def reclaimable(self) -> bool:
        """Whether the address may be given to another MAC."""
        return not self.pinned and self.state in (LeaseState.EXPIRED, LeaseState.RELEASED)


class LeaseTable:
    """Leases of the configured subnets, indexed by MAC and by IP, with expiry by deadline.

    ``reservation_time`` is how long an offer is held (RackHD: 30 s); ``quarantine_time`` how
    long a declined address is kept out of use; ``max_leases`` bounds the records kept.
    MACs are lower-case colon-separated text (``Packet.mac``).
    """

    def __init__(
        self,
        subnets: Iterable[Subnet],
        *,
        store: LeaseStore | None = None,
        reservation_time: float = 30.0,
        quarantine_time: float = 600.0,
        max_leases: int = DEFAULT_MAX_LEASES,
    ) -> None:
        self.subnets = tuple(subnets)
        self.reservation_time = reservation_time
        self.quarantine_time = quarantine_time
        self.max_leases = max_leases
        self._store = store
        self._pools = {s.network: Pool(s) for s in self.subnets}
        self._by_ip: dict[IPv4Address, Lease] = {}
        self._by_mac: dict[str, Lease] = {}
        self._heap: list[tuple[float, IPv4Address]] = []
        if store is not None:
            for lease in sorted(store.load_all(), key=lambda lease: lease.updated):
                self._put(lease, save=False)
            for lease in list(self._by_ip.values()):
                if lease.reclaimable:
                    self._recycle(lease.ip)

    # -- lookups ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_ip)

    def by_mac(self, mac: str) -> Lease | None:
        """The MAC's current lease (any state but declined)."""
        return self._by_mac.get(mac)

    def by_ip(self, ip: IPv4Address) -> Lease | None:
        """The record holding this address, if any."""
        return self._by_ip.get(ip)

    def leases(self) -> list[Lease]:
        """Every record, declined ones included."""
        return list(self._by_ip.values())

    def pinned(self) -> list[Lease]:
        """The pinned leases."""
        return [lease for lease in self._by_ip.values() if lease.pinned]

    def subnet_for(self, ip: IPv4Address) -> Subnet | None:
        """The subnet whose network contains ``ip``."""
        for subnet in self.subnets:
            if ip in subnet.network:
                return subnet
        return None

    def ip_in_range(self, ip: IPv4Address) -> bool:
        """Whether ``ip`` is in one of the served ranges (RackHD's ``ipInRange``)."""
        return any(subnet.in_range(ip) for subnet in self.subnets)

    def available_to(self, mac: str, ip: IPv4Address, subnet: Subnet) -> bool:
        """Whether ``ip`` could be bound to ``mac`` in ``subnet`` right now."""
        if ip not in subnet.network:
            return False
        holder = self._by_ip.get(ip)
        if holder is not None:
            if holder.mac == mac and holder.state is not LeaseState.DECLINED:
                return holder.pinned or subnet.in_range(ip)
            return holder.reclaimable and subnet.in_range(ip)
        return subnet.in_range(ip)

    # -- changes by the server -------------------------------------------------------------

    def offer(
        self,
        mac: str,
        subnet: Subnet,
        now: float,
        *,
        requested: IPv4Address | None = None,
        hostname: str | None = None,
    ) -> Lease | None:
        """Choose an address for ``mac`` and hold it; ``None`` when none is free.

        Preference: the MAC's own lease, the requested address, a never-used address,
        then one given back. A bound lease is offered as it is (no new reservation).
        """
        own = self._by_mac.get(mac)
        if own is not None and not (own.pinned or subnet.in_range(own.ip)):
            # Outside the ranges (an unpinned former pin, or another subnet): start afresh,
            # giving the old address back to its own pool if it has one.
            self._drop(own)
            self._recycle(own.ip)
            own = None
        if own is not None and own.ip not in subnet.network:
            if own.pinned:
                return None
            self._drop(own)
            self._recycle(own.ip)
            own = None
        if own is not None:
            if own.state is LeaseState.BOUND:
                return own
            lease = attrs.evolve(
                own,
                state=LeaseState.OFFERED,
                updated=now,
                reserved_until=now + self.reservation_time,
                hostname=hostname or own.hostname,
            )
            self._put(lease)
            return lease
        ip = None
        if requested is not None and self.available_to(mac, requested, subnet):
            ip = requested
        else:
            ip = self._free_address(subnet)
        if ip is None:
            return None
        lease = Lease(
            mac,
            ip,
            LeaseState.OFFERED,
            now,
            reserved_until=now + self.reservation_time,
            hostname=hostname,
        )
        return lease if self._claim(lease) else None  # ``max_leases`` reached

    def bind(
        self, mac: str, ip: IPv4Address, subnet: Subnet, now: float, *, hostname: str | None = None
    ) -> Lease | None:
        """Bind (or extend) ``ip`` to ``mac``; ``None`` when the address is not free for it."""
        own = self._by_mac.get(mac)
        if own is not None and own.ip != ip and own.pinned:
            return None
        if not self.available_to(mac, ip, subnet):
            return None
        base = own if own is not None and own.ip == ip else None
        lease = Lease(
            mac,
            ip,
            LeaseState.BOUND,
            now,
            expires=now + subnet.lease_time,
            renew_at=now + subnet.t1,
            rebind_at=now + subnet.t2,
            pinned=base.pinned if base is not None else False,
            hostname=hostname or (base.hostname if base is not None else None),
        )
        if base is not None:
            self._put(lease)
            return lease
        if own is not None:
            self._drop(own)
            self._recycle(own.ip)
        if not self._claim(lease):
            return None
        return lease

    def release(self, mac: str, ip: IPv4Address, now: float) -> Lease | None:
        """The client gave ``ip`` back; returns the released lease, or ``None`` if not its own."""
        own = self._by_mac.get(mac)
        if own is None or own.ip != ip or own.state not in (LeaseState.BOUND, LeaseState.OFFERED):
            return None
        lease = attrs.evolve(
            own,
            state=LeaseState.RELEASED,
            updated=now,
            reserved_until=None,
            expires=None,
            renew_at=None,
            rebind_at=None,
        )
        self._put(lease)
        self._recycle(ip)
        return lease

    def decline(self, mac: str, ip: IPv4Address, now: float) -> Lease | None:
        """The client found ``ip`` in use: quarantine it (the pin, if any, is void)."""
        own = self._by_mac.get(mac)
        if own is None or own.ip != ip or own.state not in (LeaseState.BOUND, LeaseState.OFFERED):
            return None
        lease = Lease(mac, ip, LeaseState.DECLINED, now, expires=now + self.quarantine_time)
        del self._by_mac[mac]
        self._put(lease)
        return lease

    def cancel_offer(self, mac: str, now: float) -> Lease | None:
        """The client chose another server: end the MAC's pending offer."""
        own = self._by_mac.get(mac)
        if own is None or own.state is not LeaseState.OFFERED:
            return None
        lease = attrs.evolve(own, state=LeaseState.EXPIRED, updated=now, reserved_until=None)
        self._put(lease)
        if lease.reclaimable:
            self._recycle(lease.ip)
        return lease

    # -- administration (RackHD's on.dhcp methods) -------------------------------------------

    def pin_mac(self, mac: str) -> Lease | None:
        """Pin the MAC's current lease (``pinMac``)."""
        own = self._by_mac.get(mac)
        if own is None:
            return None
        lease = attrs.evolve(own, pinned=True)
        self._put(lease)
        return lease

    def unpin_mac(self, mac: str) -> Lease | None:
        """Unpin the MAC's lease (``unpinMac``)."""
        own = self._by_mac.get(mac)
        return None if own is None else self._unpin(own)

    def unpin_ip(self, ip: IPv4Address) -> Lease | None:
        """Unpin the lease holding ``ip`` (``unpinIp``)."""
        holder = self._by_ip.get(ip)
        return None if holder is None else self._unpin(holder)

    def pin_ip(self, mac: str, ip: IPv4Address, now: float) -> Lease:
        """Pin ``ip`` to ``mac`` (``pinIp``): replaces any other holder and the MAC's other
        lease. Raises :class:`LocalProtocolError` if ``ip`` is in no configured subnet, or is
        an address no client may hold there (network, broadcast, router)."""
        subnet = self.subnet_for(ip)
        if subnet is None:
            raise LocalProtocolError(f"{ip} is in no configured subnet")
        if not subnet.usable(ip):
            raise LocalProtocolError(
                f"{ip} is the network or broadcast address or a router of {subnet.network}"
            )
        holder = self._by_ip.get(ip)
        if holder is not None and holder.mac == mac and holder.state is not LeaseState.DECLINED:
            lease = attrs.evolve(holder, pinned=True)
            self._put(lease)
            return lease
        if holder is not None:
            self._drop(holder)
        own = self._by_mac.get(mac)
        if own is not None:
            self._drop(own)
            self._recycle(own.ip)
        lease = Lease(mac, ip, LeaseState.EXPIRED, now, pinned=True)
        self._put(lease)
        return lease

    def remove_by_mac(self, mac: str) -> Lease | None:
        """Forget the MAC's lease, pinned or not (``removeLease``)."""
        own = self._by_mac.get(mac)
        if own is not None:
            self._drop(own)
            self._recycle(own.ip)
        return own

    def remove_by_ip(self, ip: IPv4Address) -> Lease | None:
        """Forget the record holding ``ip`` (``removeLeaseByIp``)."""
        holder = self._by_ip.get(ip)
        if holder is not None:
            self._drop(holder)
            self._recycle(ip)
        return holder

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expire` has something to do."""
        heap = self._heap
        while heap:
            deadline, ip = heap[0]
            lease = self._by_ip.get(ip)
            if lease is not None and lease.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def expire(self, now: float) -> list[Lease]:
        """Apply every deadline up to ``now``; returns the leases as they were before.

        Offers past their reservation and bound leases past their end become expired
        (pinned ones keep their address); declined addresses leave quarantine.
        """
        done: list[Lease] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, ip = heapq.heappop(heap)
            lease = self._by_ip.get(ip)
            if lease is None or lease.deadline != deadline:
                continue
            done.append(lease)
            if lease.state is LeaseState.DECLINED:
                self._drop(lease)
                self._recycle(ip)
                continue
            expired = attrs.evolve(
                lease, state=LeaseState.EXPIRED, updated=now, reserved_until=None
            )
            self._put(expired)
            if expired.reclaimable:
                self._recycle(ip)
        if len(heap) > 2 * len(self._by_ip) + 64:
            self._heap = [(d, lease.ip) for lease in self._by_ip.values() if (d := lease.deadline)]
            heapq.heapify(self._heap)
        return done

    # -- internals -------------------------------------------------------------------------

    def _unpin(self, lease: Lease) -> Lease:
        lease = attrs.evolve(lease, pinned=False)
        self._put(lease)
        if lease.reclaimable:
            self._recycle(lease.ip)
        return lease

    def _put(self, lease: Lease, *, save: bool = True) -> None:
        self._by_ip[lease.ip] = lease
        if lease.state is not LeaseState.DECLINED:
            old = self._by_mac.get(lease.mac)
            if old is not None and old.ip != lease.ip:
                # One current lease per MAC: a stale record (e.g. from a store) gives way.
                self._drop(old)
            self._by_mac[lease.mac] = lease
        deadline = lease.deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, lease.ip))
        if save and self._store is not None:
            self._store.save(lease)

    def _drop(self, lease: Lease) -> None:
        if self._by_ip.get(lease.ip) is lease:
            del self._by_ip[lease.ip]
            if self._store is not None:
                self._store.delete(lease.ip)
        if self._by_mac.get(lease.mac) is lease:
            del self._by_mac[lease.mac]

    def _claim(self, lease: Lease) -> bool:
        """Store a new record on its address, evicting a reclaimable holder."""
        holder = self._by_ip.get(lease.ip)
        if holder is not None:
            if not holder.reclaimable and holder.mac != lease.mac:
                return False
            self._drop(holder)
        elif len(self._by_ip) >= self.max_leases:
            return False
        self._put(lease)
        return True

    def _recycle(self, ip: IPv4Address) -> None:
        subnet = self.subnet_for(ip)
        if subnet is not None and subnet.in_range(ip):
            self._pools[subnet.network].push(ip)

    def _free_address(self, subnet: Subnet) -> IPv4Address | None:
        pool = self._pools[subnet.network]
        if len(self._by_ip) < self.max_leases:
            for ip in pool.fresh():
                if ip not in self._by_ip:
                    return ip
        while pool.recycled:
            ip = pool.pop()
            holder = self._by_ip.get(ip)
            if holder is None:
                if len(self._by_ip) < self.max_leases:
                    return ip
                pool.push(ip)
                return None
            if holder.reclaimable:
                return ip
        return None

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._by_ip.values()))
