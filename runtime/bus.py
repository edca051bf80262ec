"""The ``Bus`` interface that every transport (in-memory, AMQP) implements.

A bus routes by AMQP topic rules: ``bind`` attaches a consumer to a pattern on
an exchange, ``publish`` fans a message out to every matching binding, and
``call`` sends a request and waits for the first reply. Exchanges are topic
exchanges declared on first use, so publishing, binding and calling never
depend on who started first.
"""

from __future__ import annotations

import abc
import math
import re
from typing import Any, Protocol, TypeVar

import attrs
import trio

from .codec import Codec
from .delivery import Delivery
from .topic import TopicIndex

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT = 5.0
"""Seconds a call waits for its first reply unless told otherwise."""

_EXCHANGE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,127}\Z")


class Consumer(Protocol):
    """Receives deliveries for one binding; may wait (backpressure) until ``deadline``."""

    async def deliver(self, delivery: Delivery, deadline: float) -> None:
        """Accept ``delivery``; ``deadline`` is a ``trio.current_time()`` value or ``inf``.

        Past the deadline, raises ``trio.TooSlowError`` having taken nothing (a bus may pass
        the current time to mean "only if it fits now"). ``MailboxFull`` and ``MailboxClosed``
        refuse the delivery: the bus counts it as refused and the other consumers still get it.
        """


@attrs.define(eq=False)
class Binding:
    """A consumer attached to a pattern on an exchange; pass it to ``Bus.unbind``."""

    exchange: str
    pattern: str
    consumer: Consumer


@attrs.frozen
class BusStatistics:
    """Counters of a bus, as returned by ``Bus.statistics()``."""

    bindings: int
    published: int
    delivered: int
    unroutable: int
    calls: int
    calls_timed_out: int
    no_responder: int
    refused: int
    """Deliveries a consumer refused (``MailboxFull``, ``MailboxClosed``)."""


class RoutingTable:
    """A bus's local bindings: one ``TopicIndex`` per exchange."""

    def __init__(self) -> None:
        self._indexes: dict[str, TopicIndex[Binding]] = {}

    def index(self, exchange: str) -> TopicIndex[Binding]:
        """The exchange's index, made on first use (the name is checked then)."""
        index = self._indexes.get(exchange)
        if index is None:
            index = self._indexes[check_exchange(exchange)] = TopicIndex()
        return index

    def get(self, exchange: str) -> TopicIndex[Binding] | None:
        """The exchange's index if anything was ever bound or sent there."""
        return self._indexes.get(exchange)

    def __len__(self) -> int:
        return sum(len(index) for index in self._indexes.values())

    def clear(self) -> None:
        """Forget every binding."""
        self._indexes.clear()


def check_exchange(name: str) -> str:
    """Return ``name`` if it is a valid exchange name, else raise ``ValueError``."""
    if not isinstance(name, str) or not _EXCHANGE_NAME.match(name):
        raise ValueError(
            f"invalid exchange name {name!r}: 1-127 characters of letters, digits, '-_.:'"
        )
    return name


def check_timeout(timeout: float) -> float:
    """Return ``timeout`` if it is a positive finite number of seconds, else raise."""
    if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ValueError(f"a call needs a finite positive timeout, got {timeout!r}")
    return float(timeout)


class Bus(abc.ABC):
    """Topic routing with one-way publish and request/reply call."""

    codec: Codec

    async def start(self, nursery: trio.Nursery) -> None:  # noqa: B027 - optional hook
        """Connect and get ready; background tasks go in ``nursery`` (the runtime's)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release every resource; bindings are gone afterwards."""

    async def declare(self, exchange: str) -> None:
        """Make ``exchange`` exist, before anything binds or publishes on it (services of other
        processes may bind first); invalid names raise ``ValueError``. In one process exchanges
        need no declaring, so this only checks the name."""
        check_exchange(exchange)

    @abc.abstractmethod
    async def bind(self, exchange: str, pattern: str, consumer: Consumer) -> Binding:
        """Deliver messages whose key matches ``pattern`` on ``exchange`` to ``consumer``."""

    @abc.abstractmethod
    async def unbind(self, binding: Binding) -> None:
        """Stop deliveries to ``binding``; unbinding twice is harmless."""

    @abc.abstractmethod
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: object,
        *,
        timeout: float | None = None,
    ) -> None:
        """Send ``message`` to every binding that matches; none matching is not an error.

        Waits while a receiving mailbox is full (backpressure); with ``timeout``
        set, gives up after that many seconds with ``PublishTimeout``. A consumer that
        refuses (a full ``Overflow.REJECT`` mailbox, a stopped actor) does not keep the
        message from the others; on the in-memory bus, ``MailboxFull`` is raised when every
        consumer refused and one of them was full.
        """

    @abc.abstractmethod
    async def call(
        self,
        exchange: str,
        routing_key: str,
        message: object,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        returns: type[T] | None = None,
    ) -> Any:
        """Send a request and return the first reply, converted to ``returns`` if given.

        Raises ``NoResponder`` at once when nothing is bound to the key,
        ``CallTimeout`` (naming exchange and key) when no reply comes in time,
        and ``RemoteError`` when the handler failed, or when every consumer refused the
        request (``name`` ``MailboxFull`` or ``MailboxClosed``, ``status`` 503).
        """

    @abc.abstractmethod
    def statistics(self) -> BusStatistics:
        """Counters since the bus was created."""
