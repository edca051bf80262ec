"""What travels on a bus: an ``Address`` to send to and a ``Delivery`` that arrives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from .envelopes import ErrorEvent


@attrs.frozen
class Address:
    """Where a message goes: an exchange and a routing key."""

    exchange: str
    routing_key: str

    def __str__(self) -> str:
        return f"{self.exchange}/{self.routing_key}"


class Responder(Protocol):
    """The reply side of a call, handed to whoever handles the request."""

    async def respond(self, value: object) -> None:
        """Answer the call with ``value`` (the first answer wins)."""

    async def respond_error(self, error: ErrorEvent) -> None:
        """Answer the call with an error, raised as ``RemoteError`` in the caller."""


class Delivery:
    """One message as it reaches a consumer; shared by every binding it fans out to.

    ``payload`` is the decoded message (an attrs instance or plain JSON data) and
    ``type_name`` its wire type (``Result``, ``Object``, ...). ``responder`` is set
    for calls and ``None`` for one-way messages. Every consumer calls
    ``settle()`` once it is done with the delivery.
    """

    __slots__ = (
        "exchange",
        "on_settled",
        "payload",
        "responder",
        "routing_key",
        "type_name",
        "unsettled",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        payload: Any,
        type_name: str,
        responder: Responder | None = None,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.payload = payload
        self.type_name = type_name
        self.responder = responder
        self.on_settled: Callable[[], None] | None = None
        self.unsettled = 0

    def settle(self) -> None:
        """Tell the bus one consumer is done with this delivery (handled, refused or dropped).

        A bus that acknowledges deliveries (AMQP) does so once every consumer
        it went to has settled; on the in-memory bus this does nothing.
        """
        if self.on_settled is not None:
            self.unsettled -= 1
            if self.unsettled <= 0:
                callback, self.on_settled = self.on_settled, None
                callback()

    @property
    def is_call(self) -> bool:
        """True when the sender waits for a reply."""
        return self.responder is not None

    def __repr__(self) -> str:
        kind = "call" if self.responder is not None else "message"
        return f"<Delivery {kind} {self.exchange}/{self.routing_key} type={self.type_name}>"


def refusal_event(refusal: Exception, exchange: str, routing_key: str) -> ErrorEvent:
    """The error a caller gets when every consumer of its request refused it (503)."""
    return ErrorEvent(
        name=type(refusal).__name__,
        message=str(refusal),
        context={"exchange": exchange, "routingKey": routing_key},
        status=503,
    )


class PendingCall:
    """The caller's side of one call: the first answer settles it, later ones are ignored.

    It is also the ``Responder`` of an in-process call: ``respond`` settles it
    with ``copy(value)`` and ``respond_error`` with the error raised again as
    ``RemoteError``.
    """

    __slots__ = ("_copy", "error", "event", "value")

    def __init__(self, copy: Callable[[object], object] | None = None) -> None:
        self._copy = copy
        self.event = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    @property
    def settled(self) -> bool:
        """True once an answer (or an error) arrived."""
        return self.event.is_set()

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Record the first answer and wake the caller; later answers are ignored."""
        if not self.event.is_set():
            self.value, self.error = value, error
            self.event.set()

    async def respond(self, value: object) -> None:
        if not self.event.is_set():
            self.settle(self._copy(value) if self._copy is not None else value)

    async def respond_error(self, error: ErrorEvent) -> None:
        self.settle(error=error.to_error())
