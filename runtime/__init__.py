"""rackbus runtime: actors, mailboxes, supervision, topic routing, buses and RPC.

Generic: it knows nothing of RackHD, DHCP or nodes. Start with ``Runtime``,
``Actor`` and ``handler``; see the README for a complete example.
"""

from .actor import Actor, HandlerSpec, handler
from .amqp_bus import AmqpBus, AmqpBusStatistics
from .bus import DEFAULT_CALL_TIMEOUT, Binding, Bus, BusStatistics, Consumer
from .codec import Codec
from .context import ActorContext, ActorRef, ActorStatistics
from .delivery import Address, Delivery, Responder
from .envelopes import ErrorEvent, IpAddress, LogEvent, MacAddress, Result
from .errors import (
    ActorExists,
    ActorNotFound,
    ActorStartError,
    BusUnavailable,
    CallTimeout,
    ConnectionLost,
    DecodeError,
    EncodeError,
    InvalidRoutingKey,
    MailboxClosed,
    MailboxFull,
    NoResponder,
    PublishBufferFull,
    PublishRefused,
    PublishTimeout,
    RackbusError,
    RemoteError,
    RestartIntensityExceeded,
    RuntimeClosed,
)
from .mailbox import Mailbox, Overflow
from .memory_bus import MemoryBus
from .message import message, wire_type_name
from .runtime import OWN_EXCHANGE, Runtime, RuntimeStatistics
from .supervisor import (
    Backoff,
    Child,
    Restart,
    Strategy,
    Supervisor,
    SupervisorStatistics,
    TaskChild,
)
from .timers import Timer, TooManyTimers
from .topic import TopicIndex, topic_matches

__all__ = [
    "Timer",
    "TooManyTimers",
    "DEFAULT_CALL_TIMEOUT",
    "OWN_EXCHANGE",
    "Actor",
    "ActorContext",
    "ActorExists",
    "ActorNotFound",
    "ActorRef",
    "ActorStartError",
    "ActorStatistics",
    "AmqpBus",
    "AmqpBusStatistics",
    "Address",
    "Backoff",
    "Binding",
    "Bus",
    "BusUnavailable",
    "BusStatistics",
    "CallTimeout",
    "Child",
    "Codec",
    "ConnectionLost",
    "Consumer",
    "DecodeError",
    "Delivery",
    "EncodeError",
    "ErrorEvent",
    "HandlerSpec",
    "InvalidRoutingKey",
    "IpAddress",
    "LogEvent",
    "MacAddress",
    "Mailbox",
    "MailboxClosed",
    "MailboxFull",
    "MemoryBus",
    "NoResponder",
    "Overflow",
    "PublishBufferFull",
    "PublishRefused",
    "PublishTimeout",
    "RackbusError",
    "RemoteError",
    "Responder",
    "Restart",
    "RestartIntensityExceeded",
    "Result",
    "Runtime",
    "RuntimeClosed",
    "RuntimeStatistics",
    "Strategy",
    "Supervisor",
    "SupervisorStatistics",
    "TaskChild",
    "TopicIndex",
    "handler",
    "message",
    "topic_matches",
    "wire_type_name",
]
