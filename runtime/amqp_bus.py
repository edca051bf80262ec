"""``AmqpBus``: the ``Bus`` on RabbitMQ, with the same contract as ``MemoryBus``.

Design, chosen by measurement (see ``asyncio_thread``): aiormq runs on a stock
asyncio loop in a thread owned by the runtime's nursery; Trio and asyncio
exchange work in batches. Topology and delivery:

* the exchanges are durable topic exchanges, declared on first use;
* one consumer queue per process (durable, named after the runtime, deleted
  on a clean stop and expiring ``queue_expires`` seconds after a crash); every
  local binding adds an AMQP binding to it (shared by equal patterns), and
  deliveries are routed to local consumers by the same ``TopicIndex`` as on
  the in-memory bus;
* publishes use publisher confirms and persistent messages: ``publish``
  returns once the broker has the message. Deliveries are acknowledged after
  every local consumer settled them (handled, refused or dropped), so delivery
  is at least once: after a reconnect, unacknowledged messages come again;
* calls go out ``mandatory`` with ``reply_to`` set to direct reply-to and a
  ``correlation_id``; a ``basic.return`` is an immediate ``NoResponder``.
  RackHD's own services answer without a ``correlation_id`` (each of its
  calls had a reply queue of its own): to call them, create the bus with
  ``reply_queue_per_call=True``, which does the same at the cost of a queue
  declared and deleted per call; unmatched replies are counted and logged;
  replies travel as RackHD does (``Result {value}``, ``ErrorEvent``, or an
  envelope such as ``MacAddress``), the value's own type in a header;
* when the connection drops, the bus reconnects with exponential backoff and
  jitter, declares and binds again and resumes consuming. Publishes made
  meanwhile wait in a bounded buffer (``PublishBufferFull`` when full) and go
  out after the reconnect; calls in flight fail with ``ConnectionLost`` and
  new calls with ``BusUnavailable`` until the connection is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import aiormq
import attrs
import orjson
import trio
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from .amqp_url import AmqpAddress
from .asyncio_thread import AsyncioThread
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
from .delivery import Delivery, PendingCall
from .envelopes import ErrorEvent, IpAddress, LogEvent, MacAddress, Result
from .errors import (
    BusUnavailable,
    CallTimeout,
    ConnectionLost,
    DecodeError,
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
        self.bus._thread.to_asyncio(self.bus._core.publish, record)
        await trio.lowlevel.checkpoint()


class AmqpBus(Bus):
    """A bus on a RabbitMQ broker; see the module docstring."""

    def __init__(
        self,
        url: str | None = None,
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
        self._thread = AsyncioThread(f"rackbus-amqp-{name}")
        self._core = _Core(self)
        self._routes = RoutingTable()
        self._amqp_bindings: dict[tuple[str, str], int] = {}
        self._declared: set[str] = set()
        self._calls: dict[str, PendingCall] = {}
        self._incoming_send, self._incoming = trio.open_memory_channel[
            tuple[DeliveredMessage, int]
        ](math.inf)
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
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
            with self._scope:
                async with trio.open_nursery() as nursery:
                    try:
                        await nursery.start(self._thread.run, self._core.shutdown)
                        await self._thread.call(self._core.connect_first)
                        nursery.start_soon(self._dispatch)
                        task_status.started()
                    except BusUnavailable as exc:
                        failure = exc
                        nursery.cancel_scope.cancel()
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

    # -- bindings --------------------------------------------------------------------

    async def _declare(self, exchange: str) -> None:
        if exchange not in self._declared:
            check_exchange(exchange)
            await self._thread.call(self._core.declare_exchange, exchange)
            self._declared.add(exchange)

    async def bind(self, exchange: str, pattern: str, consumer: Consumer) -> Binding:
        binding = Binding(exchange, check_pattern(pattern), consumer)
        await self._declare(exchange)
        self._routes.index(exchange).add(pattern, binding)
        key = (exchange, pattern)
        self._amqp_bindings[key] = self._amqp_bindings.get(key, 0) + 1
        if self._amqp_bindings[key] == 1:
            await self._thread.call(self._core.bind, exchange, pattern)
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
            await self._thread.call(self._core.unbind, binding.exchange, binding.pattern)

    # -- publishing --------------------------------------------------------------------

    def _properties(self, type_name: str, *, persistent: bool, **extra: Any) -> Basic.Properties:
        return Basic.Properties(
            content_type=JSON,
            message_type=type_name,
            delivery_mode=2 if persistent else 1,
            **extra,
        )

    async def _send(self, record: _Publish, deadline: float) -> None:
        self._thread.to_asyncio(self._core.publish, record)
        if deadline == math.inf:  # no cancel scope on the common path: it costs as much as a hop
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
        if not self._core.connected:
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
                    reply_queue = await self._thread.call(
                        self._core.open_reply_queue, correlation_id
                    )
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
                self._thread.to_asyncio(self._core.publish, record)
                await pending.event.wait()
        finally:
            del self._calls[correlation_id]
            if reply_queue is not None:
                self._thread.to_asyncio(self._core.close_reply_queue, reply_queue)
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

    def _on_reply(self, message: DeliveredMessage, correlation_id: str | None = None) -> None:
        props = message.header.properties
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

    async def _deliver(self, message: DeliveredMessage, generation: int) -> None:
        props = message.header.properties
        tag = message.delivery.delivery_tag  # type: ignore[union-attr]
        if getattr(message.delivery, "redelivered", False):
            self._counts["redelivered"] += 1

        def ack() -> None:
            self._thread.to_asyncio(self._core.ack, generation, tag)

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
        for binding in targets:
            await binding.consumer.deliver(delivery, math.inf)
        self._counts["delivered"] += len(targets)

    def statistics(self) -> AmqpBusStatistics:
        core = self._core
        return AmqpBusStatistics(
            bindings=len(self._routes),
            published=self._counts["published"],
            delivered=self._counts["delivered"],
            unroutable=self._counts["unroutable"],
            calls=self._counts["calls"],
            calls_timed_out=self._counts["calls_timed_out"],
            no_responder=self._counts["no_responder"],
            connected=core.connected,
            reconnects=core.reconnects,
            buffered=len(core.buffer),
            unconfirmed=core.unconfirmed,
            redelivered=self._counts["redelivered"],
            unmatched_replies=self._counts["unmatched_replies"],
        )


class _Core:
    """The asyncio side: connection, channel, topology, publishing and acks."""

    def __init__(self, bus: AmqpBus) -> None:
        self.bus = bus
        self.connection: aiormq.abc.AbstractConnection | None = None
        self.channel: aiormq.abc.AbstractChannel | None = None
        self.generation = 0
        self.connected = False
        self.reconnects = 0
        self.unconfirmed = 0
        self.exchanges: set[str] = set()
        self.bindings: set[tuple[str, str]] = set()
        self.buffer: deque[_Publish] = deque()
        self.closing = False
        self.supervisor: asyncio.Task[None] | None = None
        self.consumer_tag: str | None = None
        self.received: deque[int] = deque()
        self.settled: set[int] = set()
        self.ack_upto = 0
        self.ack_scheduled = False
        self.rng = random.Random()

    # connection management

    async def connect_first(self) -> None:
        try:
            await self._connect()
        except Exception as exc:
            raise BusUnavailable(
                f"cannot connect to {self.bus.address.safe}: "
                f"{self.bus.address.scrub(str(exc) or type(exc).__name__)}"
            ) from None
        self.supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _connect(self) -> None:
        address = self.bus.address
        connection = await asyncio.wait_for(
            aiormq.connect(address.url, context=address.ssl_context), self.bus.connect_timeout
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.basic_qos(prefetch_count=self.bus.prefetch)
            await channel.basic_consume(REPLY_TO, self._on_reply, no_ack=True)
            for exchange in self.exchanges:
                await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
            await channel.queue_declare(
                self.bus.queue,
                durable=True,
                arguments={"x-expires": int(self.bus.queue_expires * 1000)},
            )
            for exchange, pattern in self.bindings:
                await channel.queue_bind(self.bus.queue, exchange, routing_key=pattern)
            self.generation += 1  # acks of deliveries from an older channel are void
            self.received.clear()
            self.settled.clear()
            self.ack_upto = 0
            consumed = await channel.basic_consume(self.bus.queue, self._on_message, no_ack=False)
            self.consumer_tag = consumed.consumer_tag
        except BaseException:
            await connection.close()
            raise
        self.connection, self.channel = connection, channel
        self.connected = True
        while self.buffer:
            self._start_publish(self.buffer.popleft())

    async def _supervise(self) -> None:
        while not self.closing:
            connection = self.connection
            assert connection is not None
            try:
                await connection.closing
            except BaseException as exc:  # the reason the connection ended
                reason = self.bus.address.scrub(str(exc) or type(exc).__name__)
            else:
                reason = "closed"
            if self.closing:
                return
            self.connected = False
            self.channel = None
            log.warning("connection to %s lost (%s); reconnecting", self.bus.address.safe, reason)
            self.bus._thread.to_trio(self.bus._on_connection_lost, reason)
            attempt = 0
            while not self.closing:
                attempt += 1
                await asyncio.sleep(self.bus.reconnect.delay(attempt, self.rng))
                try:
                    await self._connect()
                except Exception as exc:
                    log.warning(
                        "reconnect %d to %s failed: %s",
                        attempt,
                        self.bus.address.safe,
                        self.bus.address.scrub(str(exc) or type(exc).__name__),
                    )
                    continue
                self.reconnects += 1
                log.warning("reconnected to %s", self.bus.address.safe)
                break

    async def shutdown(self) -> None:
        self.closing = True
        self.connected = False
        if self.supervisor is not None:
            self.supervisor.cancel()
        for record in self.buffer:
            self.bus._thread.to_trio(record.finish, BusUnavailable("bus closed"))
        self.buffer.clear()
        try:
            if self.channel is not None:
                if self.consumer_tag:
                    await asyncio.wait_for(self.channel.basic_cancel(self.consumer_tag), 5)
                await asyncio.wait_for(self.channel.queue_delete(self.bus.queue), 5)
        except Exception as exc:
            log.info("could not delete queue %s: %s", self.bus.queue, exc)
        if self.connection is not None:
            try:
                await asyncio.wait_for(self.connection.close(), 5)
            except Exception as exc:
                log.info("closing the connection failed: %s", exc)

    # topology (called from Trio through AsyncioThread.call)

    async def declare_exchange(self, exchange: str) -> None:
        self.exchanges.add(exchange)
        if self.connected and self.channel is not None:
            await self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)

    async def bind(self, exchange: str, pattern: str) -> None:
        self.bindings.add((exchange, pattern))
        if self.connected and self.channel is not None:
            await self.channel.queue_bind(self.bus.queue, exchange, routing_key=pattern)

    async def unbind(self, exchange: str, pattern: str) -> None:
        self.bindings.discard((exchange, pattern))
        if self.connected and self.channel is not None:
            await self.channel.queue_unbind(self.bus.queue, exchange, routing_key=pattern)

    async def open_reply_queue(self, correlation_id: str) -> str:
        """An exclusive queue for one call's reply, as RackHD used (``reply_queue_per_call``)."""
        if not self.connected or self.channel is None:
            raise BusUnavailable(f"no connection to {self.bus.address.safe}; call refused")
        declared = await self.channel.queue_declare("", exclusive=True, auto_delete=True)
        name = declared.queue
        assert name is not None

        async def on_reply(message: DeliveredMessage) -> None:
            self.bus._thread.to_trio(self.bus._on_reply, message, correlation_id)

        await self.channel.basic_consume(name, on_reply, no_ack=True)
        return name

    def close_reply_queue(self, name: str) -> None:
        if self.connected and self.channel is not None:
            asyncio.get_running_loop().create_task(self._delete_queue(self.channel, name))

    async def _delete_queue(self, channel: aiormq.abc.AbstractChannel, name: str) -> None:
        try:
            await channel.queue_delete(name)
        except Exception as exc:
            log.debug("deleting reply queue %s failed: %s", name, exc)

    # publishing and acks (queued from Trio through AsyncioThread.to_asyncio)

    def publish(self, record: _Publish) -> None:
        if self.connected:
            self._start_publish(record)
        elif record.is_call and record.exchange:
            self._finish(
                record, BusUnavailable(f"no connection to {self.bus.address.safe}; call refused")
            )
        elif len(self.buffer) >= self.bus.publish_buffer:
            self._finish(
                record,
                PublishBufferFull(
                    f"no connection to {self.bus.address.safe} and the outage buffer is full "
                    f"({self.bus.publish_buffer} messages)"
                ),
            )
        else:
            self.buffer.append(record)

    def _start_publish(self, record: _Publish) -> None:
        self.unconfirmed += 1
        asyncio.get_running_loop().create_task(self._publish(record))

    async def _publish(self, record: _Publish) -> None:
        channel = self.channel
        try:
            if channel is None or record.abandoned:
                raise aiormq.exceptions.ChannelInvalidStateError("no channel")
            confirm = await channel.basic_publish(
                record.body,
                exchange=record.exchange,
                routing_key=record.routing_key,
                properties=record.properties,
                mandatory=record.mandatory,
            )
        except aiormq.exceptions.PublishError:
            self._finish(record, _Returned())
        except (
            aiormq.exceptions.AMQPError,
            ConnectionError,
            RuntimeError,
            asyncio.CancelledError,
        ) as exc:
            if record.abandoned or self.closing:
                self._finish(record, BusUnavailable("bus closed"))
            elif record.is_call:
                self._finish(
                    record,
                    ConnectionLost(
                        f"connection to {self.bus.address.safe} lost while sending a call: "
                        f"{self.bus.address.scrub(str(exc) or type(exc).__name__)}"
                    ),
                )
            else:
                self.unconfirmed -= 1
                self.publish(record)  # again after the reconnect (at least once)
                return
        else:
            if isinstance(confirm, Basic.Nack):
                self._finish(
                    record,
                    PublishRefused(
                        f"the broker refused a message for {record.exchange}/{record.routing_key}"
                    ),
                )
            else:
                self._finish(record, None)
        self.unconfirmed -= 1

    def _finish(self, record: _Publish, error: BaseException | None) -> None:
        if error is None and record.on_failure is not None:
            return  # a call's request: its reply settles it, no crossing needed
        self.bus._thread.to_trio(record.finish, error)

    def ack(self, generation: int, tag: int) -> None:
        """Acknowledge a settled delivery; acks go out as one ``multiple`` ack per batch.

        Deliveries settle out of order, so only the longest prefix of received
        tags that are all settled is acknowledged (``multiple=True`` up to its
        last tag); the rest wait for the ones before them.
        """
        if generation != self.generation or not self.connected:
            return
        self.settled.add(tag)
        last = None
        while self.received and self.received[0] in self.settled:
            last = self.received.popleft()
            self.settled.discard(last)
        if last is not None:
            self.ack_upto = last
            if not self.ack_scheduled:
                self.ack_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        self.ack_scheduled = False
        if self.channel is not None and self.ack_upto:
            asyncio.get_running_loop().create_task(self._ack(self.channel, self.ack_upto))

    async def _ack(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        try:
            await channel.basic_ack(tag, multiple=True)
        except Exception as exc:  # the messages come again after the reconnect
            log.debug("ack up to %d failed: %s", tag, exc)

    # deliveries (aiormq callbacks, one asyncio task each)

    async def _on_message(self, message: DeliveredMessage) -> None:
        self.received.append(message.delivery.delivery_tag)  # type: ignore[union-attr,arg-type]
        self.bus._thread.to_trio(self.bus._incoming_send.send_nowait, (message, self.generation))

    async def _on_reply(self, message: DeliveredMessage) -> None:
        self.bus._thread.to_trio(self.bus._on_reply, message)
