"""``AmqpBus``: the ``Bus`` on RabbitMQ, with the same contract as ``MemoryBus``.

The broker connection is ``AmqpConnection``, native to Trio (its docstring
gives the measurements behind that choice). Topology and delivery:

* the exchanges are durable topic exchanges, declared on first use (or by ``declare``);
* one consumer queue per process (durable, named after the runtime, deleted
  on a clean stop and expiring ``queue_expires`` seconds after a crash); every
  local binding adds an AMQP binding to it (shared by equal patterns), and
  deliveries are routed to local consumers by the same ``TopicIndex`` as on
  the in-memory bus;
* publishes use publisher confirms and persistent messages: ``publish``
  returns once the broker has the message. Deliveries are acknowledged after
  every local consumer settled them (handled, refused or dropped), so delivery
  is at least once: after a reconnect, unacknowledged messages come again;
* a consumer whose mailbox is full holds up only its own deliveries: they
  wait, in order, in a backlog of that binding (bounded by the prefetch,
  since they are unacknowledged) while the others keep flowing. A consumer
  that refuses (``MailboxFull``, a stopped actor) is counted in ``refused``
  and the message is acknowledged for it; a call that every consumer refused
  gets a 503 ``ErrorEvent`` back;
* calls go out ``mandatory`` with ``reply_to`` set to direct reply-to and a
  ``correlation_id``; a ``basic.return`` is an immediate ``NoResponder``.
  RackHD's own services answer without a ``correlation_id`` (each of its
  calls had a reply queue of its own): to call them, create the bus with
  ``reply_queue_per_call=True``, which does the same at the cost of a queue
  declared and deleted per call; unmatched replies are counted and logged;
  replies travel as RackHD does (``Result {value}``, ``ErrorEvent``, or an
  envelope such as ``MacAddress``), the value's own type in a header;
* when the connection drops (or the broker cancels the consumer, say because
  the queue was deleted), the bus reconnects with exponential backoff and
  jitter, declares and binds again and resumes consuming. Publishes made
  meanwhile wait in a bounded buffer (``PublishBufferFull`` when full) and go
  out after the reconnect; calls in flight fail with ``ConnectionLost`` and
  new calls with ``BusUnavailable`` until the connection is back.

The bus is one object assembled from a part per concern, one module each:
``amqp_reconnect`` (the connection over its life), ``amqp_publishing``
(confirms and the outage buffer), ``amqp_rpc`` (calls, replies, responders)
and ``amqp_consuming`` (deliveries, backlogs, acks). This module holds the
configuration, the state they share, the bindings and the statistics.
"""

from __future__ import annotations

import math
import random
import ssl
import uuid
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

import attrs
import trio

from .amqp_connection import AmqpConnection
from .amqp_consuming import Deliveries
from .amqp_publishing import JSON, Publish, Publishing
from .amqp_reconnect import RECONNECT_BACKOFF, Reconnecting
from .amqp_rpc import REPLY_TO, VALUE_TYPE_HEADER, Calls
from .amqp_url import AmqpAddress
from .amqp_wire import AmqpClosed, AmqpMessage
from .bus import (
    Binding,
    Bus,
    BusStatistics,
    Consumer,
    RoutingTable,
    check_exchange,
)
from .codec import Codec
from .delivery import Delivery, PendingCall
from .errors import ConnectionLost
from .supervisor import Backoff
from .topic import check_pattern

__all__ = [
    "AmqpBus",
    "AmqpBusStatistics",
    "JSON",
    "RECONNECT_BACKOFF",
    "REPLY_TO",
    "VALUE_TYPE_HEADER",
]

T = TypeVar("T")


@attrs.frozen
class AmqpBusStatistics(BusStatistics):
    """``BusStatistics`` plus the state of the broker connection."""

    connected: bool
    reconnects: int
    buffered: int
    unconfirmed: int
    redelivered: int
    unmatched_replies: int


class AmqpBus(Reconnecting, Publishing, Calls, Deliveries, Bus):
    """A bus on a RabbitMQ broker; see the module docstring."""

    def __init__(
        self,
        url: str | AmqpAddress | None = None,
        *,
        name: str = "rackbus",
        codec: Codec | None = None,
        prefetch: int = 1024,
        publish_buffer: int = 10_000,
        heartbeat: int = 30,
        persistent: bool = True,
        queue_expires: float = 60.0,
        connect_timeout: float = 10.0,
        reconnect: Backoff = RECONNECT_BACKOFF,
        ssl_context: ssl.SSLContext | None = None,
        reply_queue_per_call: bool = False,
    ) -> None:
        if isinstance(url, AmqpAddress):
            self.address = url
        else:
            self.address = AmqpAddress.resolve(url, heartbeat=heartbeat, ssl_context=ssl_context)
        self.codec = codec if codec is not None else Codec()
        self.name = name
        self.prefetch = prefetch
        self.publish_buffer = publish_buffer
        self.persistent = persistent
        self.queue_expires = queue_expires
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.reply_queue_per_call = reply_queue_per_call
        self.queue = f"rackbus.{name}.{uuid.uuid4().hex[:12]}"
        self._routes = RoutingTable()
        self._amqp_bindings: dict[tuple[str, str], int] = {}
        self._declared: set[str] = set()
        self._calls: dict[str, PendingCall] = {}
        self._incoming_send, self._incoming = trio.open_memory_channel[tuple[AmqpMessage, int]](
            math.inf
        )
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self._connection: AmqpConnection | None = None
        self._connections: trio.Nursery | None = None
        self._tasks: trio.Nursery | None = None
        self._connected = False
        self._closing = False
        self._reconnects = 0
        self._unconfirmed = 0
        self._buffer: deque[Publish] = deque()
        self._consumer_tag: str | None = None
        self._generation = 0
        self._received: deque[int] = deque()
        #: deliveries waiting for a full consumer, per binding (see ``_drain``)
        self._backlogs: dict[Binding, deque[Delivery]] = {}
        self._settled: set[int] = set()
        self._rng = random.Random()
        self._counts = dict.fromkeys(
            (
                "published",
                "delivered",
                "unroutable",
                "calls",
                "calls_timed_out",
                "no_responder",
                "redelivered",
                "unmatched_replies",
                "refused",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"AmqpBus({self.address.safe!r}, queue={self.queue!r})"

    # -- bindings --------------------------------------------------------------------

    async def declare(self, exchange: str) -> None:
        """Declare ``exchange`` (durable, topic) on the broker now, and again on every reconnect;
        bind and publish do it on first use anyway."""
        await self._declare(exchange)

    async def _declare(self, exchange: str) -> None:
        if exchange not in self._declared:
            check_exchange(exchange)
            connection = self._connection
            if self._connected and connection is not None:
                await self._on_broker(connection.exchange_declare(exchange))
            self._declared.add(exchange)

    async def _on_broker(self, operation: Coroutine[Any, Any, T]) -> T:
        """Await a synchronous method; a lost connection becomes ``ConnectionLost``."""
        try:
            return await operation
        except AmqpClosed as exc:
            raise ConnectionLost(f"{self.address.safe}: {self.address.scrub(str(exc))}") from None

    async def bind(self, exchange: str, pattern: str, consumer: Consumer) -> Binding:
        binding = Binding(exchange, check_pattern(pattern), consumer)
        await self._declare(exchange)
        self._routes.index(exchange).add(pattern, binding)
        key = (exchange, pattern)
        self._amqp_bindings[key] = self._amqp_bindings.get(key, 0) + 1
        connection = self._connection
        if self._amqp_bindings[key] == 1 and self._connected and connection is not None:
            await self._on_broker(connection.queue_bind(self.queue, exchange, pattern))
        return binding

    async def unbind(self, binding: Binding) -> None:
        index = self._routes.get(binding.exchange)
        if index is None or not index.remove(binding.pattern, binding):
            await trio.lowlevel.checkpoint()
            return
        key = (binding.exchange, binding.pattern)
        self._amqp_bindings[key] -= 1
        if self._amqp_bindings[key] == 0:
            del self._amqp_bindings[key]
            connection = self._connection
            if self._connected and connection is not None:
                await self._on_broker(
                    connection.queue_unbind(self.queue, binding.exchange, binding.pattern)
                )
                return
        await trio.lowlevel.checkpoint()

    def statistics(self) -> AmqpBusStatistics:
        return AmqpBusStatistics(
            bindings=len(self._routes),
            published=self._counts["published"],
            delivered=self._counts["delivered"],
            unroutable=self._counts["unroutable"],
            calls=self._counts["calls"],
            calls_timed_out=self._counts["calls_timed_out"],
            no_responder=self._counts["no_responder"],
            connected=self._connected,
            reconnects=self._reconnects,
            buffered=len(self._buffer),
            unconfirmed=self._unconfirmed,
            redelivered=self._counts["redelivered"],
            unmatched_replies=self._counts["unmatched_replies"],
            refused=self._counts["refused"],
        )
