"""ProxyDHCP (PXE spec, RackHD's on-dhcp-proxy): boot files for PXE clients, no addresses.

PXE ROMs that got an address from a DHCP server which said ``PXEClient`` (option 60) and no
boot file ask a proxy on UDP 4011 with a DHCPREQUEST; when ``answer_on_67`` is set the proxy
also answers their DISCOVERs on 67 with an address-less OFFER (``yiaddr`` 0). The boot file
comes from an ordered table of :class:`BootRule` (first match wins); :func:`default_rules`
is RackHD's table.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

import attrs

from ._errors import LocalProtocolError, MalformedPacket
from .datagram import BROADCAST, CLIENT_PORT, PROXY_PORT, SERVER_PORT, Datagram
from .events import BootFileChosen, PacketDropped, ProxyEvent
from .options import MessageType, Option, OptionCode
from .packet import BOOTREPLY, BOOTREQUEST, BROADCAST_FLAG, ZERO, Packet, parse

PXE_CLIENT = "PXEClient"
PROFILES_PATH = "/api/current/profiles"
MELLANOX_OUIS = ("f4:52:14", "ec:0d:9a", "e4:1d:2d", "24:8a:07", "00:25:8b", "00:02:c9", "7c:fe:90")
_DISCOVERY_CONTROL = bytes((6, 1, 8))
"""PXE vendor sub-option 6 = 8: a boot file is given, download it without discovery."""


@attrs.frozen
class BootRequest:
    """What a boot rule looks at, taken from a client's packet."""

    mac: str
    architecture: int | None = None
    """The first (preferred) architecture of option 93."""
    user_class: bytes | None = None
    vendor_class: str | None = None

    @classmethod
    def from_packet(cls, packet: Packet) -> BootRequest:
        """The facts of ``packet``."""
        arches = packet.architectures
        arch = arches[0] if arches else None
        return cls(packet.mac, arch, _user_class(packet), packet.vendor_class)

    @property
    def is_pxe(self) -> bool:
        """Option 60 starts with ``PXEClient``."""
        return self.vendor_class is not None and self.vendor_class.startswith(PXE_CLIENT)


def _user_class(packet: Packet) -> bytes | None:
    """Option 77 as iPXE sends it (plain text), also when RFC 3004-framed (length first)."""
    raw = packet.user_class
    if raw and raw[0] == len(raw) - 1 and len(raw) > 1:
        return raw[1:]
    return raw


def _arches(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


def _prefixes(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(prefix.lower() for prefix in value)


@attrs.frozen
class BootRule:
    """Pick ``bootfile`` when every given condition holds (``None``/empty means any).

    ``architectures``: option 93's first value is one of these. ``user_class``: option 77
    equals it. ``vendor_class_prefix``: option 60 is present and starts with it (``""``:
    present at all). ``mac_prefixes``: the MAC starts with one of them. ``{mac}`` in
    ``bootfile`` is replaced with the client's MAC.
    """

    bootfile: str
    name: str = ""
    architectures: frozenset[int] | None = attrs.field(default=None, converter=_arches)
    user_class: bytes | None = None
    vendor_class_prefix: str | None = None
    mac_prefixes: tuple[str, ...] = attrs.field(default=(), converter=_prefixes)

    def matches(self, request: BootRequest) -> bool:
        """Whether this rule applies to ``request``."""
        if self.architectures is not None and request.architecture not in self.architectures:
            return False
        if self.user_class is not None and request.user_class != self.user_class:
            return False
        if self.vendor_class_prefix is not None and not (
            request.vendor_class is not None
            and request.vendor_class.startswith(self.vendor_class_prefix)
        ):
            return False
        return not self.mac_prefixes or request.mac.startswith(self.mac_prefixes)

    def render(self, request: BootRequest) -> str:
        """The boot file for this client."""
        return self.bootfile.replace("{mac}", request.mac)


def default_rules(api_server: str, api_port: int = 9080) -> tuple[BootRule, ...]:
    """RackHD's boot-file table (on-dhcp-proxy ``getDefaultBootfile``) in its order.

    iPXE itself (user class ``MonoRail`` or ``iPXE``), Arista and Mellanox FlexBoot get the
    HTTP profile URL; other PXE ROMs get an iPXE build for their architecture. The ARM64
    rule is an addition (RackHD had no ARM64 build).
    """
    profiles = f"http://{api_server}:{api_port}{PROFILES_PATH}"
    return (
        BootRule(profiles, "monorail-ipxe", user_class=b"MonoRail"),
        BootRule(profiles, "ipxe", user_class=b"iPXE"),
        BootRule(profiles + "?macs={mac}", "arista", vendor_class_prefix="Arista"),
        BootRule(profiles, "mellanox", mac_prefixes=MELLANOX_OUIS),
        BootRule("monorail.intel.ipxe", "intel-nuc", mac_prefixes=("ec:a8:6b",)),
        BootRule("monorail-efi64-snponly.efi", "efi-x64", frozenset({7, 9}), None, ""),
        BootRule("monorail-efi32-snponly.efi", "efi-ia32", frozenset({6}), None, ""),
        BootRule("monorail-arm64-snponly.efi", "efi-arm64", frozenset({11}), None, ""),
        BootRule(
            "monorail-undionly.kpxe", "bios-undi", frozenset({0}), None, "PXEClient:Arch:00000:UNDI"
        ),
        BootRule("monorail.ipxe", "pxe", vendor_class_prefix=""),
    )


def choose_rule(rules: Iterable[BootRule], request: BootRequest) -> BootRule | None:
    """The first rule that matches, or ``None``."""
    for rule in rules:
        if rule.matches(request):
            return rule
    return None


def _rule_tuple(rules: Iterable[BootRule]) -> tuple[BootRule, ...]:
    return tuple(rules)


@attrs.frozen
class ProxyConfig:
    """How the proxy answers.

    ``server_ip`` is option 54; ``tftp_server`` (default ``server_ip``) goes in ``siaddr``,
    ``sname`` and option 66. ``pxe_options`` adds what the PXE spec asks of a proxy (60
    ``PXEClient``, 43 discovery control, 97 echoed); without it the reply is RackHD's
    minimal one (53 and 67 only).
    """

    server_ip: IPv4Address
    rules: tuple[BootRule, ...] = attrs.field(converter=_rule_tuple)
    tftp_server: IPv4Address | None = None
    answer_on_67: bool = False
    pxe_options: bool = True

    @property
    def next_server(self) -> IPv4Address:
        """The TFTP server clients are sent to."""
        return self.tftp_server if self.tftp_server is not None else self.server_ip


class ProxyDhcp:
    """The ProxyDHCP engine: datagrams in, datagrams and events out.

    :meth:`receive` does everything; a service that must ask the bus whether to answer a
    node (RackHD's ``dhcpSendBootFileName``) can call :meth:`classify`, decide, then
    :meth:`answer`.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self._events: list[ProxyEvent] = []

    def take_events(self) -> list[ProxyEvent]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def receive(
        self, data: bytes, source: tuple[str, int], now: float, *, port: int = PROXY_PORT
    ) -> list[Datagram]:
        """Handle one datagram that arrived on ``port`` (4011, or 67 when answering there)."""
        packet = self.classify(data, source, port=port)
        return [] if packet is None else self.answer(packet, source, port=port)

    def classify(
        self, data: bytes, source: tuple[str, int], *, port: int = PROXY_PORT
    ) -> Packet | None:
        """The packet if the proxy should answer it, else ``None`` (malformed ones are
        reported as :class:`PacketDropped`; other clients' traffic is ignored quietly)."""
        try:
            packet = parse(data)
        except MalformedPacket as exc:
            self._events.append(PacketDropped(f"malformed: {exc}", source))
            return None
        if packet.op != BOOTREQUEST or not BootRequest.from_packet(packet).is_pxe:
            return None
        kind = packet.message_type
        if port == PROXY_PORT:
            return packet if kind in (MessageType.REQUEST, MessageType.INFORM) else None
        if not self.config.answer_on_67:
            return None
        if kind is MessageType.DISCOVER:
            return packet
        if kind is MessageType.REQUEST and packet.server_id == self.config.server_ip:
            return packet
        return None

    def answer(
        self,
        packet: Packet,
        source: tuple[str, int],
        *,
        port: int = PROXY_PORT,
        bootfile: str | None = None,
    ) -> list[Datagram]:
        """The reply to a classified packet, with ``bootfile`` or the rule table's choice.

        On 4011 the reply goes to the request's source address and port. A reply that
        cannot be encoded is reported as :class:`PacketDropped` and not sent.
        """
        request = BootRequest.from_packet(packet)
        rule_name = "given"
        if bootfile is None:
            rule = choose_rule(self.config.rules, request)
            if rule is None:
                self._events.append(PacketDropped("no boot rule matches", source, request.mac))
                return []
            bootfile, rule_name = rule.render(request), rule.name
        try:
            data = self.reply_packet(packet, bootfile).encode()
        except LocalProtocolError as exc:
            self._events.append(PacketDropped(f"reply does not fit: {exc}", source, request.mac))
            return []
        ciaddr = packet.ciaddr if packet.ciaddr != ZERO else None
        self._events.append(
            BootFileChosen(
                request.mac, ciaddr, bootfile, rule_name, request.architecture, request.user_class
            )
        )
        if port == PROXY_PORT:
            # Reply where the request came from (legacy ROMs listen on 68, EFI ones on 4011),
            # to the sender's address: ``ciaddr`` is only the client's claim, used when the
            # sender has no address yet.
            host, sport = source
            address = IPv4Address(host) if host not in ("", "0.0.0.0") else ciaddr
            if address is not None:
                return [Datagram(data, address, sport)]
            return [Datagram(data, BROADCAST, CLIENT_PORT, True)]
        if packet.giaddr != ZERO:
            return [Datagram(data, packet.giaddr, SERVER_PORT)]
        return [Datagram(data, BROADCAST, CLIENT_PORT, True)]

    def reply_packet(self, packet: Packet, bootfile: str) -> Packet:
        """The proxy's OFFER (to a DISCOVER) or ACK carrying ``bootfile``."""
        config = self.config
        kind = MessageType.OFFER if packet.message_type is MessageType.DISCOVER else MessageType.ACK
        options = [Option(OptionCode.MESSAGE_TYPE, kind)]
        if config.pxe_options:
            options += [
                Option(OptionCode.SERVER_ID, config.server_ip),
                Option(OptionCode.VENDOR_CLASS_ID, PXE_CLIENT),
                Option(OptionCode.VENDOR_SPECIFIC, _vendor_options(packet)),
            ]
            if packet.machine_id is not None:
                options.append(Option(OptionCode.CLIENT_MACHINE_ID, packet.machine_id))
            options.append(Option(OptionCode.TFTP_SERVER_NAME, str(config.next_server)))
        options.append(Option(OptionCode.BOOTFILE_NAME, bootfile))
        encoded = bootfile.encode("utf-8")
        return Packet(
            op=BOOTREPLY,
            xid=packet.xid,
            htype=packet.htype,
            hlen=packet.hlen,
            flags=packet.flags & BROADCAST_FLAG,
            ciaddr=packet.ciaddr,
            siaddr=config.next_server,
            giaddr=packet.giaddr,
            chaddr=packet.chaddr,
            sname=str(config.next_server).encode(),
            file=encoded if len(encoded) < 128 else b"",
            options=options,
        )


def _vendor_options(packet: Packet) -> bytes:
    """Option 43 for a PXE reply: discovery control, and the client's boot item (71) echoed
    (the first one only: a client names one boot item)."""
    out = bytearray(_DISCOVERY_CONTROL)
    raw = packet.get(OptionCode.VENDOR_SPECIFIC)
    if isinstance(raw, bytes):
        i = 0
        while i < len(raw) and raw[i] != 255:
            if raw[i] == 0:
                i += 1
                continue
            if i + 2 > len(raw):
                break
            code, length = raw[i], raw[i + 1]
            if code == 71 and i + 2 + length <= len(raw):
                out += raw[i : i + 2 + length]
                break
            i += 2 + length
    return bytes(out) + b"\xff"
