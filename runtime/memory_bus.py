"""``MemoryBus``: the embedded, in-process bus with the same semantics as RabbitMQ.

Routing uses ``TopicIndex`` (exact keys in a dict, wildcards in a trie), so a
publish costs the same with ten bindings or a hundred thousand. Messages are
detached on the way in (``Codec.copy``): frozen attrs messages are shared as
they are, anything else is copied through JSON, so a payload that could not
cross a real wire fails here too and no two actors share mutable state.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import trio

from .bus import (
    DEFAULT_CALL_TIMEOUT,
    Binding,
    Bus,
    BusStatistics,
    Consumer,
    check_exchange,
    check_timeout,
)
from .codec import Codec
from .delivery import Delivery
from .envelopes import ErrorEvent
from .errors import CallTimeout, NoResponder, PublishTimeout
from .message import wire_type_name
from .topic import TopicIndex, check_key, check_pattern

T = TypeVar("T")


class _PendingCall:
    """The caller's side of one call: the first answer settles it, later ones are ignored."""

    __slots__ = ("_codec", "_error", "_event", "_settled", "_value")

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._event = trio.Event()
        self._value: Any = None
        self._error: ErrorEvent | None = None
        self._settled = False

    async def respond(self, value: object) -> None:
        if not self._settled:
            self._value = self._codec.copy(value)
            self._settle()

    async def respond_error(self, error: ErrorEvent) -> None:
        if not self._settled:
            self._error = error
            self._settle()

    def _settle(self) -> None:
        self._settled = True
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def result(self, returns: type[T] | None) -> Any:
        if self._error is not None:
            raise self._error.to_error()
        if returns is None:
            return self._value
        return self._codec.convert(self._value, returns)


class MemoryBus(Bus):
    """A bus inside one process; two instances never see each other."""

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec = codec if codec is not None else Codec()
        self._exchanges: dict[str, TopicIndex[Binding]] = {}
        self._published = 0
        self._delivered = 0
        self._unroutable = 0
        self._calls = 0
        self._calls_timed_out = 0
        self._no_responder = 0

    def _index(self, exchange: str) -> TopicIndex[Binding]:
        index = self._exchanges.get(exchange)
        if index is None:
            index = self._exchanges[check_exchange(exchange)] = TopicIndex()
        return index

    async def aclose(self) -> None:
        self._exchanges.clear()

    async def bind(self, exchange: str, pattern: str, consumer: Consumer) -> Binding:
        binding = Binding(exchange, check_pattern(pattern), consumer)
        self._index(exchange).add(pattern, binding)
        return binding

    async def unbind(self, binding: Binding) -> None:
        index = self._exchanges.get(binding.exchange)
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
        targets = self._index(exchange).match(check_key(routing_key))
        payload = self.codec.copy(message)
        self._published += 1
        if not targets:
            self._unroutable += 1
            await trio.lowlevel.checkpoint()
            return
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        delivery = Delivery(exchange, routing_key, payload, wire_type_name(message))
        try:
            for binding in targets:
                await binding.consumer.deliver(delivery, deadline)
        except trio.TooSlowError:
            raise PublishTimeout(exchange, routing_key, timeout or 0.0) from None
        self._delivered += len(targets)

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
        targets = self._index(exchange).match(check_key(routing_key))
        self._calls += 1
        if not targets:
            self._no_responder += 1
            await trio.lowlevel.checkpoint()
            raise NoResponder(exchange, routing_key)
        payload = self.codec.copy(message)
        pending = _PendingCall(self.codec)
        delivery = Delivery(exchange, routing_key, payload, wire_type_name(message), pending)
        deadline = trio.current_time() + timeout
        with trio.move_on_at(deadline) as scope:
            try:
                for binding in targets:
                    await binding.consumer.deliver(delivery, deadline)
            except trio.TooSlowError:
                scope.cancel()
            else:
                await pending.wait()
        if not pending._settled:
            self._calls_timed_out += 1
            raise CallTimeout(exchange, routing_key, timeout)
        return pending.result(returns)

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            bindings=sum(len(index) for index in self._exchanges.values()),
            published=self._published,
            delivered=self._delivered,
            unroutable=self._unroutable,
            calls=self._calls,
            calls_timed_out=self._calls_timed_out,
            no_responder=self._no_responder,
        )
