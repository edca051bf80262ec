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
"""

from __future__ import annotations

import logging
import math
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs
import orjson
import trio
from pamqp.commands import Basic

from .amqp_connection import AmqpClosed, AmqpConnection, AmqpMessage, Outcome
from .amqp_url import AmqpAddress
from .bus import (
    DEFAULT_CALL_TIMEOUT,
    Binding,
    Bus,
    BusStatistics,
    Consumer,
    RoutingTable,
    check_exchange,
    check_timeout,
)
from .codec import Codec
from .delivery import Delivery, PendingCall, refusal_event
from .envelopes import ErrorEvent, IpAddress, LogEvent, MacAddress, Result
from .errors import (
    BusUnavailable,
    CallTimeout,
    ConnectionLost,
    DecodeError,
    MailboxClosed,
    NoResponder,
    PublishBufferFull,
    PublishRefused,
    PublishTimeout,
)
from .message import wire_type_name
from .supervisor import Backoff
from .topic import check_key, check_pattern

log = logging.getLogger("rackbus.amqp")

T = TypeVar("T")

REPLY_TO = "amq.rabbitmq.reply-to"
VALUE_TYPE_HEADER = "x-rackbus-value-type"
JSON = "application/json"
_ENVELOPES = (Result, ErrorEvent, IpAddress, MacAddress, LogEvent)
RECONNECT_BACKOFF = Backoff(initial=0.1, factor=2.0, maximum=10.0, jitter=0.25)
"""Delay before each reconnect attempt: 0.1 s doubling up to 10 s, +-25 %."""


@attrs.frozen
class AmqpBusStatistics(BusStatistics):
    """``BusStatistics`` plus the state of the broker connection."""

    connected: bool
    reconnects: int
    buffered: int
    unconfirmed: int
    redelivered: int
    unmatched_replies: int


class _Publish:
    """One message on its way to the broker; settled once confirmed or failed."""

    __slots__ = (
        "abandoned",
        "body",
        "done",
        "error",
        "exchange",
        "is_call",
        "mandatory",
        "on_failure",
        "properties",
        "routing_key",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        *,
        mandatory: bool,
        is_call: bool,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.is_call = is_call
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.abandoned = False
        self.on_failure: Callable[[BaseException], None] | None = None
        """When set, success is not reported back (a call waits for its reply instead)."""

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()
        if error is not None and self.on_failure is not None:
            self.on_failure(error)


class _Returned(Exception):
    """The broker returned a mandatory message: nothing is bound to its key."""


class _Responder:
    """Answers a call received from the broker: a publish to ``reply_to``."""

    __slots__ = ("answered", "bus", "correlation_id", "reply_to")

    def __init__(self, bus: AmqpBus, reply_to: str, correlation_id: str | None) -> None:
        self.bus = bus
        self.reply_to = reply_to
        self.correlation_id = correlation_id
        self.answered = False

    async def respond(self, value: object) -> None:
        if isinstance(value, _ENVELOPES):
            type_name, body = self.bus.codec.encode(value)
            headers: dict[str, Any] = {}
        else:
            type_name = "Result"
            body = orjson.dumps({"value": self.bus.codec.to_wire(value)})
            value_type = wire_type_name(value)
            headers = {} if value_type == "Object" else {VALUE_TYPE_HEADER: value_type}
        await self._send(type_name, body, headers)

    async def respond_error(self, error: ErrorEvent) -> None:
        type_name, body = self.bus.codec.encode(error)
        await self._send(type_name, body, {})

    async def _send(self, type_name: str, body: bytes, headers: dict[str, Any]) -> None:
        if self.answered:
            return
        self.answered = True
        properties = Basic.Properties(
            content_type=JSON,
            message_type=type_name,
            correlation_id=self.correlation_id,
            headers=headers or None,
        )
        # Replies are not awaited: the caller's deadline covers them, and the
        # handler's next message need not wait for the broker's confirm.
        record = _Publish("", self.reply_to, body, properties, mandatory=False, is_call=True)
        self.bus._submit(record)
        await trio.lowlevel.checkpoint()


class AmqpBus(Bus):
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
        self._buffer: deque[_Publish] = deque()
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

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self._run)

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failure: BaseException | None = None
        try:
            # connections shield themselves, so the shutdown below can still use one
            async with trio.open_nursery() as connections:
                self._connections = connections
                try:
                    with self._scope:
                        async with trio.open_nursery() as tasks:
                            self._tasks = tasks
                            try:
                                await self._connect_first()
                            except BusUnavailable as exc:
                                failure = exc
                                tasks.cancel_scope.cancel()
                            else:
                                tasks.start_soon(self._dispatch)
                                tasks.start_soon(self._supervise)
                                task_status.started()
                finally:
                    with trio.CancelScope(shield=True):
                        await self._shutdown()
        finally:
            self._stopped.set()
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self._stopped.wait()
        for pending in list(self._calls.values()):
            pending.settle(error=ConnectionLost(f"bus to {self.address.safe} closed"))

    async def _connect_first(self) -> None:
        try:
            await self._connect()
        except Exception as exc:
            raise BusUnavailable(
                f"cannot connect to {self.address.safe}: "
                f"{self.address.scrub(str(exc) or type(exc).__name__)}"
            ) from None

    async def _connect(self) -> None:
        """Open a connection, declare and bind everything again, and start consuming."""
        assert self._connections is not None
        connection = AmqpConnection(self.address)
        connection.ack_batch = max(1, self.prefetch // 16)
        await self._connections.start(connection.run, self.connect_timeout)
        try:
            with trio.fail_after(self.connect_timeout):
                await connection.basic_qos(self.prefetch)
                await connection.basic_consume(REPLY_TO, self._on_reply, no_ack=True)
                for exchange in self._declared:
                    await connection.exchange_declare(exchange)
                await connection.queue_declare(
                    self.queue,
                    durable=True,
                    arguments={"x-expires": int(self.queue_expires * 1000)},
                )
                for exchange, pattern in list(self._amqp_bindings):
                    await connection.queue_bind(self.queue, exchange, pattern)
                self._generation += 1  # acks of deliveries from an older channel are void
                self._received.clear()
                self._settled.clear()
                self._consumer_tag = await connection.basic_consume(
                    self.queue,
                    self._on_message,
                    no_ack=False,
                    # the queue was deleted under us: a new connection declares it again
                    on_cancel=lambda: connection.abort(
                        f"the broker cancelled consuming {self.queue}"
                    ),
                )
        except BaseException:
            connection.abort()
            raise
        self._connection = connection
        self._connected = True
        buffered, self._buffer = self._buffer, deque()
        for record in buffered:
            self._submit(record)

    async def _supervise(self) -> None:
        while True:
            connection = self._connection
            assert connection is not None
            await connection.closed.wait()
            reason = self.address.scrub(connection.error)
            self._connected = False
            log.warning("connection to %s lost (%s); reconnecting", self.address.safe, reason)
            self._on_connection_lost(reason)
            attempt = 0
            while True:
                attempt += 1
                await trio.sleep(self.reconnect.delay(attempt, self._rng))
                try:
                    await self._connect()
                except (AmqpClosed, OSError, trio.TooSlowError) as exc:
                    log.warning(
                        "reconnect %d to %s failed: %s",
                        attempt,
                        self.address.safe,
                        self.address.scrub(str(exc) or type(exc).__name__),
                    )
                    continue
                self._reconnects += 1
                log.warning("reconnected to %s", self.address.safe)
                break

    async def _shutdown(self) -> None:
        self._closing = True
        self._connected = False
        buffered, self._buffer = self._buffer, deque()
        for record in buffered:
            record.finish(BusUnavailable("bus closed"))
        connection = self._connection
        if connection is None:
            return
        try:
            if not connection.closed.is_set():
                try:
                    with trio.fail_after(5):
                        if self._consumer_tag:
                            await connection.basic_cancel(self._consumer_tag)
                        await connection.queue_delete(self.queue)
                except (AmqpClosed, trio.TooSlowError) as exc:
                    log.info("could not delete queue %s: %s", self.queue, exc)
            await connection.aclose()
        finally:
            connection.abort()

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

    # -- publishing --------------------------------------------------------------------

    def _properties(self, type_name: str, *, persistent: bool, **extra: Any) -> Basic.Properties:
        return Basic.Properties(
            content_type=JSON,
            message_type=type_name,
            delivery_mode=2 if persistent else 1,
            **extra,
        )

    def _submit(self, record: _Publish) -> None:
        """Send ``record`` now, or buffer it until the connection is back."""
        connection = self._connection
        if self._connected and connection is not None and connection.is_open:
            self._unconfirmed += 1
            connection.publish(
                record.exchange,
                record.routing_key,
                record.body,
                record.properties,
                mandatory=record.mandatory,
                on_confirm=lambda outcome: self._confirmed(record, outcome),
            )
        elif self._closing or record.abandoned:
            record.finish(BusUnavailable("bus closed"))
        elif record.is_call and record.exchange:
            record.finish(BusUnavailable(f"no connection to {self.address.safe}; call refused"))
        elif len(self._buffer) >= self.publish_buffer:
            record.finish(
                PublishBufferFull(
                    f"no connection to {self.address.safe} and the outage buffer is full "
                    f"({self.publish_buffer} messages)"
                )
            )
        else:
            self._buffer.append(record)

    def _confirmed(self, record: _Publish, outcome: Outcome) -> None:
        self._unconfirmed -= 1
        if outcome is Outcome.ACKED:
            if record.on_failure is None:  # a call's reply settles it instead
                record.finish(None)
        elif outcome is Outcome.RETURNED:
            record.finish(_Returned())
        elif outcome is Outcome.NACKED:
            record.finish(
                PublishRefused(
                    f"the broker refused a message for {record.exchange}/{record.routing_key}"
                )
            )
        elif record.abandoned or self._closing:
            record.finish(BusUnavailable("bus closed"))
        elif record.is_call:
            connection = self._connection
            reason = connection.error if connection is not None else "closed"
            record.finish(
                ConnectionLost(
                    f"connection to {self.address.safe} lost while sending a call: "
                    f"{self.address.scrub(reason)}"
                )
            )
        else:
            self._submit(record)  # again after the reconnect (at least once)

    async def _send(self, record: _Publish, deadline: float) -> None:
        self._submit(record)
        if deadline == math.inf:  # no cancel scope on the common path
            await record.done.wait()
        else:
            with trio.move_on_at(deadline):
                await record.done.wait()
        if not record.done.is_set():
            record.abandoned = True
            raise PublishTimeout(record.exchange, record.routing_key, 0.0)
        if record.error is not None:
            raise record.error

    async def publish(
        self, exchange: str, routing_key: str, message: object, *, timeout: float | None = None
    ) -> None:
        check_key(routing_key)
        type_name, body = self.codec.encode(message)
        await self._declare(exchange)
        # mandatory, so that the broker tells us (and statistics count) what nobody receives
        record = _Publish(
            exchange,
            routing_key,
            body,
            self._properties(type_name, persistent=self.persistent),
            mandatory=True,
            is_call=False,
        )
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        self._counts["published"] += 1
        try:
            await self._send(record, deadline)
        except PublishTimeout:
            raise PublishTimeout(exchange, routing_key, timeout or 0.0) from None
        except _Returned:
            self._counts["unroutable"] += 1

    async def call(
        self,
        exchange: str,
        routing_key: str,
        message: object,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        returns: type[T] | None = None,
    ) -> Any:
        check_timeout(timeout)
        check_key(routing_key)
        type_name, body = self.codec.encode(message)
        await self._declare(exchange)
        self._counts["calls"] += 1
        if not self._connected:
            raise BusUnavailable(
                f"call to {exchange}/{routing_key} refused: no connection to {self.address.safe}"
            )
        correlation_id = uuid.uuid4().hex
        pending = self._calls[correlation_id] = PendingCall()
        deadline = trio.current_time() + timeout
        reply_queue: str | None = None
        try:
            with trio.move_on_at(deadline):
                if self.reply_queue_per_call:
                    reply_queue = await self._open_reply_queue(correlation_id)
                record = _Publish(
                    exchange,
                    routing_key,
                    body,
                    # a call is only worth its deadline: never written to disk
                    self._properties(
                        type_name,
                        persistent=False,
                        reply_to=reply_queue or REPLY_TO,
                        correlation_id=correlation_id,
                    ),
                    mandatory=True,
                    is_call=True,
                )
                # the reply settles the call; the publish reports back only if it failed
                record.on_failure = lambda error: pending.settle(error=error)
                self._submit(record)
                await pending.event.wait()
        finally:
            del self._calls[correlation_id]
            if reply_queue is not None:
                self._close_reply_queue(reply_queue)
        if not pending.event.is_set():
            record.abandoned = True
            self._counts["calls_timed_out"] += 1
            raise CallTimeout(exchange, routing_key, timeout)
        if isinstance(pending.error, _Returned):
            self._counts["no_responder"] += 1
            raise NoResponder(exchange, routing_key)
        if pending.error is not None:
            raise pending.error
        if returns is None:
            return pending.value
        return self.codec.convert(pending.value, returns)

    # -- receiving (Trio side) -------------------------------------------------------

    async def _open_reply_queue(self, correlation_id: str) -> str:
        """An exclusive queue for one call's reply, as RackHD used (``reply_queue_per_call``)."""
        connection = self._connection
        if not self._connected or connection is None:
            raise BusUnavailable(f"no connection to {self.address.safe}; call refused")
        name = await self._on_broker(connection.queue_declare("", exclusive=True, auto_delete=True))
        await self._on_broker(
            connection.basic_consume(
                name, lambda message: self._on_reply(message, correlation_id), no_ack=True
            )
        )
        return name

    def _close_reply_queue(self, name: str) -> None:
        connection, tasks = self._connection, self._tasks
        if self._connected and connection is not None and tasks is not None:
            try:
                tasks.start_soon(self._delete_queue, connection, name)
            except RuntimeError:  # the bus is stopping; the queue goes with the connection
                pass

    async def _delete_queue(self, connection: AmqpConnection, name: str) -> None:
        try:
            await connection.queue_delete(name)
        except AmqpClosed as exc:
            log.debug("deleting reply queue %s failed: %s", name, exc)

    def _on_reply(self, message: AmqpMessage, correlation_id: str | None = None) -> None:
        props = message.properties
        pending = self._calls.get(correlation_id or props.correlation_id or "")
        if pending is None:
            self._counts["unmatched_replies"] += 1
            log.info("dropped a reply that matches no waiting call (late, or no correlation_id)")
            return
        try:
            value = self._decode_reply(props, message.body)
        except DecodeError as exc:
            pending.settle(error=exc)
        except Exception as exc:
            pending.settle(error=exc)
        else:
            pending.settle(value)

    def _decode_reply(self, props: Basic.Properties, body: bytes) -> Any:
        type_name = props.message_type or "Object"
        if type_name == "ErrorEvent":
            raise self.codec.decode("ErrorEvent", body).to_error()
        if type_name == "Result":
            data = orjson.loads(body)
            value = data.get("value") if isinstance(data, dict) else None
            declared = (props.headers or {}).get(VALUE_TYPE_HEADER)
            cls = self.codec.lookup(declared) if isinstance(declared, str) else None
            return self.codec.convert(value, cls) if cls is not None else value
        return self.codec.decode(type_name, body)

    def _on_connection_lost(self, reason: str) -> None:
        for pending in list(self._calls.values()):
            pending.settle(
                error=ConnectionLost(
                    f"connection to {self.address.safe} lost while waiting for a reply: {reason}"
                )
            )

    async def _dispatch(self) -> None:
        async for message, generation in self._incoming:
            await self._deliver(message, generation)

    def _on_message(self, message: AmqpMessage) -> None:
        self._received.append(message.delivery_tag)
        self._incoming_send.send_nowait((message, self._generation))

    def _ack(self, generation: int, tag: int) -> None:
        """Acknowledge a settled delivery; acks go out as one ``multiple`` ack per write.

        Deliveries settle out of order, so only the longest prefix of received
        tags that are all settled is acknowledged (``multiple=True`` up to its
        last tag); the rest wait for the ones before them.
        """
        connection = self._connection
        if generation != self._generation or not self._connected or connection is None:
            return
        self._settled.add(tag)
        received, settled = self._received, self._settled
        last = None
        while received and received[0] in settled:
            last = received.popleft()
            settled.discard(last)
        if last is not None:
            connection.ack(last)

    async def _deliver(self, message: AmqpMessage, generation: int) -> None:
        props = message.properties
        tag = message.delivery_tag
        if message.redelivered:
            self._counts["redelivered"] += 1

        def ack() -> None:
            self._ack(generation, tag)

        responder = (
            _Responder(self, props.reply_to, props.correlation_id) if props.reply_to else None
        )
        exchange, routing_key = message.exchange or "", message.routing_key or ""
        try:
            payload = self.codec.decode(props.message_type or "Object", message.body)
        except DecodeError as exc:
            log.warning("refused a message on %s/%s: %s", exchange, routing_key, exc)
            if responder is not None:
                await responder.respond_error(
                    ErrorEvent(
                        name="DecodeError",
                        message=str(exc),
                        status=400,
                        context={"exchange": exchange, "routingKey": routing_key},
                    )
                )
            ack()
            return
        index = self._routes.get(exchange)
        targets = index.match(routing_key) if index is not None else ()
        if not targets:
            self._counts["unroutable"] += 1
            ack()
            return
        delivery = Delivery(
            exchange, routing_key, payload, props.message_type or "Object", responder
        )
        delivery.unsettled = len(targets)
        delivery.on_settled = ack
        backlogs = self._backlogs
        for binding in targets:
            backlog = backlogs.get(binding)
            if backlog is not None:
                backlog.append(delivery)  # behind the ones already waiting, in order
                continue
            try:
                await binding.consumer.deliver(delivery, trio.current_time())
            except trio.TooSlowError:
                backlogs[binding] = deque([delivery])
                assert self._tasks is not None
                self._tasks.start_soon(self._drain, binding)
            except Exception as refusal:
                await self._refused(delivery, refusal)
            else:
                self._counts["delivered"] += 1

    async def _drain(self, binding: Binding) -> None:
        """Deliver a binding's backlog in order, waiting as long as its consumer needs.

        Only this binding waits: the dispatch loop goes on with the others. Every backlogged
        delivery is unacknowledged, so the broker's prefetch bounds all backlogs together.
        """
        backlog = self._backlogs[binding]
        try:
            while backlog:
                delivery = backlog[0]
                try:
                    await binding.consumer.deliver(delivery, math.inf)
                except Exception as refusal:
                    await self._refused(delivery, refusal)
                else:
                    self._counts["delivered"] += 1
                backlog.popleft()
        finally:
            del self._backlogs[binding]

    async def _refused(self, delivery: Delivery, refusal: Exception) -> None:
        """A consumer refused (``MailboxFull``, a stopped actor) or failed: count it, settle
        its share, and if it was the last consumer of a call, answer the caller with a 503."""
        self._counts["refused"] += 1
        level = logging.DEBUG if isinstance(refusal, MailboxClosed) else logging.WARNING
        log.log(
            level,
            "a consumer refused a message on %s/%s: %s: %s",
            delivery.exchange,
            delivery.routing_key,
            type(refusal).__name__,
            refusal,
        )
        if delivery.responder is not None and delivery.unsettled == 1:
            event = refusal_event(refusal, delivery.exchange, delivery.routing_key)
            await delivery.responder.respond_error(event)
        delivery.settle()

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
