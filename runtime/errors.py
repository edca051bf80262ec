"""The exceptions the runtime raises, in one small hierarchy under :class:`RackbusError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RackbusError(Exception):
    """Base of every error raised by rackbus itself."""


class InvalidRoutingKey(RackbusError, ValueError):
    """A routing key or binding pattern is malformed (too long, not text, ...)."""


class EncodeError(RackbusError, TypeError):
    """A message cannot be put on the wire (not an attrs message or JSON value)."""


class DecodeError(RackbusError, ValueError):
    """An incoming payload does not fit the expected type; ``fields`` names each bad field.

    ``fields`` is a tuple of ``(path, reason)`` pairs such as ``("$.value", "expected str")``.
    """

    def __init__(self, message: str, fields: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class NoResponder(RackbusError):
    """A call was made to a routing key that nothing is bound to."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(f"no responder bound to {exchange}/{routing_key}")
        self.exchange = exchange
        self.routing_key = routing_key


class CallTimeout(RackbusError, TimeoutError):
    """A call got no reply before its deadline."""

    def __init__(self, exchange: str, routing_key: str, timeout: float) -> None:
        super().__init__(f"call to {exchange}/{routing_key} timed out after {timeout:g} s")
        self.exchange = exchange
        self.routing_key = routing_key
        self.timeout = timeout


class PublishTimeout(RackbusError, TimeoutError):
    """A publish waited on full mailboxes for longer than its deadline."""

    def __init__(self, exchange: str, routing_key: str, timeout: float) -> None:
        super().__init__(
            f"publish to {exchange}/{routing_key} blocked on a full mailbox for {timeout:g} s"
        )
        self.exchange = exchange
        self.routing_key = routing_key
        self.timeout = timeout


class RemoteError(RackbusError):
    """A handler raised; this is its ``ErrorEvent`` raised again in the caller."""

    def __init__(
        self,
        name: str,
        message: str,
        stack: str = "",
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.stack = stack
        self.context = dict(context or {})
        self.status = status


class MailboxFull(RackbusError):
    """A mailbox with the ``reject`` overflow policy was full."""

    def __init__(self, owner: str, capacity: int) -> None:
        super().__init__(f"mailbox of {owner} is full ({capacity} messages)")
        self.owner = owner
        self.capacity = capacity


class MailboxClosed(RackbusError):
    """The actor behind a mailbox has stopped."""


class ActorExists(RackbusError):
    """An actor with that key is already registered."""


class ActorNotFound(RackbusError, LookupError):
    """No actor is registered under that key."""


class ActorStartError(RackbusError):
    """An actor's ``on_start`` hook raised; the cause is chained."""


class RestartIntensityExceeded(RackbusError):
    """A supervisor restarted its children too often and gave up (escalation)."""

    def __init__(self, supervisor: str, restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} exceeded {restarts} restarts in {period:g} s; escalating"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period


class RuntimeClosed(RackbusError):
    """The runtime has stopped or has not been started."""


class BusUnavailable(RackbusError, ConnectionError):
    """The bus has no connection to its broker (at start, or during an outage)."""


class ConnectionLost(BusUnavailable):
    """The broker connection dropped while a call waited for its reply."""


class PublishBufferFull(BusUnavailable):
    """A publish during an outage found the bounded outage buffer full."""


class PublishRefused(RackbusError):
    """The broker refused a publish (negative confirm)."""


def raise_single(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the group's only exception on its own, if it holds just one."""
    leaves = _leaves(group)
    if len(leaves) == 1:
        leaf = leaves[0]
        raise leaf from leaf.__cause__


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found
