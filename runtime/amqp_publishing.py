"""Publishing on ``AmqpBus``: publisher confirms, and the outage buffer.

Every message goes out through ``_submit``: straight to the connection while
it is up, where the broker's confirm settles it (acked, returned, refused or
lost); into a bounded buffer while it is down, to go out after the reconnect
(``PublishBufferFull`` when full). Calls and replies go out the same way but
are never buffered: a call fails at once, a reply waits with the others.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import trio
from pamqp.commands import Basic

from .amqp_confirms import Outcome
from .amqp_connection import AmqpConnection
from .amqp_url import AmqpAddress
from .codec import Codec
from .errors import (
    BusUnavailable,
    ConnectionLost,
    PublishBufferFull,
    PublishRefused,
    PublishTimeout,
)
from .topic import check_key

JSON = "application/json"


class Publish:
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


class Returned(Exception):
    """The broker returned a mandatory message: nothing is bound to its key."""


class Publishing:
    """The publishing part of ``AmqpBus`` (a mixin: the state is set up by ``AmqpBus``)."""

    address: AmqpAddress
    codec: Codec
    persistent: bool
    publish_buffer: int
    _connection: AmqpConnection | None
    _connected: bool
    _closing: bool
    _buffer: deque[Publish]
    """Publishes waiting for the connection to come back."""
    _unconfirmed: int
    _counts: dict[str, int]

    if TYPE_CHECKING:

        def _declare(self, exchange: str) -> Coroutine[Any, Any, None]: ...

    def _properties(self, type_name: str, *, persistent: bool, **extra: Any) -> Basic.Properties:
        return Basic.Properties(
            content_type=JSON,
            message_type=type_name,
            delivery_mode=2 if persistent else 1,
            **extra,
        )

    def _submit(self, record: Publish) -> None:
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

    def _confirmed(self, record: Publish, outcome: Outcome) -> None:
        self._unconfirmed -= 1
        if outcome is Outcome.ACKED:
            if record.on_failure is None:  # a call's reply settles it instead
                record.finish(None)
        elif outcome is Outcome.RETURNED:
            record.finish(Returned())
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

    async def _send(self, record: Publish, deadline: float) -> None:
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
        record = Publish(
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
        except Returned:
            self._counts["unroutable"] += 1
