"""``Runtime``: the embeddable root that owns a bus, a root supervisor and a registry.

Use it inside any Trio program::

    async with Runtime() as rt:              # MemoryBus by default
        await rt.spawn(Node, key="node-1")
        await rt.publish("on.task", "run.node-1", RunTask(...))

Leaving the block normally stops every actor (reverse start order, each
within its grace period, all within ``shutdown_timeout``); leaving it by an
exception, a cancellation or Ctrl-C cancels them at once. Either way the bus
is closed and no task is left behind. An error that no supervisor handled
propagates out of the ``async with``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import attrs
import trio

from .actor import Actor
from .bus import DEFAULT_CALL_TIMEOUT, Bus, BusStatistics, check_exchange
from .cell import ActorCell, IdleRetirer, State
from .codec import Codec
from .context import ActorRef
from .delivery import Address
from .errors import ActorNotFound, InvalidRoutingKey, RuntimeClosed, raise_single
from .mailbox import Overflow
from .memory_bus import MemoryBus
from .registry import Registry
from .supervisor import DEFAULT_BACKOFF, Backoff, Restart, Strategy, Supervisor
from .timers import Timer, Timers
from .topic import check_key

T = TypeVar("T")
SpawnTarget = type[Actor] | Callable[..., Actor]

OWN_EXCHANGE = "rackbus.actors"
"""Exchange of every actor's own address (routing key = the actor's key)."""

MAX_KEY_LENGTH = 200


@attrs.frozen
class RuntimeStatistics:
    """A snapshot of a runtime, from ``Runtime.statistics()``."""

    actors: int
    active_actors: int
    mailbox_depth_total: int
    mailbox_depth_max: int
    messages_in: int
    messages_out: int
    rejected: int
    dropped: int
    restarts: int
    crashes: int
    bus: BusStatistics


class Runtime:
    """The root of an actor system; ``async with`` it inside a Trio program.

    ``bus`` defaults to a fresh ``MemoryBus``. The root supervisor restarts
    crashed actors one for one, at most ``intensity`` times in ``period``
    seconds; beyond that the error leaves the ``async with``. Actor tasks that
    were idle for ``idle_timeout`` seconds are ended (their mailboxes stay).
    """

    def __init__(
        self,
        bus: Bus | None = None,
        *,
        name: str = "rackbus",
        intensity: int = 10,
        period: float = 5.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        idle_timeout: float = 10.0,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.bus = bus if bus is not None else MemoryBus()
        self.codec: Codec = self.bus.codec
        self.registry: Registry[ActorCell] = Registry()
        self.retirer = IdleRetirer(idle_timeout)
        self.timers = Timers()
        self.root = Supervisor(
            f"{name}.root",
            strategy=Strategy.ONE_FOR_ONE,
            intensity=intensity,
            period=period,
            backoff=backoff,
        )
        self.shutdown_timeout = shutdown_timeout
        self._stop_by = math.inf  # see stop_deadline
        self._nursery_manager: Any = None
        self._nursery: trio.Nursery | None = None
        self._messages_out = 0
        self._counter = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        if self._nursery_manager is not None:
            raise RuntimeError("a Runtime can be entered only once")
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        try:
            await self.bus.start(self._nursery)
            self._nursery.start_soon(self.retirer.run, name="rackbus idle retirer")
            self._nursery.start_soon(self.timers.run, self.tell, name="rackbus timers")
            await self._nursery.start(self._run_root)
        except BaseException as exc:
            self._nursery.cancel_scope.cancel()
            try:
                await self._nursery_manager.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group:
                raise_single(group)
            raise
        return self

    async def _run_root(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self.root.run(task_status=task_status)
        # The root only returns by itself when stopped; then nothing is left to run.
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None
        # every stop from now on ends by then: within shutdown_timeout, or at once on an error
        now = trio.current_time()
        self._stop_by = now + self.shutdown_timeout if exc is None else now
        try:
            if exc is None:
                # A clean exit stops actors gracefully; an error, a cancellation
                # or Ctrl-C cancels them at once.
                with trio.move_on_after(self.shutdown_timeout) as scope:
                    scope.shield = True
                    await self.root.stop()
            with trio.move_on_after(self.shutdown_timeout) as scope:
                scope.shield = True
                await self.bus.aclose()
        finally:
            self._nursery.cancel_scope.cancel()
            self._nursery = None
        try:
            return bool(await self._nursery_manager.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            raise_single(group)
            raise

    def stop_deadline(self, grace: float) -> float:
        """When a stop allowed ``grace`` seconds must be over (a ``trio.current_time()``
        value): sooner once the runtime is leaving, so that leaving takes at most
        ``shutdown_timeout`` (clean exit) or no grace at all (an error, a cancellation)."""
        return min(trio.current_time() + grace, self._stop_by)

    def _check_running(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeClosed(f"runtime {self.name!r} is not running")
        return self._nursery

    # -- addresses ---------------------------------------------------------

    def own_address(self, key: str) -> Address:
        """The own address of the actor with that key."""
        return Address(OWN_EXCHANGE, key)

    def format_pattern(self, pattern: str, key: str) -> str:
        """Put an actor's key into a handler pattern; the key must be one literal word there."""
        if "{key}" in pattern and ("." in key or key in ("*", "#")):
            raise InvalidRoutingKey(
                f"actor key {key!r} cannot stand for one word of {pattern!r} "
                "(no dots, not '*' or '#')"
            )
        return pattern.replace("{key}", key)

    # -- actors ------------------------------------------------------------

    async def spawn(
        self,
        target: SpawnTarget,
        *args: Any,
        key: str | None = None,
        restart: Restart = Restart.TRANSIENT,
        shutdown: float = 5.0,
        mailbox_size: int | None = None,
        overflow: Overflow | None = None,
        supervisor: Supervisor | None = None,
    ) -> ActorRef:
        """Create, start and register an actor; returns once it is bound and running.

        ``target(*args)`` builds the actor (again at every restart). ``key`` names
        it in the registry (generated when omitted). ``restart`` says when the
        supervisor (the root one unless ``supervisor`` is given) restarts it.
        Raises ``ActorExists`` for a taken key and ``ActorStartError`` when
        ``on_start`` fails.
        """
        self._check_running()
        cls = target if isinstance(target, type) and issubclass(target, Actor) else None
        if key is None:
            key = f"{getattr(target, '__name__', 'actor')}-{next(self._counter)}"
        _check_key(key)
        size = mailbox_size or (cls.mailbox_size if cls else Actor.mailbox_size)
        policy = overflow or (cls.overflow if cls else Actor.overflow)
        factory = functools.partial(target, *args) if args else target
        cell = ActorCell(
            self,
            key,
            factory,
            restart=restart,
            shutdown=shutdown,
            mailbox_size=size,
            overflow=policy,
            on_removed=self._forget,
        )
        self.registry.add(key, cell)
        try:
            await (supervisor or self.root).start_child(cell)
        except BaseException:
            self.registry.discard(key, cell)
            raise
        return ActorRef(cell)

    def _forget(self, cell: ActorCell) -> None:
        self.registry.discard(cell.id, cell)

    def lookup(self, key: str) -> ActorRef | None:
        """The actor registered under ``key``, or ``None``."""
        cell = self.registry.get(key)
        return ActorRef(cell) if cell is not None else None

    async def stop_actor(self, key: str) -> None:
        """Stop the actor under ``key`` for good; ``ActorNotFound`` if there is none."""
        cell = self.registry.get(key)
        if cell is None or cell.state is State.STOPPED:
            raise ActorNotFound(f"no actor with key {key!r}")
        supervisor = self._supervisor_of(cell)
        if supervisor is None:
            await cell.stop(final=True)
            self._forget(cell)
        else:
            await supervisor.terminate_child(cell.id)

    def _supervisor_of(self, cell: ActorCell) -> Supervisor | None:
        on_exit = cell._on_exit
        owner = getattr(on_exit, "__self__", None)
        return owner if isinstance(owner, Supervisor) else None

    async def start_supervisor(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        restart: Restart = Restart.PERMANENT,
        parent: Supervisor | None = None,
    ) -> Supervisor:
        """Start a nested supervisor under ``parent`` (default: the root) and return it."""
        self._check_running()
        sup = Supervisor(
            name, strategy=strategy, intensity=intensity, period=period, backoff=backoff
        )
        await (parent or self.root).start_child(sup.as_child(restart=restart))
        return sup

    # -- messaging ---------------------------------------------------------

    async def publish(
        self, exchange: str, routing_key: str, message: object, *, timeout: float | None = None
    ) -> None:
        """Fan ``message`` out to every binding that matches; see ``Bus.publish``."""
        self._messages_out += 1
        await self.bus.publish(exchange, routing_key, message, timeout=timeout)

    async def tell(self, to: Address | ActorRef, message: object) -> None:
        """Send a one-way message to an address or to an actor's own address."""
        address = to.address if isinstance(to, ActorRef) else to
        self._messages_out += 1
        await self.bus.publish(address.exchange, address.routing_key, message)

    def send_after(
        self,
        delay: float,
        to: Address | ActorRef,
        message: object,
        *,
        valid: Callable[[], bool] | None = None,
    ) -> Timer:
        """Tell ``message`` to ``to`` after ``delay`` seconds (Trio's clock); ``cancel()`` the
        returned timer to call it off. Raises ``TooManyTimers`` beyond the runtime's bound,
        ``ValueError`` for a bad address. A timer to an ``ActorRef`` is dropped if that actor
        is gone by then (a new actor under its key does not get it), and any timer whose
        ``valid()`` is then false."""
        self._check_running()
        if isinstance(to, ActorRef):
            valid = _while_registered(self.registry, to._cell, valid)
        else:
            check_exchange(to.exchange)
            check_key(to.routing_key)
        return self.timers.send_after(delay, to, message, valid=valid)

    async def call(
        self,
        to: Address | ActorRef,
        message: object,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        returns: type[T] | None = None,
    ) -> Any:
        """Request/reply with a deadline; see ``Bus.call``."""
        address = to.address if isinstance(to, ActorRef) else to
        self._messages_out += 1
        return await self.bus.call(
            address.exchange, address.routing_key, message, timeout=timeout, returns=returns
        )

    # -- introspection -----------------------------------------------------

    def statistics(self) -> RuntimeStatistics:
        """Actor count, mailbox depths, message, restart and crash counters (O(actors)).

        ``restarts`` and ``crashes`` count the actors registered now; a crashed
        actor that was not restarted is counted by its supervisor's statistics.
        """
        cells = list(self.registry)
        depths = [len(cell.mailbox) for cell in cells]
        return RuntimeStatistics(
            actors=len(cells),
            active_actors=sum(1 for cell in cells if cell._active),
            mailbox_depth_total=sum(depths),
            mailbox_depth_max=max(depths, default=0),
            messages_in=sum(cell.messages_in for cell in cells),
            messages_out=self._messages_out,
            rejected=sum(cell.rejected + cell.mailbox.rejected for cell in cells),
            dropped=sum(cell.mailbox.dropped for cell in cells),
            restarts=sum(max(0, cell.incarnations - 1) for cell in cells),
            crashes=sum(cell.crashes for cell in cells),
            bus=self.bus.statistics(),
        )


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRoutingKey(f"actor key must be 1-{MAX_KEY_LENGTH} characters, got {key!r}")
    if any(word in ("*", "#") for word in key.split(".")):
        raise InvalidRoutingKey(f"actor key {key!r} may not contain '*' or '#' words")


__all__ = ["OWN_EXCHANGE", "Runtime", "RuntimeStatistics"]


def _while_registered(
    registry: Registry[ActorCell], cell: ActorCell, valid: Callable[[], bool] | None
) -> Callable[[], bool]:
    """A timer check: the actor is still the one registered under its key (and ``valid``)."""

    def check() -> bool:
        return registry.get(cell.id) is cell and (valid is None or valid())

    return check
