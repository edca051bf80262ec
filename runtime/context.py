"""``ActorContext`` (what an actor can do) and ``ActorRef`` (a handle on an actor)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .bus import DEFAULT_CALL_TIMEOUT
from .delivery import Address

if TYPE_CHECKING:
    from .cell import ActorCell
    from .runtime import Runtime, SpawnTarget
    from .timers import Timer

T = TypeVar("T")

_actor_log = logging.getLogger("rackbus.actor")


@attrs.frozen
class ActorStatistics:
    """One actor's state and counters."""

    key: str
    state: str
    mailbox_depth: int
    mailbox_capacity: int
    messages_in: int
    rejected: int
    dropped: int
    restarts: int
    crashes: int
    active: bool


def actor_statistics(cell: ActorCell) -> ActorStatistics:
    """Read the counters of a cell."""
    return ActorStatistics(
        key=cell.id,
        state=cell.state.value,
        mailbox_depth=len(cell.mailbox),
        mailbox_capacity=cell.mailbox.capacity,
        messages_in=cell.messages_in,
        rejected=cell.rejected + cell.mailbox.rejected,
        dropped=cell.mailbox.dropped,
        restarts=max(0, cell.incarnations - 1),
        crashes=cell.crashes,
        active=cell._active,
    )


class ActorRef:
    """A handle on a spawned actor: its key and addresses, statistics, ``stop()``."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.id} {self._cell.state.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    @property
    def key(self) -> str:
        """The registry key."""
        return self._cell.id

    @property
    def address(self) -> Address:
        """The actor's own address (serves handlers declared without a binding)."""
        return self._cell.runtime.own_address(self._cell.id)

    @property
    def bindings(self) -> tuple[Address, ...]:
        """Every address the actor is bound to."""
        return tuple(route.address for route in self._cell.routes)

    @property
    def alive(self) -> bool:
        """True until the actor has stopped for good."""
        return self._cell.state.value not in ("stopped",)

    def statistics(self) -> ActorStatistics:
        """State, mailbox depth and counters."""
        return actor_statistics(self._cell)

    async def stop(self) -> None:
        """Stop the actor for good (within its grace period) and unregister it."""
        await self._cell.runtime.stop_actor(self._cell.id)


class ActorContext:
    """Handed to every actor as ``self.ctx``: its identity and the runtime's verbs."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags every record with this actor's key."""
        return logging.LoggerAdapter(_actor_log, {"actor": self._cell.id})

    @property
    def key(self) -> str:
        """This actor's registry key."""
        return self._cell.id

    @property
    def address(self) -> Address:
        """This actor's own address."""
        return self._cell.runtime.own_address(self._cell.id)

    @property
    def runtime(self) -> Runtime:
        """The runtime this actor lives in."""
        return self._cell.runtime

    @property
    def ref(self) -> ActorRef:
        """A handle on this actor."""
        return ActorRef(self._cell)

    async def publish(
        self, exchange: str, routing_key: str, message: object, *, timeout: float | None = None
    ) -> None:
        """Fan ``message`` out to every binding matching ``routing_key`` on ``exchange``."""
        await self._cell.runtime.publish(exchange, routing_key, message, timeout=timeout)

    async def tell(self, to: Address | ActorRef, message: object) -> None:
        """Send a one-way message to an address or an actor's own address."""
        await self._cell.runtime.tell(to, message)

    def send_after(
        self, delay: float, message: object, to: Address | ActorRef | None = None
    ) -> Timer:
        """Tell ``message`` to this actor (or to ``to``) after ``delay`` seconds.

        A timer to itself belongs to this incarnation: once the actor crashes, restarts or
        stops, it is dropped (the new incarnation sets its own in ``on_start``).
        """
        cell = self._cell
        if to is not None:
            return cell.runtime.send_after(delay, to, message)
        generation = cell.generation
        return cell.runtime.send_after(
            delay, self.ref, message, valid=lambda: cell.owns_timer(generation)
        )

    async def call(
        self,
        to: Address | ActorRef,
        message: object,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        returns: type[T] | None = None,
    ) -> Any:
        """Request/reply with a deadline; see ``Bus.call``."""
        return await self._cell.runtime.call(to, message, timeout=timeout, returns=returns)

    async def spawn(
        self, target: SpawnTarget, *args: Any, key: str | None = None, **options: Any
    ) -> ActorRef:
        """Spawn another actor in the same runtime; see ``Runtime.spawn``."""
        return await self._cell.runtime.spawn(target, *args, key=key, **options)

    def stop(self) -> None:
        """Stop this actor after the current message; anything still queued is refused."""
        self._cell.request_stop()
