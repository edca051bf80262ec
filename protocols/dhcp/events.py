"""Events the DHCP engines report: small immutable records for the bus service to publish."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import TypeAlias

import attrs

from .leases import LeaseState


@attrs.frozen
class LeaseOffered:
    """An address was offered and is held until ``reserved_until``."""

    mac: str
    ip: IPv4Address
    reserved_until: float | None


@attrs.frozen
class LeaseBound:
    """A lease was bound (DHCPACK sent); ``renewed`` when it extends a bound lease of the
    same address. The rest describes the client, from its REQUEST (``None`` if not sent)."""

    mac: str
    ip: IPv4Address
    expires: float
    hostname: str | None = None
    vendor_class: str | None = None
    architecture: int | None = None
    user_class: bytes | None = None
    client_id: bytes | None = None
    renewed: bool = False


@attrs.frozen
class LeaseReleased:
    """The client gave its address back (DHCPRELEASE)."""

    mac: str
    ip: IPv4Address


@attrs.frozen
class LeaseDeclined:
    """The client found its address in use (DHCPDECLINE); kept out of use until then."""

    mac: str
    ip: IPv4Address
    quarantine_until: float


@attrs.frozen
class LeaseExpired:
    """A deadline passed: ``state`` says what ended (an offer's reservation, a bound lease,
    a quarantine). A pinned lease keeps its address."""

    mac: str
    ip: IPv4Address
    state: LeaseState
    pinned: bool = False


@attrs.frozen
class BootFileChosen:
    """The ProxyDHCP answered a PXE client with a boot file (``ip`` is its ciaddr, if any)."""

    mac: str
    ip: IPv4Address | None
    bootfile: str
    rule: str
    architecture: int | None = None
    user_class: bytes | None = None


@attrs.frozen
class PacketDropped:
    """A datagram was not answered because of ``reason`` (malformed, no subnet, pool empty...)."""

    reason: str
    source: tuple[str, int] | None = None
    mac: str | None = None


ServerEvent: TypeAlias = (
    LeaseOffered | LeaseBound | LeaseReleased | LeaseDeclined | LeaseExpired | PacketDropped
)
"""Events of :class:`~protocols.dhcp.server.DhcpServer`."""
ProxyEvent: TypeAlias = BootFileChosen | PacketDropped
"""Events of :class:`~protocols.dhcp.proxy.ProxyDhcp`."""
