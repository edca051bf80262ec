"""The DHCP service: hands out leases, answers PXE clients, hosts ``on.dhcp``.

``start_dhcp`` puts the sans-I/O engines of ``protocols.dhcp`` on their sockets
(port 67, and 4011 for ProxyDHCP when ``proxy`` is set) under the runtime's
supervisor, and spawns ``DhcpService``, the actor that answers the nine
``on.dhcp`` methods over the same lease table. Leases persist in SQLite in the
state directory, so a restart keeps every lease.

Every bound lease (renewals included) publishes ``dhcp.bind.success.<node>``
with ``DhcpBindSuccess``; the node is looked up from the MAC (``external`` when
unknown), and the IP is learnt for the node directory, so that TFTP and HTTP
events from that address name the node too.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from typing import Any, TypeGuard

import attrs
import trio

from protocols import dhcp
from runtime import Actor, IpAddress, MacAddress, Restart, Runtime, TaskChild, handler

from ..config_file import DhcpSection
from ..exchanges import dhcp as conv
from ..exchanges.events import DhcpBindSuccess, EventsClient
from .nodes import NodeDirectory
from .reports import Reports

log = logging.getLogger("rackbus.dhcp")

SERVICE_KEY = "dhcp"

SocketFactory = Callable[[IPv4Address, int], socket.socket]


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def rackhd_lease(lease: dhcp.Lease, table: dhcp.LeaseTable) -> conv.Lease:
    """A lease as RackHD's API showed it (timers in seconds, deadlines in epoch ms)."""
    subnet = table.subnet_for(lease.ip)
    bound = lease.state is dhcp.LeaseState.BOUND
    t1, t2, lease_time = (subnet.t1, subnet.t2, subnet.lease_time) if subnet else (0, 0, 0)
    return conv.Lease(
        mac=lease.mac,
        ipAddress=str(lease.ip),
        reservationTimer=int(table.reservation_time),
        reservationExpiresAt=_ms(lease.reserved_until),
        renewalTimer=t1,
        rebindingTimer=t2,
        expirationTimer=lease_time,
        renewalExpiresAt=_ms(lease.renew_at),
        rebindExpiresAt=_ms(lease.rebind_at),
        leaseExpiresAt=_ms(lease.expires) if bound else None,
        boundFlag=bound,
        reservedFlag=lease.state is dhcp.LeaseState.OFFERED,
        pinned=lease.pinned,
    )


class DhcpService(Actor):
    """Answers ``on.dhcp`` over the lease table; a method that finds no lease replies ``{}``.

    ``pinIp`` refuses the addresses a subnet never hands out (its network and
    broadcast addresses, its routers) and ``server_ips``, the server's own.
    """

    def __init__(
        self,
        table: dhcp.LeaseTable,
        clock: Callable[[], float] = time.time,
        server_ips: Iterable[IPv4Address] = (),
    ) -> None:
        self.table = table
        self.clock = clock
        self.server_ips = frozenset(server_ips)

    def _reply(self, lease: dhcp.Lease | None) -> conv.Lease | dict[str, Any]:
        return {} if lease is None else rackhd_lease(lease, self.table)

    @handler(conv.NAME, conv.LOOKUP_IP_LEASE.template)
    async def lookup_ip_lease(self, request: IpAddress) -> MacAddress | dict[str, Any]:
        lease = self.table.by_ip(IPv4Address(request.value))
        return {} if lease is None else MacAddress(lease.mac)

    @handler(conv.NAME, conv.IP_IN_RANGE.template)
    async def ip_in_range(self, request: IpAddress) -> bool:
        return self.table.ip_in_range(IPv4Address(request.value))

    @handler(conv.NAME, conv.PEEK_LEASE_TABLE.template)
    async def peek_lease_table(self, request: dict) -> conv.LeaseTable:  # type: ignore[type-arg]
        leases = {lease.mac: rackhd_lease(lease, self.table) for lease in self.table.leases()}
        pinned = {lease.mac: rackhd_lease(lease, self.table) for lease in self.table.pinned()}
        return conv.LeaseTable(leases, pinned)

    @handler(conv.NAME, conv.REMOVE_LEASE.template)
    async def remove_lease(self, request: MacAddress) -> conv.Lease | dict[str, Any]:
        return self._reply(self.table.remove_by_mac(request.value))

    @handler(conv.NAME, conv.REMOVE_LEASE_BY_IP.template)
    async def remove_lease_by_ip(self, request: IpAddress) -> conv.Lease | dict[str, Any]:
        return self._reply(self.table.remove_by_ip(IPv4Address(request.value)))

    @handler(conv.NAME, conv.PIN_MAC.template)
    async def pin_mac(self, request: MacAddress) -> conv.Lease | dict[str, Any]:
        return self._reply(self.table.pin_mac(request.value))

    @handler(conv.NAME, conv.UNPIN_MAC.template)
    async def unpin_mac(self, request: MacAddress) -> conv.Lease | dict[str, Any]:
        return self._reply(self.table.unpin_mac(request.value))

    @handler(conv.NAME, conv.PIN_IP.template)
    async def pin_ip(self, request: conv.PinIp) -> conv.Lease | dict[str, Any]:
        try:
            mac, ip = MacAddress(request.mac).value, IPv4Address(IpAddress(request.ip).value)
            self._check_pinnable(ip)
            return self._reply(self.table.pin_ip(mac, ip, self.clock()))
        except (ValueError, dhcp.LocalProtocolError) as exc:
            raise InvalidLeaseRequest(f"pinIp {request.mac!r} {request.ip!r}: {exc}") from None

    def _check_pinnable(self, ip: IPv4Address) -> None:
        """``ValueError`` if ``ip`` is the server's own address (the lease table refuses the
        other addresses no client may hold: network, broadcast, routers)."""
        if ip in self.server_ips:
            raise ValueError(f"{ip} is the DHCP server's own address")

    @handler(conv.NAME, conv.UNPIN_IP.template)
    async def unpin_ip(self, request: IpAddress) -> conv.Lease | dict[str, Any]:
        return self._reply(self.table.unpin_ip(IPv4Address(request.value)))


class InvalidLeaseRequest(ValueError):
    """A lease method's arguments cannot be applied (an IP outside every subnet...)."""

    status = 400


class LeaseFileError(ValueError):
    """The ``[dhcp]`` ``lease_file`` cannot be opened or read as a lease store."""


@attrs.define
class DhcpRunning:
    """The DHCP service's parts, as started."""

    table: dhcp.LeaseTable
    server: dhcp.DhcpServer
    proxy: dhcp.ProxyDhcp | None
    reports: Reports[dhcp.LeaseBound]
    store: dhcp.SqliteLeaseStore
    dropped: int = 0


def _ends_holding(event: dhcp.ServerEvent) -> TypeGuard[dhcp.LeaseReleased | dhcp.LeaseExpired]:
    """Whether ``event`` means its IP is no longer held by its MAC."""
    if isinstance(event, dhcp.LeaseExpired):
        return not event.pinned
    return isinstance(event, dhcp.LeaseReleased)


def subnets(section: DhcpSection) -> list[dhcp.Subnet]:
    """The section's subnets as the engine takes them."""
    return [
        dhcp.Subnet(
            network=subnet.network,
            ranges=(subnet.range,),
            router=subnet.routers,
            dns=subnet.dns,
            domain=subnet.domain,
            lease_time=subnet.lease_time,
        )
        for subnet in section.subnet
    ]


def _open_default(interface: str | None) -> SocketFactory:
    def open_socket(address: IPv4Address, port: int) -> socket.socket:
        return dhcp.open_udp_socket(address, port, interface=interface)

    return open_socket


async def start_dhcp(
    runtime: Runtime,
    section: DhcpSection,
    nodes: NodeDirectory,
    state_dir: pathlib.Path,
    *,
    open_socket: SocketFactory | None = None,
) -> DhcpRunning:
    """Start the DHCP server (and ProxyDHCP) of ``section`` and the ``on.dhcp`` service.

    Returns once the sockets are bound; one that cannot be bound raises
    ``OSError`` here, and a lease file that cannot be opened or read (a missing
    directory, not an SQLite database) ``LeaseFileError``. ``open_socket``
    replaces how sockets are made (tests make them inside a network namespace).
    """
    open_socket = open_socket or _open_default(section.interface)
    state_dir.mkdir(parents=True, exist_ok=True)
    lease_file = state_dir / section.lease_file
    try:
        store = dhcp.SqliteLeaseStore(lease_file)
    except sqlite3.Error as exc:
        raise LeaseFileError(f"[dhcp] lease_file {str(lease_file)!r}: {exc}") from None
    try:
        table = dhcp.LeaseTable(
            subnets(section),
            store=store,
            reservation_time=section.reservation_time,
            quarantine_time=section.quarantine_time,
        )
    except dhcp.LocalProtocolError as exc:
        store.close()
        raise ValueError(f"[dhcp]: {exc}") from None
    except sqlite3.Error as exc:
        store.close()
        raise LeaseFileError(f"[dhcp] lease_file {str(lease_file)!r}: {exc}") from None
    next_server = section.next_server or section.address
    server = dhcp.DhcpServer(
        dhcp.ServerConfig(server_ip=section.address, next_server=next_server), table
    )
    proxy = None
    if section.proxy:
        rules = dhcp.default_rules(section.api_address or str(section.address), section.api_port)
        proxy = dhcp.ProxyDhcp(
            dhcp.ProxyConfig(server_ip=section.address, rules=rules, tftp_server=next_server)
        )
    events = EventsClient(runtime)

    async def publish(bound: dhcp.LeaseBound) -> None:
        await events.dhcp_bind_success(
            nodes.node_for_mac(bound.mac),
            DhcpBindSuccess(
                mac=bound.mac,
                ip=str(bound.ip),
                leaseExpiresAt=int(bound.expires * 1000),
                hostname=bound.hostname,
                vendorClass=bound.vendor_class,
                architecture=bound.architecture,
            ),
        )

    running = DhcpRunning(table, server, proxy, Reports("DHCP", publish, log=log), store)

    def drain() -> None:
        for event in server.take_events():
            if isinstance(event, dhcp.LeaseBound):
                nodes.learn_address(str(event.ip), event.mac)
                running.reports.submit(event)
            elif _ends_holding(event):
                nodes.forget_address(str(event.ip))
            elif isinstance(event, dhcp.PacketDropped):
                running.dropped += 1
                log.debug("DHCP packet dropped: %s", event.reason)
        if proxy is not None:
            for chosen in proxy.take_events():
                if isinstance(chosen, dhcp.BootFileChosen):
                    log.info(
                        "ProxyDHCP: %s boots %s (%s)", chosen.mac, chosen.bootfile, chosen.rule
                    )

    async def run(*, task_status: trio.TaskStatus[None]) -> None:
        with contextlib.ExitStack() as sockets:
            main_socket = sockets.enter_context(open_socket(section.address, section.port))
            servers = [
                dhcp.DatagramServer(
                    main_socket, server.receive, batch=store.transaction, after_batch=drain
                )
            ]
            if proxy is not None:
                proxy_socket = sockets.enter_context(
                    open_socket(section.address, section.proxy_port)
                )
                servers.append(dhcp.DatagramServer(proxy_socket, proxy.receive, after_batch=drain))
            async with trio.open_nursery() as nursery:
                for each in servers:
                    await nursery.start(each.serve)
                nursery.start_soon(expire_on_time)
                nursery.start_soon(running.reports.run)
                task_status.started()

    async def expire_on_time() -> None:
        await dhcp.run_deadlines(
            server.next_deadline, server.expire, batch=store.transaction, after=drain
        )

    try:
        await runtime.root.start_child(TaskChild("dhcp.server", run, wait_started=True))
    except BaseException:
        store.close()
        raise
    await runtime.spawn(
        DhcpService,
        table,
        time.time,
        (section.address,),
        key=SERVICE_KEY,
        restart=Restart.PERMANENT,
    )
    where = section.interface or section.address
    log.info("DHCP: serving %s on %s, leases in %s", section.address, where, state_dir)
    return running
