"""What travels on a bus: an ``Address`` to send to and a ``Delivery`` that arrives."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

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
    for calls and ``None`` for one-way messages.
    """

    __slots__ = ("exchange", "payload", "responder", "routing_key", "type_name")

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

    @property
    def is_call(self) -> bool:
        """True when the sender waits for a reply."""
        return self.responder is not None

    def __repr__(self) -> str:
        kind = "call" if self.responder is not None else "message"
        return f"<Delivery {kind} {self.exchange}/{self.routing_key} type={self.type_name}>"
