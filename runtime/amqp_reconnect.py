"""The broker connection of ``AmqpBus`` over its life: connect, reconnect, shut down.

Each connection is set up the same way: prefetch, the direct reply-to
consumer, every exchange and binding declared again, the process's queue
consumed. When one drops, calls in flight fail, and new connections are tried
with exponential backoff and jitter until one holds; publishes buffered
meanwhile then go out. On a clean stop the queue is deleted.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from typing import TYPE_CHECKING

import trio

from .amqp_connection import AmqpConnection
from .amqp_rpc import REPLY_TO
from .amqp_url import AmqpAddress
from .amqp_wire import AmqpClosed, AmqpMessage
from .delivery import PendingCall
from .errors import BusUnavailable, ConnectionLost
from .supervisor import Backoff

if TYPE_CHECKING:
    from .amqp_publishing import Publish

log = logging.getLogger("rackbus.amqp")

RECONNECT_BACKOFF = Backoff(initial=0.1, factor=2.0, maximum=10.0, jitter=0.25)
"""Delay before each reconnect attempt: 0.1 s doubling up to 10 s, +-25 %."""


class Reconnecting:
    """The connection part of ``AmqpBus`` (a mixin: the state is set up by ``AmqpBus``)."""

    address: AmqpAddress
    queue: str
    prefetch: int
    queue_expires: float
    connect_timeout: float
    reconnect: Backoff
    _scope: trio.CancelScope
    _stopped: trio.Event
    _connection: AmqpConnection | None
    _connections: trio.Nursery | None
    """Where connections run: outside ``_scope``, so that the shutdown can still use one."""
    _tasks: trio.Nursery | None
    _connected: bool
    _closing: bool
    _reconnects: int
    _consumer_tag: str | None
    _rng: random.Random
    _declared: set[str]
    _amqp_bindings: dict[tuple[str, str], int]
    _buffer: deque[Publish]
    _calls: dict[str, PendingCall]
    _generation: int
    _received: deque[int]
    _settled: set[int]

    if TYPE_CHECKING:

        def _submit(self, record: Publish) -> None: ...

        def _on_reply(self, message: AmqpMessage, correlation_id: str | None = None) -> None: ...

        def _on_connection_lost(self, reason: str) -> None: ...

        def _on_message(self, message: AmqpMessage) -> None: ...

        async def _dispatch(self) -> None: ...

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
