"""DHCP (RFC 2131/2132) and ProxyDHCP as a sans-I/O core: bytes and time in, bytes,
deadlines and events out.

* :class:`Packet` and the option types: the codec (option overload, RFC 3396 long
  options, RFC 3046 relay agent information, the PXE options of RFC 4578).
* :class:`LeaseTable` over :class:`Subnet` s, persisted through a :class:`LeaseStore`
  (:class:`SqliteLeaseStore`, :class:`MemoryLeaseStore`).
* :class:`DhcpServer`: the server engine; :class:`ProxyDhcp`: boot files for PXE clients
  chosen by :class:`BootRule` tables; :class:`DhcpClient`: the client state machine.
* :class:`DatagramServer`, :func:`open_udp_socket`, :func:`run_deadlines`: the thin
  Trio adapter that puts an engine on a UDP socket.
* :mod:`protocols.dhcp.strategies`: Hypothesis strategies for property tests.

Errors: :class:`MalformedPacket` (a :class:`RemoteProtocolError`: the peer sent garbage)
and :class:`LocalProtocolError` (the API was misused), both :class:`ProtocolError`.
"""

from ._errors import LocalProtocolError, MalformedPacket, ProtocolError, RemoteProtocolError
from .client import (
    ClientBound,
    ClientConfig,
    ClientEvent,
    ClientGaveUp,
    ClientLease,
    ClientLeaseLost,
    ClientNak,
    ClientState,
    DhcpClient,
)
from .datagram import BROADCAST, CLIENT_PORT, PROXY_PORT, SERVER_PORT, Datagram
from .events import (
    BootFileChosen,
    LeaseBound,
    LeaseDeclined,
    LeaseExpired,
    LeaseOffered,
    LeaseReleased,
    PacketDropped,
    ProxyEvent,
    ServerEvent,
)
from .leases import DEFAULT_MAX_LEASES, Lease, LeaseState, LeaseTable
from .options import (
    ClientArch,
    ClientMachineId,
    ClientNdi,
    Kind,
    MessageType,
    Option,
    OptionCode,
    OptionValue,
    RelayAgentInfo,
    decode_value,
    encode_value,
    option_kind,
)
from .packet import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    MAX_OPTION_INSTANCES,
    MAX_PACKET_SIZE,
    Packet,
    encode,
    parse,
)
from .proxy import (
    BootRequest,
    BootRule,
    ProxyConfig,
    ProxyDhcp,
    choose_rule,
    default_rules,
)
from .server import DhcpServer, ServerConfig, ServerStatistics
from .store import LeaseStore, MemoryLeaseStore, SqliteLeaseStore
from .subnet import Subnet
from .udp import DatagramServer, open_udp_socket, run_deadlines

__all__ = [
    "DatagramServer",
    "open_udp_socket",
    "run_deadlines",
    "BOOTREPLY",
    "BOOTREQUEST",
    "BROADCAST",
    "BROADCAST_FLAG",
    "CLIENT_PORT",
    "DEFAULT_MAX_LEASES",
    "MAX_OPTION_INSTANCES",
    "MAX_PACKET_SIZE",
    "PROXY_PORT",
    "SERVER_PORT",
    "BootFileChosen",
    "BootRequest",
    "BootRule",
    "ClientArch",
    "ClientBound",
    "ClientConfig",
    "ClientEvent",
    "ClientGaveUp",
    "ClientLease",
    "ClientLeaseLost",
    "ClientMachineId",
    "ClientNak",
    "ClientNdi",
    "ClientState",
    "Datagram",
    "DhcpClient",
    "DhcpServer",
    "Kind",
    "Lease",
    "LeaseBound",
    "LeaseDeclined",
    "LeaseExpired",
    "LeaseOffered",
    "LeaseReleased",
    "LeaseState",
    "LeaseStore",
    "LeaseTable",
    "LocalProtocolError",
    "MalformedPacket",
    "MemoryLeaseStore",
    "MessageType",
    "Option",
    "OptionCode",
    "OptionValue",
    "Packet",
    "PacketDropped",
    "ProtocolError",
    "ProxyConfig",
    "ProxyDhcp",
    "ProxyEvent",
    "RelayAgentInfo",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerEvent",
    "ServerStatistics",
    "SqliteLeaseStore",
    "Subnet",
    "choose_rule",
    "decode_value",
    "default_rules",
    "encode",
    "encode_value",
    "option_kind",
    "parse",
]
