"""Consuming on ``AmqpBus``: deliveries from the process's queue to local consumers, and acks.

Deliveries cross from the connection's reader task to one dispatch task
through an unbounded channel (the broker's prefetch bounds it), are decoded
and routed by the ``TopicIndex`` of their exchange. A consumer whose mailbox
is full holds up only its own deliveries, in a backlog of its binding. A
delivery is acknowledged once every consumer settled it, in order of arrival.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import TYPE_CHECKING

import trio

from .amqp_connection import AmqpConnection
from .amqp_rpc import Responder
from .amqp_wire import AmqpMessage
from .bus import Binding, RoutingTable
from .codec import Codec
from .delivery import Delivery, refusal_event
from .envelopes import ErrorEvent
from .errors import DecodeError, MailboxClosed

if TYPE_CHECKING:
    from .amqp_publishing import Publish

log = logging.getLogger("rackbus.amqp")


class Deliveries:
    """The consuming part of ``AmqpBus`` (a mixin: the state is set up by ``AmqpBus``)."""

    codec: Codec
    _routes: RoutingTable
    _connection: AmqpConnection | None
    _connected: bool
    _tasks: trio.Nursery | None
    _incoming_send: trio.MemorySendChannel[tuple[AmqpMessage, int]]
    _incoming: trio.MemoryReceiveChannel[tuple[AmqpMessage, int]]
    _generation: int
    """Counts connections: an ack for a delivery of an older one is void."""
    _received: deque[int]
    """Delivery tags not yet acknowledged, in order of arrival."""
    _settled: set[int]
    """Tags of ``_received`` settled out of order, waiting for the ones before them."""
    _backlogs: dict[Binding, deque[Delivery]]
    """Deliveries waiting for a full consumer, per binding (see ``_drain``)."""
    _counts: dict[str, int]

    if TYPE_CHECKING:

        def _submit(self, record: Publish) -> None: ...

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
            Responder(self, props.reply_to, props.correlation_id) if props.reply_to else None
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
