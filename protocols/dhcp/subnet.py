"""A served subnet: its network, the address ranges handed out, what clients are told; and
the free-address bookkeeping the lease table keeps per subnet."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

import attrs

from ._errors import LocalProtocolError
from .options import Option


def _address_tuple(value: Iterable[IPv4Address]) -> tuple[IPv4Address, ...]:
    return tuple(value)


def _ranges(
    value: Iterable[tuple[IPv4Address, IPv4Address]],
) -> tuple[tuple[IPv4Address, IPv4Address], ...]:
    return tuple((IPv4Address(a), IPv4Address(b)) for a, b in value)


@attrs.frozen
class Subnet:
    """One served network: its address ranges (inclusive) and what clients are told about it.

    T1 and T2 default to 1/2 and 7/8 of the lease time (RFC 2131 4.4.5). ``options`` are
    extra options sent in every OFFER and ACK. The network and broadcast addresses and the
    routers are never handed out.
    """

    network: IPv4Network = attrs.field(converter=IPv4Network)
    ranges: tuple[tuple[IPv4Address, IPv4Address], ...] = attrs.field(converter=_ranges)
    router: tuple[IPv4Address, ...] = attrs.field(default=(), converter=_address_tuple)
    dns: tuple[IPv4Address, ...] = attrs.field(default=(), converter=_address_tuple)
    domain: str | None = None
    lease_time: int = 86400
    renewal_time: int | None = None
    rebinding_time: int | None = None
    options: tuple[Option, ...] = attrs.field(default=(), converter=tuple)

    @ranges.validator
    def _check_ranges(self, _: object, value: tuple[tuple[IPv4Address, IPv4Address], ...]) -> None:
        for first, last in value:
            if first > last or first not in self.network or last not in self.network:
                raise LocalProtocolError(f"range {first}-{last} is not inside {self.network}")

    @property
    def t1(self) -> int:
        """Seconds from binding to renewal."""
        return self.renewal_time if self.renewal_time is not None else self.lease_time // 2

    @property
    def t2(self) -> int:
        """Seconds from binding to rebinding."""
        return self.rebinding_time if self.rebinding_time is not None else self.lease_time * 7 // 8

    def in_range(self, ip: IPv4Address) -> bool:
        """Whether ``ip`` is one of the addresses this subnet hands out."""
        return any(first <= ip <= last for first, last in self.ranges) and self._usable(int(ip))

    def usable(self, ip: IPv4Address) -> bool:
        """Whether a client may hold ``ip``: neither the network nor the broadcast address
        (below /31), nor a router."""
        return self._usable(int(ip))

    def _usable(self, value: int) -> bool:
        net = self.network
        return (
            (value != int(net.network_address) or net.prefixlen >= 31)
            and (value != int(net.broadcast_address) or net.prefixlen >= 31)
            and (IPv4Address(value) not in self.router)
        )


class Pool:
    """Free-address bookkeeping of one subnet: a cursor over never-used addresses, then a
    queue of addresses that came back."""

    def __init__(self, subnet: Subnet) -> None:
        self.subnet = subnet
        self.spans = [(int(a), int(b)) for a, b in subnet.ranges]
        self.span = 0
        self.next = self.spans[0][0] if self.spans else 0
        self.recycled: deque[IPv4Address] = deque()
        self.queued: set[IPv4Address] = set()

    def push(self, ip: IPv4Address) -> None:
        """Queue an address that came back (once)."""
        if ip not in self.queued:
            self.queued.add(ip)
            self.recycled.append(ip)

    def pop(self) -> IPv4Address:
        """The oldest address that came back."""
        ip = self.recycled.popleft()
        self.queued.discard(ip)
        return ip

    def fresh(self) -> Iterator[IPv4Address]:
        """Never-handed-out candidates, in order (the caller skips used ones)."""
        while self.span < len(self.spans):
            value = self.next
            if value > self.spans[self.span][1]:
                self.span += 1
                if self.span < len(self.spans):
                    self.next = self.spans[self.span][0]
                continue
            self.next += 1
            if self.subnet._usable(value):
                yield IPv4Address(value)
