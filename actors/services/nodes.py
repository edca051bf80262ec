"""``NodeDirectory``: which node a MAC address or an IP address belongs to.

Events about a machine end in its node id (``tftp.success.<node>``,
``dhcp.bind.success.<node>``). The directory maps MACs to node ids (from the
configuration, or registered when a node is discovered) and IPs to MACs (learnt
from bound DHCP leases); anything it does not know is ``external``, as in RackHD.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime import MacAddress

from ..convention import check_id
from ..exchanges.events import EXTERNAL

MAX_ADDRESSES = 1_000_000
"""Bound on the IP-to-MAC map; the oldest entry goes first when it is full."""


class NodeDirectory:
    """Node ids by MAC, MACs by IP; shared by the services of one runtime."""

    def __init__(self, nodes: Mapping[str, str] | None = None) -> None:
        self._nodes: dict[str, str] = {}
        self._macs: dict[str, str] = {}
        for mac, node_id in (nodes or {}).items():
            self.register(mac, node_id)

    def register(self, mac: str, node_id: str) -> None:
        """Say that ``mac`` belongs to node ``node_id``."""
        self._nodes[MacAddress(mac).value] = check_id(node_id, "node id")

    def forget(self, mac: str) -> None:
        """Forget the node of ``mac``."""
        self._nodes.pop(MacAddress(mac).value, None)

    def learn_address(self, ip: str, mac: str) -> None:
        """Say that ``ip`` is held by ``mac`` (a lease was bound)."""
        self._macs.pop(ip, None)
        if len(self._macs) >= MAX_ADDRESSES:
            del self._macs[next(iter(self._macs))]
        self._macs[ip] = MacAddress(mac).value

    def forget_address(self, ip: str) -> None:
        """Say that ``ip`` is no longer held (its lease ended)."""
        self._macs.pop(ip, None)

    def mac_for_ip(self, ip: str) -> str | None:
        """The MAC holding ``ip``, if known."""
        return self._macs.get(ip)

    def node_for_mac(self, mac: str) -> str:
        """The node id of ``mac``, or ``external``."""
        try:
            return self._nodes.get(MacAddress(mac).value, EXTERNAL)
        except ValueError:
            return EXTERNAL

    def node_for_ip(self, ip: str) -> str:
        """The node id of the machine holding ``ip``, or ``external``."""
        mac = self._macs.get(ip)
        return EXTERNAL if mac is None else self.node_for_mac(mac)
