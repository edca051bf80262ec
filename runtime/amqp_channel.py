"""The synchronous methods of the channel (declare, bind, qos, consume, ...) and its consumers.

A method is sent and its caller waits for the broker's answer; answers come
in the order the methods went out, so the waiters form a queue. Consumers are
callbacks by consumer tag, run in the reader task for each delivery.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import trio
from pamqp.base import Frame
from pamqp.commands import Basic, Exchange, Queue

from .amqp_transport import AmqpTransport
from .amqp_wire import AmqpClosed, AmqpMessage

log = logging.getLogger("rackbus.amqp")


class _Waiter:
    """A synchronous method waiting for the broker's answer."""

    __slots__ = ("error", "event", "replies", "result")

    def __init__(self, replies: tuple[type[Frame], ...]) -> None:
        self.replies = replies
        self.event = trio.Event()
        self.result: Frame | None = None
        self.error: AmqpClosed | None = None


class AmqpChannel(AmqpTransport):
    """The channel's methods, for ``AmqpConnection``, which hands their answers to
    ``_answer`` and the broker's consumer cancellations to ``_cancelled``."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: deque[_Waiter] = deque()
        self._consumers: dict[str, Callable[[AmqpMessage], None]] = {}
        self._on_cancel: dict[str, Callable[[], None]] = {}
        self._consumer_count = 0

    # -- answers (in the reader task) -------------------------------------------------

    def _answer(self, value: Any) -> bool:
        """Settle the oldest waiting method with ``value``; false if none waits."""
        if not self._waiters:
            return False
        waiter = self._waiters.popleft()
        if isinstance(value, waiter.replies):
            waiter.result = value
        else:
            waiter.error = AmqpClosed(f"unexpected answer {value.name}")
        waiter.event.set()
        return True

    def _fail_waiter(self, reason: str, code: int) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = AmqpClosed(reason, code)
            waiter.event.set()

    def _fail_waiters(self, error: AmqpClosed) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = error
            waiter.event.set()

    def _cancelled(self, consumer_tag: str | None) -> None:
        """The broker cancelled a consumer."""
        self._consumers.pop(consumer_tag or "", None)
        on_cancel = self._on_cancel.pop(consumer_tag or "", None)
        log.info("the broker cancelled consumer %s", consumer_tag)
        if on_cancel is not None:
            on_cancel()

    # -- methods --------------------------------------------------------------------

    async def _call(self, method: Frame, *replies: type[Frame]) -> Any:
        if not self.is_open:
            raise AmqpClosed(self.error or "the connection is closing")
        waiter = _Waiter(replies)
        self._waiters.append(waiter)
        self._send_method(method)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def exchange_declare(self, exchange: str) -> None:
        """Declare a durable topic exchange."""
        await self._call(
            Exchange.Declare(exchange=exchange, exchange_type="topic", durable=True),
            Exchange.DeclareOk,
        )

    async def queue_declare(
        self,
        queue: str = "",
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Declare a queue; returns its name (the broker names it when ``queue`` is empty)."""
        ok = await self._call(
            Queue.Declare(
                queue=queue,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=arguments,
            ),
            Queue.DeclareOk,
        )
        return str(ok.queue)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind ``queue`` to ``exchange`` with a pattern."""
        await self._call(
            Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key), Queue.BindOk
        )

    async def queue_unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Remove a binding."""
        await self._call(
            Queue.Unbind(queue=queue, exchange=exchange, routing_key=routing_key), Queue.UnbindOk
        )

    async def queue_delete(self, queue: str) -> None:
        """Delete a queue."""
        await self._call(Queue.Delete(queue=queue), Queue.DeleteOk)

    async def basic_qos(self, prefetch_count: int) -> None:
        """Bound the unacknowledged deliveries on the channel."""
        await self._call(Basic.Qos(prefetch_count=prefetch_count), Basic.QosOk)

    async def basic_consume(
        self,
        queue: str,
        callback: Callable[[AmqpMessage], None],
        *,
        no_ack: bool,
        on_cancel: Callable[[], None] | None = None,
    ) -> str:
        """Consume ``queue``; returns the consumer tag.

        ``callback(message)`` runs in the reader task, so must not block;
        ``on_cancel()`` runs if the broker cancels the consumer (say, the queue
        was deleted).
        """
        self._consumer_count += 1
        tag = f"rackbus.{self._consumer_count}.{uuid.uuid4().hex[:8]}"
        self._consumers[tag] = callback
        if on_cancel is not None:
            self._on_cancel[tag] = on_cancel
        try:
            await self._call(
                Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack), Basic.ConsumeOk
            )
        except BaseException:
            self._consumers.pop(tag, None)
            self._on_cancel.pop(tag, None)
            raise
        return tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Stop a consumer."""
        await self._call(Basic.Cancel(consumer_tag=consumer_tag), Basic.CancelOk)
        self._consumers.pop(consumer_tag, None)
        self._on_cancel.pop(consumer_tag, None)
