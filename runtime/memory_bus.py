"""``MemoryBus``: the embedded, in-process bus with the same semantics as RabbitMQ.

Routing uses ``TopicIndex`` (exact keys in a dict, wildcards in a trie), so a
publish costs the same with ten bindings or a hundred thousand. Messages are
detached on the way in (``Codec.copy``): frozen attrs messages are shared as
they are, anything else is copied through JSON, so a payload that could not
cross a real wire fails here too and no two actors share mutable state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

import trio

from .bus import (
    DEFAULT_CALL_TIMEOUT,
    Binding,
    Bus,
    BusStatistics,
    Consumer,
    RoutingTable,
    check_timeout,
)
from .codec import Codec
from .delivery import Delivery, PendingCall, refusal_event
from .errors import (
    CallTimeout,
    MailboxClosed,
    MailboxFull,
    NoResponder,
    PublishTimeout,
)
from .message import wire_type_name
from .topic import check_key, check_pattern

T = TypeVar("T")


class MemoryBus(Bus):
    """A bus inside one process; two instances never see each other."""

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec = codec if codec is not None else Codec()
        self._routes = RoutingTable()
        self._published = 0
        self._delivered = 0
        self._unroutable = 0
        self._calls = 0
        self._calls_timed_out = 0
        self._no_responder = 0
        self._refused = 0

    async def aclose(self) -> None:
        self._routes.clear()

    async def bind(self, exchange: str, pattern: str, consumer: Consumer) -> Binding:
        binding = Binding(exchange, check_pattern(pattern), consumer)
        self._routes.index(exchange).add(pattern, binding)
        return binding

    async def unbind(self, binding: Binding) -> None:
        index = self._routes.get(binding.exchange)
        if index is not None:
            index.remove(binding.pattern, binding)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: object,
        *,
        timeout: float | None = None,
    ) -> None:
        targets = self._routes.index(exchange).match(check_key(routing_key))
        payload = self.codec.copy(message)
        self._published += 1
        if not targets:
            self._unroutable += 1
            await trio.lowlevel.checkpoint()
            return
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        delivery = Delivery(exchange, routing_key, payload, wire_type_name(message))
        try:
            refusals = await self._deliver(targets, delivery, deadline)
        except trio.TooSlowError:
            raise PublishTimeout(exchange, routing_key, timeout or 0.0) from None
        if len(refusals) == len(targets):
            full = [refusal for refusal in refusals if isinstance(refusal, MailboxFull)]
            if full:
                raise full[0]

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
        targets = self._routes.index(exchange).match(check_key(routing_key))
        self._calls += 1
        if not targets:
            self._no_responder += 1
            await trio.lowlevel.checkpoint()
            raise NoResponder(exchange, routing_key)
        payload = self.codec.copy(message)
        pending = PendingCall(self.codec.copy)
        delivery = Delivery(exchange, routing_key, payload, wire_type_name(message), pending)
        deadline = trio.current_time() + timeout
        with trio.move_on_at(deadline) as scope:
            try:
                refusals = await self._deliver(targets, delivery, deadline)
            except trio.TooSlowError:
                scope.cancel()
            else:
                if len(refusals) == len(targets):
                    await pending.respond_error(refusal_event(refusals[0], exchange, routing_key))
                await pending.event.wait()
        if not pending.settled:
            self._calls_timed_out += 1
            raise CallTimeout(exchange, routing_key, timeout)
        if pending.error is not None:
            raise pending.error
        if returns is None:
            return pending.value
        return self.codec.convert(pending.value, returns)

    async def _deliver(
        self, targets: Iterable[Binding], delivery: Delivery, deadline: float
    ) -> list[MailboxFull | MailboxClosed]:
        """Hand ``delivery`` to every target in turn; returns the refusals."""
        refusals: list[MailboxFull | MailboxClosed] = []
        for binding in targets:
            try:
                await binding.consumer.deliver(delivery, deadline)
            except (MailboxFull, MailboxClosed) as refusal:
                refusals.append(refusal)
            else:
                self._delivered += 1
        self._refused += len(refusals)
        return refusals

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            bindings=len(self._routes),
            published=self._published,
            delivered=self._delivered,
            unroutable=self._unroutable,
            calls=self._calls,
            calls_timed_out=self._calls_timed_out,
            no_responder=self._no_responder,
            refused=self._refused,
        )
