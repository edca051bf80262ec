"""Request and reply on ``AmqpBus``: making calls, matching their replies, answering calls.

A call goes out ``mandatory`` with ``reply_to`` (direct reply-to, or a queue
of its own with ``reply_queue_per_call``) and a fresh ``correlation_id``; the
reply is matched to the waiting call by that id, or by the queue it came to.
A received call is answered by a ``Responder``, with a publish to its
``reply_to`` in RackHD's envelopes.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
import trio
from pamqp.commands import Basic

from .amqp_connection import AmqpConnection
from .amqp_publishing import JSON, Publish, Returned
from .amqp_url import AmqpAddress
from .amqp_wire import AmqpClosed, AmqpMessage
from .bus import DEFAULT_CALL_TIMEOUT, check_timeout
from .codec import Codec
from .delivery import PendingCall
from .envelopes import ErrorEvent, IpAddress, LogEvent, MacAddress, Result
from .errors import BusUnavailable, CallTimeout, ConnectionLost, NoResponder
from .message import wire_type_name
from .topic import check_key

if TYPE_CHECKING:
    from collections.abc import Coroutine

log = logging.getLogger("rackbus.amqp")

T = TypeVar("T")

REPLY_TO = "amq.rabbitmq.reply-to"
VALUE_TYPE_HEADER = "x-rackbus-value-type"
_ENVELOPES = (Result, ErrorEvent, IpAddress, MacAddress, LogEvent)


class ReplySender(Protocol):
    """What a ``Responder`` needs of the bus: its codec, and a way to publish."""

    codec: Codec

    def _submit(self, record: Publish) -> None: ...


class Responder:
    """Answers a call received from the broker: a publish to ``reply_to``."""

    __slots__ = ("answered", "bus", "correlation_id", "reply_to")

    def __init__(self, bus: ReplySender, reply_to: str, correlation_id: str | None) -> None:
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
        record = Publish("", self.reply_to, body, properties, mandatory=False, is_call=True)
        self.bus._submit(record)
        await trio.lowlevel.checkpoint()


class Calls:
    """The calling part of ``AmqpBus`` (a mixin: the state is set up by ``AmqpBus``)."""

    address: AmqpAddress
    codec: Codec
    reply_queue_per_call: bool
    _connection: AmqpConnection | None
    _connected: bool
    _tasks: trio.Nursery | None
    _calls: dict[str, PendingCall]
    """Calls waiting for their reply, by ``correlation_id``."""
    _counts: dict[str, int]

    if TYPE_CHECKING:

        async def _declare(self, exchange: str) -> None: ...

        async def _on_broker(self, operation: Coroutine[Any, Any, T]) -> T: ...

        def _submit(self, record: Publish) -> None: ...

        def _properties(
            self, type_name: str, *, persistent: bool, **extra: Any
        ) -> Basic.Properties: ...

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
                record = Publish(
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
        if isinstance(pending.error, Returned):
            self._counts["no_responder"] += 1
            raise NoResponder(exchange, routing_key)
        if pending.error is not None:
            raise pending.error
        if returns is None:
            return pending.value
        return self.codec.convert(pending.value, returns)

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
        except Exception as exc:  # a DecodeError, or a reply that names an unknown type
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
