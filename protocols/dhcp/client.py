"""A sans-I/O DHCP client (RFC 2131 4.4): INIT, SELECTING, REQUESTING, BOUND, RENEWING,
REBINDING and INIT-REBOOT, with retransmission deadlines and exponential backoff.

The caller passes the time and a :class:`random.Random` (for transaction ids and jitter),
sends what each call returns, and calls :meth:`DhcpClient.timeout` at
:meth:`DhcpClient.next_deadline`. In relay mode (``relay`` set) every message goes to
``server`` with ``giaddr`` = ``relay``, as a relay agent would forward it, so one process
can drive many MACs against a server (perfdhcp's ``-l``).
"""

from __future__ import annotations

import enum
import random
from ipaddress import IPv4Address
from typing import TypeAlias

import attrs

from ._errors import LocalProtocolError, MalformedPacket
from .datagram import BROADCAST, SERVER_PORT, Datagram
from .options import ClientMachineId, MessageType, Option, OptionCode
from .packet import BOOTREPLY, BOOTREQUEST, BROADCAST_FLAG, ZERO, Packet, parse

INFINITE_LEASE = 0xFFFFFFFF
_REQUESTED = (1, 3, 6, 12, 15, 28, 42, 51, 54, 58, 59, 66, 67)


class ClientState(enum.Enum):
    """RFC 2131 figure 5, plus ``FAILED`` when the client gave up."""

    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    INIT_REBOOT = "init-reboot"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    FAILED = "failed"


@attrs.frozen
class ClientConfig:
    """One client's identity and timing.

    ``initial_timeout`` doubles per retransmission up to ``max_timeout``, with up to a
    quarter of it as random jitter (RFC 2131: 4 s, 8 s, ... 64 s, +/- 1 s).
    ``max_attempts`` REQUESTs are sent before starting over from DISCOVER. ``give_up_after``
    seconds after :meth:`DhcpClient.start` an unbound client stops (state ``FAILED``).
    ``previous_ip`` starts in INIT-REBOOT. ``relay``/``server``: see the module docstring.
    """

    mac: bytes = attrs.field(validator=lambda _i, _a, v: _check_mac(v))
    hostname: str | None = None
    vendor_class: str | None = None
    architecture: int | None = None
    user_class: bytes | None = None
    machine_id: ClientMachineId | None = None
    previous_ip: IPv4Address | None = None
    relay: IPv4Address | None = None
    server: IPv4Address | None = None
    broadcast: bool = True
    initial_timeout: float = 4.0
    max_timeout: float = 64.0
    max_attempts: int = 4
    give_up_after: float | None = None


def _check_mac(value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 6:
        raise LocalProtocolError("mac must be 6 bytes")


@attrs.frozen
class ClientLease:
    """What the client was given, with absolute times."""

    ip: IPv4Address
    server_id: IPv4Address | None
    bound_at: float
    lease_time: int
    t1: float
    t2: float
    options: tuple[Option, ...] = ()

    @property
    def renew_at(self) -> float:
        """When RENEWING starts."""
        return self.bound_at + self.t1

    @property
    def rebind_at(self) -> float:
        """When REBINDING starts."""
        return self.bound_at + self.t2

    @property
    def expires(self) -> float:
        """When the lease ends (``inf`` for an infinite lease)."""
        if self.lease_time == INFINITE_LEASE:
            return float("inf")
        return self.bound_at + self.lease_time


@attrs.frozen
class ClientBound:
    """The client holds ``lease`` (``renewed``: it extended the lease it had)."""

    lease: ClientLease
    renewed: bool


@attrs.frozen
class ClientNak:
    """The server refused; the client starts over."""

    server_id: IPv4Address | None


@attrs.frozen
class ClientLeaseLost:
    """The lease ended without a renewal; the client starts over."""

    ip: IPv4Address


@attrs.frozen
class ClientGaveUp:
    """``give_up_after`` passed without a lease."""

    state: ClientState


ClientEvent: TypeAlias = ClientBound | ClientNak | ClientLeaseLost | ClientGaveUp


class DhcpClient:
    """One client's state machine."""

    def __init__(self, config: ClientConfig, rng: random.Random) -> None:
        if config.relay is not None and config.server is None:
            raise LocalProtocolError("relay mode needs the server's address")
        self.config = config
        self.state = ClientState.INIT
        self.lease: ClientLease | None = None
        self.xid = 0
        self._rng = rng
        self._events: list[ClientEvent] = []
        self._deadline: float | None = None
        self._give_up: float | None = None
        self._attempts = 0
        self._offer: Packet | None = None
        self._sent: Packet | None = None

    # -- calls -------------------------------------------------------------------------------

    def start(self, now: float) -> list[Datagram]:
        """Begin: DISCOVER, or (with ``previous_ip``) an INIT-REBOOT REQUEST."""
        if self.state is not ClientState.INIT:
            raise LocalProtocolError(f"start() in state {self.state.value}")
        if self.config.give_up_after is not None:
            self._give_up = now + self.config.give_up_after
        if self.config.previous_ip is not None:
            self._new_xid()
            self.state = ClientState.INIT_REBOOT
            message = self._message(MessageType.REQUEST, requested=self.config.previous_ip)
            return self._transmit(message, now)
        return self._discover(now)

    def receive(self, data: bytes, now: float) -> list[Datagram]:
        """Handle a datagram from a server; unrelated or malformed ones are ignored."""
        try:
            packet = parse(data)
        except MalformedPacket:
            return []
        if packet.op != BOOTREPLY or packet.xid != self.xid or packet.chaddr != self.config.mac:
            return []
        kind = packet.message_type
        state = self.state
        if state is ClientState.SELECTING and kind is MessageType.OFFER:
            if packet.yiaddr == ZERO or packet.server_id is None:
                return []
            self._offer = packet
            self.state = ClientState.REQUESTING
            self._attempts = 0
            message = self._message(
                MessageType.REQUEST, requested=packet.yiaddr, server_id=packet.server_id
            )
            return self._transmit(message, now)
        waiting = (
            ClientState.REQUESTING,
            ClientState.INIT_REBOOT,
            ClientState.RENEWING,
            ClientState.REBINDING,
        )
        if state not in waiting:
            return []
        if kind is MessageType.NAK:
            self._events.append(ClientNak(packet.server_id))
            self.lease = None
            return self._discover(now)
        if kind is MessageType.ACK:
            return self._bound(packet, now)
        return []

    def timeout(self, now: float) -> list[Datagram]:
        """Act on a passed deadline (retransmit, renew, rebind, start over, give up)."""
        if self._deadline is None or now < self._deadline:
            return []
        state = self.state
        bound_states = (ClientState.BOUND, ClientState.RENEWING, ClientState.REBINDING)
        if self._give_up is not None and now >= self._give_up and state not in bound_states:
            self.state = ClientState.FAILED
            self._deadline = None
            self._events.append(ClientGaveUp(state))
            return []
        lease = self.lease
        if state in bound_states and lease is not None:
            if now >= lease.expires:
                self._events.append(ClientLeaseLost(lease.ip))
                self.lease = None
                return self._discover(now)
            if now >= lease.rebind_at:
                if state is not ClientState.REBINDING:
                    self.state = ClientState.REBINDING
                    self._new_xid()
                return self._renew_message(now, lease, lease.expires)
            if now >= lease.renew_at:
                if state is not ClientState.RENEWING:
                    self.state = ClientState.RENEWING
                    self._new_xid()
                return self._renew_message(now, lease, lease.rebind_at)
            self._deadline = lease.renew_at
            return []
        self._attempts += 1
        requesting = state in (ClientState.REQUESTING, ClientState.INIT_REBOOT)
        if requesting and self._attempts >= self.config.max_attempts:
            return self._discover(now)
        if self._sent is None:
            return self._discover(now)
        return self._transmit(self._sent, now)

    def release(self, now: float) -> list[Datagram]:
        """Give the lease back (DHCPRELEASE, unicast to the server) and return to INIT."""
        lease = self.lease
        if lease is None or self.state not in (
            ClientState.BOUND,
            ClientState.RENEWING,
            ClientState.REBINDING,
        ):
            raise LocalProtocolError("release() without a lease")
        self._new_xid()
        message = attrs.evolve(
            self._message(MessageType.RELEASE, server_id=lease.server_id), ciaddr=lease.ip, flags=0
        )
        self.state = ClientState.INIT
        self.lease = None
        self._deadline = None
        return [self._datagram(message, unicast=lease.server_id)]

    def next_deadline(self) -> float | None:
        """When :meth:`timeout` must next be called."""
        return self._deadline

    def take_events(self) -> list[ClientEvent]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # -- internals ---------------------------------------------------------------------------

    def _new_xid(self) -> None:
        self.xid = self._rng.getrandbits(32)

    def _backoff(self) -> float:
        config = self.config
        base = min(config.initial_timeout * 2 ** min(self._attempts, 30), config.max_timeout)
        jitter = config.initial_timeout / 4
        delay: float = base + self._rng.uniform(-jitter, jitter)
        return max(delay, config.initial_timeout / 2)

    def _discover(self, now: float) -> list[Datagram]:
        self.state = ClientState.SELECTING
        self._attempts = 0
        self._offer = None
        self._new_xid()
        return self._transmit(self._message(MessageType.DISCOVER), now)

    def _transmit(self, message: Packet, now: float) -> list[Datagram]:
        self._sent = message
        self._deadline = now + self._backoff()
        if self._give_up is not None and self.state not in (
            ClientState.BOUND,
            ClientState.RENEWING,
            ClientState.REBINDING,
        ):
            self._deadline = min(self._deadline, self._give_up)
        return [self._datagram(message)]

    def _renew_message(self, now: float, lease: ClientLease, until: float) -> list[Datagram]:
        """A RENEWING (unicast) or REBINDING (broadcast) REQUEST; retry at half the time left."""
        renewing = self.state is ClientState.RENEWING
        message = attrs.evolve(self._message(MessageType.REQUEST), ciaddr=lease.ip, flags=0)
        self._sent = message
        wait = max((until - now) / 2, self.config.initial_timeout)
        self._deadline = min(now + wait, until)
        if self._deadline <= now:
            self._deadline = until
        return [self._datagram(message, unicast=lease.server_id if renewing else None)]

    def _bound(self, packet: Packet, now: float) -> list[Datagram]:
        ip = packet.yiaddr if packet.yiaddr != ZERO else packet.ciaddr
        if ip == ZERO:
            return []
        offer = self._offer
        if (
            self.state is ClientState.REQUESTING
            and offer is not None
            and (ip != offer.yiaddr or packet.server_id not in (None, offer.server_id))
        ):
            return []
        renewed = self.state in (ClientState.RENEWING, ClientState.REBINDING)
        value = packet.get(OptionCode.LEASE_TIME)
        lease_time = value if isinstance(value, int) else INFINITE_LEASE
        t1 = packet.get(OptionCode.RENEWAL_TIME)
        t2 = packet.get(OptionCode.REBINDING_TIME)
        server_id = packet.server_id
        if server_id is None and self.lease is not None:
            server_id = self.lease.server_id
        lease = ClientLease(
            ip,
            server_id,
            now,
            lease_time,
            float(t1) if isinstance(t1, int) else lease_time * 0.5,
            float(t2) if isinstance(t2, int) else lease_time * 0.875,
            packet.options,
        )
        self.lease = lease
        self.state = ClientState.BOUND
        self._attempts = 0
        self._sent = None
        self._deadline = lease.renew_at if lease_time != INFINITE_LEASE else None
        self._events.append(ClientBound(lease, renewed))
        return []

    def _message(
        self,
        kind: MessageType,
        *,
        requested: IPv4Address | None = None,
        server_id: IPv4Address | None = None,
    ) -> Packet:
        config = self.config
        options = [Option(OptionCode.MESSAGE_TYPE, kind)]
        if requested is not None:
            options.append(Option(OptionCode.REQUESTED_IP, requested))
        if server_id is not None:
            options.append(Option(OptionCode.SERVER_ID, server_id))
        if kind is not MessageType.RELEASE:
            options.append(Option(OptionCode.PARAMETER_REQUEST_LIST, _REQUESTED))
            options.append(Option(OptionCode.MAX_MESSAGE_SIZE, 1500))
            if config.hostname is not None:
                options.append(Option(OptionCode.HOSTNAME, config.hostname))
            if config.vendor_class is not None:
                options.append(Option(OptionCode.VENDOR_CLASS_ID, config.vendor_class))
            if config.user_class is not None:
                options.append(Option(OptionCode.USER_CLASS, config.user_class))
            if config.architecture is not None:
                options.append(Option(OptionCode.CLIENT_ARCH, (config.architecture,)))
            if config.machine_id is not None:
                options.append(Option(OptionCode.CLIENT_MACHINE_ID, config.machine_id))
        relayed = config.relay is not None
        return Packet(
            op=BOOTREQUEST,
            xid=self.xid,
            hops=1 if relayed else 0,
            flags=BROADCAST_FLAG if config.broadcast and not relayed else 0,
            giaddr=config.relay or ZERO,
            chaddr=config.mac,
            options=options,
        )

    def _datagram(self, message: Packet, *, unicast: IPv4Address | None = None) -> Datagram:
        data = message.encode()
        if self.config.server is not None and self.config.relay is not None:
            return Datagram(data, self.config.server, SERVER_PORT)
        if unicast is not None:
            return Datagram(data, unicast, SERVER_PORT)
        return Datagram(data, BROADCAST, SERVER_PORT, True)
