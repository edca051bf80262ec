"""Tools for testing actors and buses; also a pytest plugin (fixture ``rackbus_runtime``).

* ``rackbus_runtime``: a ``Runtime`` on a fresh ``MemoryBus``. Request it with
  pytest-trio's ``autojump_clock`` so timeouts and backoff run in virtual time::

      async def test_node(autojump_clock, rackbus_runtime):
          ref = await rackbus_runtime.spawn(Node, key="n1")

* ``call_handler(ref, "name", message)``: run one handler of a live actor
  directly (through its mailbox, in order with other messages) and get its
  result or exception;
* ``wait_for_handler(ref, "name")``: an async context manager that returns once
  the handler has run after the block (``waiter.message``, ``waiter.result``);
* ``Inbox``: a bus consumer that records deliveries and can answer calls.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from .bus import Binding, Bus
from .cell import Route
from .context import ActorRef
from .delivery import Address, Delivery, PendingCall
from .envelopes import ErrorEvent
from .message import wire_type_name
from .runtime import Runtime

__all__ = ["Inbox", "HandlerWaiter", "call_handler", "rackbus_runtime", "wait_for_handler"]


@pytest.fixture
async def rackbus_runtime() -> AsyncIterator[Runtime]:
    """A running ``Runtime`` on a new ``MemoryBus``; needs a ``MockClock`` in the test."""
    if not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
        raise RuntimeError(
            "rackbus_runtime runs on virtual time: add pytest-trio's autojump_clock "
            "(or mock_clock) to the test's arguments"
        )
    async with Runtime(name="test") as runtime:
        yield runtime


async def call_handler(
    ref: ActorRef,
    name: str,
    message: object,
    *,
    routing_key: str | None = None,
    timeout: float = 5.0,
) -> Any:
    """Run handler ``name`` of a live actor on ``message`` and return its result.

    The message goes through the actor's mailbox and decoding like any other,
    without the bus; a handler exception is raised here as ``RemoteError``.
    """
    cell = ref._cell
    route = next((r for r in cell.routes if any(h.name == name for h in r.handlers)), None)
    if route is None:
        raise LookupError(f"actor {ref.key!r} has no handler {name!r}")
    spec = next(h for h in route.handlers if h.name == name)
    single = Route(cell, route.address, (spec,))
    responder = PendingCall()
    delivery = Delivery(
        route.address.exchange,
        routing_key or route.address.routing_key,
        cell.runtime.codec.copy(message),
        _type_name(message),
        responder,
    )
    with trio.fail_after(timeout):
        await single.deliver(delivery, math.inf)
        await responder.event.wait()
    if responder.error is not None:
        raise responder.error
    return responder.value


def _type_name(message: object) -> str:
    return wire_type_name(message)


@attrs.define
class HandlerWaiter:
    """Filled in by ``wait_for_handler`` once the handler ran."""

    message: Any = None
    result: Any = None
    error: Exception | None = None


@asynccontextmanager
async def wait_for_handler(
    ref: ActorRef,
    name: str,
    *,
    predicate: Callable[[Any], bool] | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[HandlerWaiter]:
    """On leaving the block, wait until handler ``name`` has handled a message.

    Only messages handled after the block was entered count; ``predicate``
    narrows them further. Raises ``trio.TooSlowError`` after ``timeout``.
    """
    cell = ref._cell
    waiter = HandlerWaiter()
    seen = trio.Event()

    def observe(handler: str, message: Any, result: Any, error: Exception | None) -> None:
        if seen.is_set() or handler != name or (predicate is not None and not predicate(message)):
            return
        waiter.message, waiter.result, waiter.error = message, result, error
        seen.set()

    if cell.observers is None:
        cell.observers = []
    cell.observers.append(observe)
    try:
        yield waiter
        with trio.fail_after(timeout):
            await seen.wait()
    finally:
        cell.observers.remove(observe)


class Inbox:
    """A bus consumer that records what it receives and may answer calls.

    ``answer`` (optional) is called with each call's payload; its return value
    is the reply and an exception it raises becomes the caller's ``RemoteError``.
    """

    def __init__(self, answer: Callable[[Any], Any] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.answer = answer
        self._arrived = trio.Event()

    async def deliver(self, delivery: Delivery, deadline: float) -> None:
        self.deliveries.append(delivery)
        self._arrived.set()
        self._arrived = trio.Event()
        if delivery.responder is not None and self.answer is not None:
            try:
                value = self.answer(delivery.payload)
            except Exception as exc:
                await delivery.responder.respond_error(ErrorEvent.from_exception(exc, status=500))
            else:
                await delivery.responder.respond(value)
        delivery.settle()
        await trio.lowlevel.checkpoint()

    @property
    def payloads(self) -> list[Any]:
        """The payloads received so far, in order."""
        return [delivery.payload for delivery in self.deliveries]

    async def wait_for(self, count: int, *, timeout: float = 5.0) -> list[Delivery]:
        """Wait until ``count`` deliveries arrived in total; ``trio.TooSlowError`` otherwise."""
        with trio.fail_after(timeout):
            while len(self.deliveries) < count:
                await self._arrived.wait()
        return self.deliveries[:count]

    async def bind(self, bus: Bus, exchange: str, pattern: str) -> Binding:
        """Bind this inbox on ``bus``; returns the binding."""
        return await bus.bind(exchange, pattern, self)

    async def bind_address(self, bus: Bus, address: Address) -> Binding:
        """Bind this inbox to exactly one address."""
        return await bus.bind(address.exchange, address.routing_key, self)
