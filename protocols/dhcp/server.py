"""The DHCP server engine (RFC 2131): datagrams and time in, datagrams and events out.

The engine owns no socket and reads no clock. An adapter feeds it each datagram with
:meth:`DhcpServer.receive`, sends what it returns, drains :meth:`DhcpServer.take_events`,
and calls :meth:`DhcpServer.expire` when :meth:`DhcpServer.next_deadline` comes.

Replies are addressed per RFC 2131 4.1: to the relay (``giaddr``, port 67); else to
``ciaddr`` (port 68) when the reply is an ACK and ``ciaddr`` lies in the client's subnet;
else broadcast to 255.255.255.255:68. An OFFER ignores ``ciaddr`` (a DISCOVER has it 0),
and an unrelayed INFORM whose ``ciaddr`` lies outside the client's subnet is dropped, so
a client cannot aim replies at a host of its choosing. RFC 2131 would unicast to
``yiaddr`` at the link layer when the broadcast flag is clear; that needs a raw socket,
so the engine broadcasts instead (every client accepts a broadcast reply).

A reply must fit the client's size limit (option 57, at least 576 octets). When it does
not, the optional echoes (the client's host name, and option 82 of an unrelayed request)
are left out; a reply that still does not fit is dropped, and no offer is held nor lease
bound for it.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Address

import attrs

from ._errors import LocalProtocolError, MalformedPacket
from .datagram import BROADCAST, CLIENT_PORT, SERVER_PORT, Datagram
from .events import (
    LeaseBound,
    LeaseDeclined,
    LeaseExpired,
    LeaseOffered,
    LeaseReleased,
    PacketDropped,
    ServerEvent,
)
from .leases import LeaseState, LeaseTable
from .options import MessageType, Option, OptionCode
from .packet import BOOTREPLY, BOOTREQUEST, BROADCAST_FLAG, ZERO, Packet, parse
from .proxy import PXE_CLIENT, BootRequest, BootRule, choose_rule
from .subnet import Subnet

_MIN_MESSAGE = 576 - 28
_HOSTNAME_ONLY = frozenset({int(OptionCode.HOSTNAME)})
_ECHOES = frozenset({int(OptionCode.HOSTNAME), int(OptionCode.RELAY_AGENT_INFO)})
"""Echoed options a reply may leave out when it would not fit (82 only without a relay)."""


@attrs.frozen
class ServerConfig:
    """How the server identifies itself and what it adds to replies.

    ``server_ip`` is option 54 (where relays and renewing clients send). ``interface_ip``
    picks the subnet of unrelayed requests (default ``server_ip``; an adapter serving
    several interfaces passes it per call). ``authoritative`` servers NAK a client asking
    for an address that is not its to have; others stay silent. ``pxe_vendor_class``
    answers PXE clients with option 60 ``PXEClient`` and no boot file, which sends them to
    a ProxyDHCP (RackHD's set-up); ``boot_rules`` instead puts the boot file in the
    OFFER/ACK itself, with ``next_server`` (default ``server_ip``) as ``siaddr``.
    """

    server_ip: IPv4Address
    interface_ip: IPv4Address | None = None
    authoritative: bool = True
    pxe_vendor_class: bool = True
    boot_rules: tuple[BootRule, ...] = attrs.field(default=(), converter=tuple)
    next_server: IPv4Address | None = None


@attrs.frozen
class ServerStatistics:
    """Counters since the server was built."""

    received: int
    dropped: int
    offers: int
    acks: int
    naks: int


class DhcpServer:
    """A DHCP server over a :class:`LeaseTable`."""

    def __init__(self, config: ServerConfig, leases: LeaseTable) -> None:
        self.config = config
        self.leases = leases
        self._events: list[ServerEvent] = []
        self._received = self._dropped = self._offers = self._acks = self._naks = 0

    # -- the adapter's calls ---------------------------------------------------------------

    def receive(
        self,
        data: bytes,
        source: tuple[str, int],
        now: float,
        *,
        interface_ip: IPv4Address | None = None,
    ) -> list[Datagram]:
        """Handle one datagram received on port 67; returns the datagrams to send.

        Never raises for bad input: a malformed or unanswerable packet becomes a
        :class:`PacketDropped` event.
        """
        self._received += 1
        try:
            packet = parse(data)
        except MalformedPacket as exc:
            return self._drop(f"malformed: {exc}", source)
        return self.handle(packet, source, now, interface_ip=interface_ip)

    def handle(
        self,
        packet: Packet,
        source: tuple[str, int] | None,
        now: float,
        *,
        interface_ip: IPv4Address | None = None,
    ) -> list[Datagram]:
        """Like :meth:`receive`, for an already parsed packet."""
        self.expire(now)
        if packet.op != BOOTREQUEST:
            return self._drop("not a BOOTREQUEST", source)
        if packet.htype != 1 or packet.hlen != 6 or len(packet.chaddr) != 6:
            return self._drop("not an Ethernet client", source)
        kind = packet.message_type
        if kind is None:
            return self._drop("no DHCP message type", source, packet.mac)
        subnet = self._subnet(packet, interface_ip)
        if subnet is None:
            return self._drop("no subnet for this client", source, packet.mac)
        if kind is MessageType.DISCOVER:
            return self._discover(packet, subnet, now, source)
        if kind is MessageType.REQUEST:
            return self._request(packet, subnet, now, source)
        if kind is MessageType.DECLINE:
            return self._decline(packet, now)
        if kind is MessageType.RELEASE:
            return self._release(packet, now)
        if kind is MessageType.INFORM:
            return self._inform(packet, subnet, source)
        return self._drop(f"unexpected {kind.name}", source, packet.mac)

    def take_events(self) -> list[ServerEvent]:
        """The events since the last call, oldest first (drain after every call)."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work (an offer's hold, a lease's end, a quarantine)."""
        return self.leases.next_deadline()

    def expire(self, now: float) -> None:
        """Apply the deadlines up to ``now``, reporting :class:`LeaseExpired` events."""
        for lease in self.leases.expire(now):
            self._events.append(LeaseExpired(lease.mac, lease.ip, lease.state, lease.pinned))

    def statistics(self) -> ServerStatistics:
        """Counters of datagrams received and dropped and replies sent."""
        return ServerStatistics(self._received, self._dropped, self._offers, self._acks, self._naks)

    # -- message handlers -------------------------------------------------------------------

    def _discover(
        self, packet: Packet, subnet: Subnet, now: float, source: tuple[str, int] | None
    ) -> list[Datagram]:
        lease = self.leases.offer(
            packet.mac, subnet, now, requested=packet.requested_ip, hostname=packet.hostname
        )
        if lease is None:
            return self._drop("no free address", source, packet.mac)
        remaining = subnet.lease_time
        if lease.state is LeaseState.BOUND and lease.expires is not None:
            remaining = max(0, int(lease.expires - now))
        reply = self._reply(packet, MessageType.OFFER, subnet, lease.ip, remaining)
        sent = self._send(packet, reply, subnet)
        if not sent:
            # The reply cannot go out: hold nothing for a client that will never hear of it.
            if lease.state is LeaseState.OFFERED:
                self.leases.cancel_offer(lease.mac, now)
            return sent
        self._events.append(LeaseOffered(lease.mac, lease.ip, lease.reserved_until))
        self._offers += 1
        return sent

    def _request(
        self, packet: Packet, subnet: Subnet, now: float, source: tuple[str, int] | None
    ) -> list[Datagram]:
        mac = packet.mac
        server_id = packet.server_id
        if server_id is not None and server_id != self.config.server_ip:
            # SELECTING, and the client chose another server.
            self.leases.cancel_offer(mac, now)
            return []
        if server_id is not None or packet.ciaddr == ZERO:
            # SELECTING (our offer) or INIT-REBOOT: the address is in option 50.
            ip = packet.requested_ip
            if ip is None:
                return self._drop("REQUEST without a requested address", source, mac)
        else:
            ip = packet.ciaddr  # RENEWING or REBINDING
        selecting = server_id is not None
        # The ACK is encoded before the lease is bound, so that a lease is never bound
        # without an ACK that can be sent (a bound lease always runs the subnet's lease time).
        ack = self._reply(packet, MessageType.ACK, subnet, ip, subnet.lease_time)
        data = self._encode(packet, ack)
        if data is None:
            return []
        previous = self.leases.by_mac(mac)
        lease = self.leases.bind(mac, ip, subnet, now, hostname=packet.hostname)
        if lease is None:
            if selecting or self.config.authoritative or ip not in subnet.network:
                return self._nak(packet, subnet)
            return []
        renewed = previous is not None and previous.ip == ip and previous.state is LeaseState.BOUND
        arches = packet.architectures
        self._events.append(
            LeaseBound(
                mac,
                ip,
                lease.expires if lease.expires is not None else now,
                packet.hostname,
                packet.vendor_class,
                arches[0] if arches else None,
                packet.user_class,
                packet.client_id,
                renewed,
            )
        )
        self._acks += 1
        return self._address(packet, ack, data, subnet)

    def _inform(
        self, packet: Packet, subnet: Subnet, source: tuple[str, int] | None
    ) -> list[Datagram]:
        ciaddr = packet.ciaddr
        if packet.giaddr == ZERO and ciaddr != ZERO and ciaddr not in subnet.network:
            return self._drop("INFORM from outside the client's subnet", source, packet.mac)
        return self._send(packet, self._reply(packet, MessageType.ACK, subnet, None, None), subnet)

    def _decline(self, packet: Packet, now: float) -> list[Datagram]:
        ip = packet.requested_ip
        if ip is None or packet.server_id not in (None, self.config.server_ip):
            return []
        lease = self.leases.decline(packet.mac, ip, now)
        if lease is not None and lease.expires is not None:
            self._events.append(LeaseDeclined(lease.mac, ip, lease.expires))
        return []

    def _release(self, packet: Packet, now: float) -> list[Datagram]:
        if packet.server_id not in (None, self.config.server_ip):
            return []
        if self.leases.release(packet.mac, packet.ciaddr, now) is not None:
            self._events.append(LeaseReleased(packet.mac, packet.ciaddr))
        return []

    def _nak(self, packet: Packet, subnet: Subnet) -> list[Datagram]:
        self._naks += 1
        return self._send(packet, self._reply(packet, MessageType.NAK, subnet, None, None), subnet)

    # -- helpers -----------------------------------------------------------------------------

    def _drop(
        self, reason: str, source: tuple[str, int] | None, mac: str | None = None
    ) -> list[Datagram]:
        self._dropped += 1
        self._events.append(PacketDropped(reason, source, mac))
        return []

    def _subnet(self, packet: Packet, interface_ip: IPv4Address | None) -> Subnet | None:
        """The client's subnet: link selection (118, or 82 sub-option 5), else the relay's
        ``giaddr``, else a renewing client's ``ciaddr``, else the receiving interface."""
        selection = packet.get(OptionCode.SUBNET_SELECTION)
        relay = packet.relay_agent_info
        link = relay.link_selection if relay is not None else None
        if isinstance(selection, IPv4Address):
            address = selection
        elif link is not None:
            address = link
        elif packet.giaddr != ZERO:
            address = packet.giaddr
        elif packet.ciaddr != ZERO and self.leases.subnet_for(packet.ciaddr) is not None:
            address = packet.ciaddr
        else:
            address = interface_ip or self.config.interface_ip or self.config.server_ip
        return self.leases.subnet_for(address)

    def _reply(
        self,
        packet: Packet,
        kind: MessageType,
        subnet: Subnet,
        ip: IPv4Address | None,
        remaining: int | None,
    ) -> Packet:
        """The reply of ``kind``; ``ip`` is the leased address (``yiaddr``) and ``remaining``
        the seconds left on its lease, both ``None`` in a reply that leases nothing."""
        config = self.config
        options = [
            Option(OptionCode.MESSAGE_TYPE, kind),
            Option(OptionCode.SERVER_ID, config.server_ip),
        ]
        siaddr = ZERO
        file = b""
        if kind is not MessageType.NAK:
            if remaining is not None:
                options += [
                    Option(OptionCode.LEASE_TIME, remaining),
                    Option(OptionCode.RENEWAL_TIME, min(subnet.t1, remaining)),
                    Option(OptionCode.REBINDING_TIME, min(subnet.t2, remaining)),
                ]
            options += _subnet_options(subnet)
            if packet.hostname is not None and ip is not None:
                options.append(Option(OptionCode.HOSTNAME, packet.hostname))
            request = BootRequest.from_packet(packet) if config.boot_rules else None
            rule = choose_rule(config.boot_rules, request) if request is not None else None
            if rule is not None and request is not None:
                bootfile = rule.render(request)
                siaddr = config.next_server or config.server_ip
                options.append(Option(OptionCode.TFTP_SERVER_NAME, str(siaddr)))
                options.append(Option(OptionCode.BOOTFILE_NAME, bootfile))
                encoded = bootfile.encode()
                file = encoded if len(encoded) < 128 else b""
            elif config.pxe_vendor_class and (packet.vendor_class or "").startswith(PXE_CLIENT):
                options.append(Option(OptionCode.VENDOR_CLASS_ID, PXE_CLIENT))
        relay = packet.get(OptionCode.RELAY_AGENT_INFO)
        if relay is not None:
            options.append(Option(OptionCode.RELAY_AGENT_INFO, relay))  # RFC 3046 2.2: echo
        flags = packet.flags & BROADCAST_FLAG
        if kind is MessageType.NAK and packet.giaddr != ZERO:
            flags = BROADCAST_FLAG  # RFC 2131 4.3.2: the relay must broadcast a NAK
        ciaddr = packet.ciaddr if kind is MessageType.ACK else ZERO
        return Packet(
            op=BOOTREPLY,
            xid=packet.xid,
            htype=packet.htype,
            hlen=packet.hlen,
            flags=flags,
            ciaddr=ciaddr,
            yiaddr=ip if ip is not None and kind is not MessageType.NAK else ZERO,
            siaddr=siaddr,
            giaddr=packet.giaddr,
            chaddr=packet.chaddr,
            file=file,
            options=options,
        )

    def _send(self, request: Packet, reply: Packet, subnet: Subnet) -> list[Datagram]:
        """Encode ``reply`` within the client's size limit and address it (RFC 2131 4.1);
        ``[]`` (and a :class:`PacketDropped`) when it does not fit."""
        data = self._encode(request, reply)
        return [] if data is None else self._address(request, reply, data, subnet)

    def _encode(self, request: Packet, reply: Packet) -> bytes | None:
        """``reply`` encoded within the client's size limit, leaving out the optional echoes
        if it does not fit; ``None`` (and a :class:`PacketDropped`) if it still does not."""
        limit = request.max_message_size
        max_size = max(limit - 28, _MIN_MESSAGE) if limit else _MIN_MESSAGE
        try:
            return reply.encode(max_size=max_size)
        except LocalProtocolError:
            pass
        # The host name echo is optional (RFC 2132 3.14); option 82 is echoed for a relay
        # (RFC 3046 2.2), so it is kept when there is one.
        optional = _ECHOES if request.giaddr == ZERO else _HOSTNAME_ONLY
        shorter = attrs.evolve(reply, options=[o for o in reply.options if o.code not in optional])
        try:
            return shorter.encode(max_size=max_size)
        except LocalProtocolError as exc:
            self._drop(f"reply does not fit: {exc}", None, request.mac)
            return None

    def _address(
        self, request: Packet, reply: Packet, data: bytes, subnet: Subnet
    ) -> list[Datagram]:
        """Where ``data`` (the encoded ``reply``) goes (RFC 2131 4.1)."""
        if request.giaddr != ZERO:
            return [Datagram(data, request.giaddr, SERVER_PORT)]
        # Only an ACK carries ciaddr (never an OFFER or a NAK); unicast to it only when it
        # lies in the client's subnet, never to an address the client merely claims.
        ciaddr = reply.ciaddr
        if ciaddr != ZERO and ciaddr in subnet.network:
            return [Datagram(data, ciaddr, CLIENT_PORT)]
        # Broadcast flag set, or clear (where RFC 2131 would unicast to yiaddr by MAC).
        return [Datagram(data, BROADCAST, CLIENT_PORT, True)]


@functools.lru_cache(maxsize=256)
def _subnet_options(subnet: Subnet) -> tuple[Option, ...]:
    """The options every OFFER and ACK of ``subnet`` carries (the same for every reply)."""
    options = [
        Option(OptionCode.SUBNET_MASK, subnet.network.netmask),
        Option(OptionCode.BROADCAST_ADDRESS, subnet.network.broadcast_address),
    ]
    if subnet.router:
        options.append(Option(OptionCode.ROUTER, subnet.router))
    if subnet.dns:
        options.append(Option(OptionCode.DNS_SERVER, subnet.dns))
    if subnet.domain is not None:
        options.append(Option(OptionCode.DOMAIN_NAME, subnet.domain))
    taken = {o.code for o in options} | {51, 53, 54, 58, 59}
    options += [o for o in subnet.options if o.code not in taken]
    return tuple(options)
