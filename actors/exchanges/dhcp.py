"""``on.dhcp``: RPC channel for interrogating the DHCP service and its lease table.

Requests are RackHD's envelopes: ``IpAddress {value}`` or ``MacAddress
{value}``, and ``{}`` for ``methods.peekLeaseTable``. Replies:

* ``methods.lookupIpLease``: ``MacAddress {value}`` of the lease holding that IP.
* ``methods.ipInRange``: a boolean, whether the IP is in the served range.
* ``methods.peekLeaseTable``: ``LeaseTable {leases, pinned}``, both keyed by MAC.
* ``methods.removeLease``, ``removeLeaseByIp``, ``pinMac``, ``unpinMac``,
  ``pinIp``, ``unpinIp``: the ``Lease`` concerned, as it is after the change.

As in RackHD, a method that finds no lease replies ``{}``; the client stubs
return ``None`` then, and decode the other replies themselves (a ``{}`` is no
``Lease``). Arguments are checked by the envelopes before anything is sent: a
malformed IP or MAC raises ``ValueError``.

A pinned lease is a static reservation: its MAC-to-IP binding survives expiry.
RackHD never defined ``methods.pinIp``; it takes ``PinIp {mac, ip}`` and pins
``ip`` to ``mac``, creating the lease if there is none, replacing any other.
``Lease`` carries RackHD's lease fields plus ``pinned``.
"""

from __future__ import annotations

import attrs

from runtime import Codec, IpAddress, MacAddress, message

from ..convention import Client, ExchangeDef, KeyDef, Kind

NAME = "on.dhcp"


@message("Lease")
@attrs.frozen
class Lease:
    """One lease of the table; timers in seconds, ``...ExpiresAt`` in epoch milliseconds.

    Timer defaults: an offer is held 30 s, a lease lasts 24 h, renewal (T1) after
    6 h as in RackHD, rebinding (T2) after 21 h (7/8 of the lease, RFC 2131).
    Deadlines are ``None`` until they apply (an offer has no lease deadline).
    """

    mac: str
    ipAddress: str
    reservationTimer: int = 30
    reservationExpiresAt: int | None = None
    renewalTimer: int = 21600
    rebindingTimer: int = 75600
    expirationTimer: int = 86400
    renewalExpiresAt: int | None = None
    rebindExpiresAt: int | None = None
    leaseExpiresAt: int | None = None
    boundFlag: bool = False
    """The client acknowledged the lease (DHCPREQUEST answered)."""
    reservedFlag: bool = False
    """The address is offered and held for the client."""
    pinned: bool = False


@message("LeaseTable")
@attrs.frozen
class LeaseTable:
    """Reply of ``methods.peekLeaseTable``: every lease and the pinned ones, by MAC."""

    leases: dict[str, Lease] = attrs.Factory(dict)
    pinned: dict[str, Lease] = attrs.Factory(dict)


@message("PinIp")
@attrs.frozen
class PinIp:
    """Request of ``methods.pinIp``: pin ``ip`` to ``mac``."""

    mac: str
    ip: str


LOOKUP_IP_LEASE = KeyDef(
    NAME,
    "methods.lookupIpLease",
    Kind.RPC,
    IpAddress,
    MacAddress,
    stub="lookup_ip_lease",
    seed="methods.lookupIpLease",
    doc="the MAC holding the lease of an IP",
)
IP_IN_RANGE = KeyDef(
    NAME,
    "methods.ipInRange",
    Kind.RPC,
    IpAddress,
    bool,
    stub="ip_in_range",
    seed="methods.ipInRange",
    doc="whether an IP is in the served range",
)
PEEK_LEASE_TABLE = KeyDef(
    NAME,
    "methods.peekLeaseTable",
    Kind.RPC,
    None,
    LeaseTable,
    stub="peek_lease_table",
    seed="methods.peekLeaseTable",
    doc="the whole lease table",
)
REMOVE_LEASE = KeyDef(
    NAME,
    "methods.removeLease",
    Kind.RPC,
    MacAddress,
    Lease,
    stub="remove_lease",
    seed="methods.removeLease",
    doc="drop the lease of a MAC",
)
REMOVE_LEASE_BY_IP = KeyDef(
    NAME,
    "methods.removeLeaseByIp",
    Kind.RPC,
    IpAddress,
    Lease,
    stub="remove_lease_by_ip",
    seed="methods.removeLeaseByIp",
    doc="drop the lease of an IP",
)
PIN_MAC = KeyDef(
    NAME,
    "methods.pinMac",
    Kind.RPC,
    MacAddress,
    Lease,
    stub="pin_mac",
    seed="methods.pinMac",
    doc="pin a MAC's current lease",
)
UNPIN_MAC = KeyDef(
    NAME,
    "methods.unpinMac",
    Kind.RPC,
    MacAddress,
    Lease,
    stub="unpin_mac",
    seed="methods.unpinMac",
    doc="unpin a MAC's lease",
)
PIN_IP = KeyDef(
    NAME,
    "methods.pinIp",
    Kind.RPC,
    PinIp,
    Lease,
    stub="pin_ip",
    seed="methods.pinIp",
    doc="pin an IP to a MAC (never implemented by RackHD)",
)
UNPIN_IP = KeyDef(
    NAME,
    "methods.unpinIp",
    Kind.RPC,
    IpAddress,
    Lease,
    stub="unpin_ip",
    seed="methods.unpinIp",
    doc="unpin the lease of an IP",
)

_CODEC = Codec()
"""Turns replies into ``Lease``/``MacAddress``; it registers nothing, so it holds no state."""


def _is_empty(reply: object) -> bool:
    """Whether a reply means "no lease": ``{}`` as RackHD sent it, or ``None``."""
    return reply is None or (isinstance(reply, dict) and not reply)


def _lease(reply: object) -> Lease | None:
    """The reply as a ``Lease``; ``None`` for ``{}`` (no lease)."""
    return None if _is_empty(reply) else _CODEC.convert(reply, Lease)


class DhcpClient(Client):
    """Calls the DHCP service: ``mac = await DhcpClient(rt).lookup_ip_lease("10.1.1.3")``."""

    async def lookup_ip_lease(self, ip: str) -> str | None:
        """The MAC holding the lease of ``ip``, or ``None``."""
        reply = await self._call(LOOKUP_IP_LEASE, IpAddress(ip))
        if _is_empty(reply):
            return None
        if isinstance(reply, str):
            return MacAddress(reply).value
        return _CODEC.convert(reply, MacAddress).value

    async def ip_in_range(self, ip: str) -> bool:
        """Whether ``ip`` is in the range the DHCP service serves."""
        reply: bool = await self._call(IP_IN_RANGE, IpAddress(ip), bool)
        return reply

    async def peek_lease_table(self) -> LeaseTable:
        """Every lease and the pinned ones."""
        reply: LeaseTable = await self._call(PEEK_LEASE_TABLE, {}, LeaseTable)
        return reply

    async def remove_lease(self, mac: str) -> Lease | None:
        """Drop the lease of ``mac``; returns it, or ``None`` if there was none."""
        return _lease(await self._call(REMOVE_LEASE, MacAddress(mac)))

    async def remove_lease_by_ip(self, ip: str) -> Lease | None:
        """Drop the lease of ``ip``; returns it, or ``None`` if there was none."""
        return _lease(await self._call(REMOVE_LEASE_BY_IP, IpAddress(ip)))

    async def pin_mac(self, mac: str) -> Lease | None:
        """Pin the current lease of ``mac``; returns it, or ``None`` if there is none."""
        return _lease(await self._call(PIN_MAC, MacAddress(mac)))

    async def unpin_mac(self, mac: str) -> Lease | None:
        """Unpin the lease of ``mac``; returns it, or ``None`` if there is none."""
        return _lease(await self._call(UNPIN_MAC, MacAddress(mac)))

    async def pin_ip(self, mac: str, ip: str) -> Lease | None:
        """Pin ``ip`` to ``mac``; returns the pinned lease."""
        request = PinIp(MacAddress(mac).value, IpAddress(ip).value)
        return _lease(await self._call(PIN_IP, request))

    async def unpin_ip(self, ip: str) -> Lease | None:
        """Unpin the lease of ``ip``; returns it, or ``None`` if there is none."""
        return _lease(await self._call(UNPIN_IP, IpAddress(ip)))


EXCHANGE = ExchangeDef(
    NAME,
    "DHCP",
    "RPC channel for interrogating the DHCP service",
    (
        LOOKUP_IP_LEASE,
        IP_IN_RANGE,
        PEEK_LEASE_TABLE,
        REMOVE_LEASE,
        REMOVE_LEASE_BY_IP,
        PIN_MAC,
        UNPIN_MAC,
        PIN_IP,
        UNPIN_IP,
    ),
    DhcpClient,
)
