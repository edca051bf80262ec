"""``Supervisor``: Erlang/OTP supervision on a Trio nursery.

A supervisor starts its children in order and watches them. When one exits it
decides by the child's ``Restart`` type and its own ``Strategy``:

* ``ONE_FOR_ONE`` restarts only that child; ``ONE_FOR_ALL`` stops every other
  child (in reverse start order) and restarts them all; ``REST_FOR_ONE`` does
  that for the children started after it;
* ``PERMANENT`` children are always restarted, ``TRANSIENT`` ones only after a
  crash, ``TEMPORARY`` ones never (a crash is logged and counted);
* more than ``intensity`` restarts within ``period`` seconds stop every child and
  raise ``RestartIntensityExceeded`` from the last crash, out of ``run()``, so the
  parent supervisor (or the ``Runtime``) decides next; restarts wait a backoff
  with jitter.

On shutdown children stop in reverse start order, each within its grace period
and then cancelled. Children are anything with the small ``Child`` interface:
actors, plain tasks (``TaskChild``) and nested supervisors.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

from .errors import RestartIntensityExceeded, RuntimeClosed, raise_single

log = logging.getLogger("rackbus.supervisor")

ExitCallback = Callable[["Child", BaseException | None], None]


class Strategy(enum.Enum):
    """Which children restart when one of them exits."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When a child that exited is started again."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Child(Protocol):
    """What a supervisor needs of a child."""

    id: str
    restart: Restart
    shutdown: float

    async def start(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None:
        """Start (or restart); raise if that fails. Report a later exit through ``on_exit``."""

    async def stop(self, *, final: bool) -> None:
        """Stop within ``shutdown`` seconds, then cancel; no ``on_exit`` report follows.

        ``final`` is False when the child is stopped only to be restarted.
        """

    def removed(self) -> None:
        """Called once the supervisor has dropped the child for good."""


@attrs.frozen
class Backoff:
    """Delay before the n-th restart in a window: ``initial * factor**(n-1)``, capped, +- jitter."""

    initial: float = 0.01
    factor: float = 2.0
    maximum: float = 2.0
    jitter: float = 0.25

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * rng.uniform(-1.0, 1.0)))


DEFAULT_BACKOFF = Backoff()


@attrs.frozen
class SupervisorStatistics:
    """Counters of one supervisor."""

    name: str
    children: int
    restarts: int
    crashes: int


@attrs.frozen
class _Exit:
    """A child's exit, stamped with how many times it had been started then."""

    child: Child
    error: BaseException | None
    start: int


class _StartedStatus:
    """Passes ``started()`` on to the supervisor's nursery and remembers that it was called."""

    def __init__(self, status: trio.TaskStatus[None]) -> None:
        self._status = status
        self.is_started = False

    def started(self, value: object = None) -> None:
        self.is_started = True
        self._status.started()


class TaskChild:
    """A long-running ``async`` function as a supervised child.

    Stopping cancels the function (it may clean up in ``finally``). With
    ``graceful_stop`` given, that is awaited first and the function is expected
    to return on its own within ``shutdown`` seconds. With ``wait_started``,
    the function is called as ``fn(task_status=...)`` (like ``nursery.start``):
    starting waits until it calls ``task_status.started()``, and an error
    before that is raised by the start (a server that cannot bind its socket
    fails ``start_child`` instead of crashing later).
    """

    def __init__(
        self,
        id: str,
        fn: Callable[..., Awaitable[Any]],
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float = 5.0,
        graceful_stop: Callable[[], Awaitable[None]] | None = None,
        wait_started: bool = False,
    ) -> None:
        self.id = id
        self.fn = fn
        self.wait_started = wait_started
        self.restart = restart
        self.shutdown = shutdown
        self._graceful_stop = graceful_stop
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None
        self._stopping = False

    async def start(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None:
        self._stopping = False
        await nursery.start(self._run, on_exit)

    async def _run(
        self, on_exit: ExitCallback, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._scope = trio.CancelScope()
        self._done = done = trio.Event()
        error: BaseException | None = None
        status = _StartedStatus(task_status)
        try:
            with self._scope:
                if self.wait_started:
                    await self.fn(task_status=status)
                else:
                    status.started()
                    await self.fn()
        except Exception as exc:
            if not status.is_started:
                if isinstance(exc, BaseExceptionGroup):
                    raise_single(exc)
                raise
            error = exc
        finally:
            done.set()
        if not status.is_started:
            raise RuntimeError(f"task {self.id!r} returned without calling task_status.started()")
        if not self._stopping:
            on_exit(self, error)

    async def stop(self, *, final: bool) -> None:
        self._stopping = True
        if self._scope is None or self._done is None or self._done.is_set():
            return
        with trio.move_on_after(self.shutdown) as grace:
            grace.shield = True
            if self._graceful_stop is not None:
                await self._graceful_stop()
            else:
                self._scope.cancel()
            await self._done.wait()
        if grace.cancelled_caught:
            self._scope.cancel()
            with trio.CancelScope(shield=True):
                await self._done.wait()

    def removed(self) -> None:
        pass


class Supervisor:
    """Starts, watches and restarts children; see the module docstring for the rules."""

    def __init__(
        self,
        name: str = "supervisor",
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        children: list[Child] | None = None,
        seed: int | None = None,
    ) -> None:
        if intensity < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.backoff = backoff
        self._initial = list(children or [])
        self._children: dict[str, Child] = {}
        #: starts per child id: an exit event carries the count at its exit, so the exit of
        #: an incarnation that a group restart already replaced is recognised as stale
        self._starts: dict[str, int] = {}
        self._restart_times: deque[float] = deque()
        self._rng = random.Random(seed)
        self._exits_send, self._exits = trio.open_memory_channel[_Exit | None](math.inf)
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()
        self._closing = False
        self.restarts = 0
        self.crashes = 0

    def __repr__(self) -> str:
        return f"<Supervisor {self.name} {self.strategy.value} children={len(self._children)}>"

    @property
    def children(self) -> list[Child]:
        """The current children, in start order."""
        return list(self._children.values())

    def statistics(self) -> SupervisorStatistics:
        """Counters of this supervisor."""
        return SupervisorStatistics(self.name, len(self._children), self.restarts, self.crashes)

    async def run(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the initial children, report started, then supervise until ``stop()``.

        Raises ``RestartIntensityExceeded`` (escalation), or the error of an
        initial child that failed to start, after stopping every child.
        """
        self._reset()
        failure: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    for child in self._initial:
                        await self._start_new(child)
                    task_status.started(self)
                    await self._supervise()
                except Exception as exc:
                    failure = exc
                finally:
                    self._closing = True
                    with trio.CancelScope(shield=True):
                        await self._stop_children(list(self._children.values()), final=True)
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._stopped.set()
        if failure is not None:
            raise failure

    def _reset(self) -> None:
        self._exits_send, self._exits = trio.open_memory_channel[_Exit | None](math.inf)
        self._stopped = trio.Event()
        self._closing = False
        self._restart_times.clear()

    def as_child(
        self, *, restart: Restart = Restart.PERMANENT, shutdown: float = 30.0
    ) -> TaskChild:
        """Wrap this supervisor so that another supervisor can supervise it."""
        return TaskChild(
            self.name, self.run, restart=restart, shutdown=shutdown, graceful_stop=self.stop
        )

    async def stop(self) -> None:
        """Stop every child in reverse start order and end ``run()``; waits for that."""
        if self._nursery is not None and not self._stopped.is_set():
            self._exits_send.send_nowait(None)
            await self._stopped.wait()

    async def start_child(self, child: Child) -> Child:
        """Add and start a child now; a failing start raises here and adds nothing."""
        if self._nursery is None or self._closing:
            raise RuntimeClosed(f"supervisor {self.name!r} is not running")
        if child.id in self._children:
            raise ValueError(f"supervisor {self.name!r} already has a child {child.id!r}")
        await self._start_new(child)
        return child

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child for good and forget it; unknown ids raise ``KeyError``."""
        child = self._children[child_id]
        await child.stop(final=True)
        self._remove(child)

    def get_child(self, child_id: str) -> Child | None:
        """The child with that id, if any."""
        return self._children.get(child_id)

    async def _start_new(self, child: Child) -> None:
        assert self._nursery is not None
        self._children[child.id] = child
        try:
            await self._start(child)
        except BaseException:
            if self._children.get(child.id) is child:
                del self._children[child.id]
                self._starts.pop(child.id, None)
            raise
        if self._closing or self._children.get(child.id) is not child:
            # the supervisor stopped (or let go of the child) while it was starting
            with trio.CancelScope(shield=True):
                await child.stop(final=True)
            self._remove(child)
            raise RuntimeClosed(f"supervisor {self.name!r} stopped while {child.id!r} started")

    async def _start(self, child: Child) -> None:
        self._starts[child.id] = self._starts.get(child.id, 0) + 1
        await child.start(self._nursery, self._on_exit)  # type: ignore[arg-type]

    def _on_exit(self, child: Child, error: BaseException | None) -> None:
        if not self._closing:
            self._exits_send.send_nowait(_Exit(child, error, self._starts.get(child.id, 0)))

    async def _supervise(self) -> None:
        async for event in self._exits:
            if event is None:
                return
            child = event.child
            current = self._children.get(child.id) is child
            if current and self._starts.get(child.id) == event.start:
                await self._handle_exit(child, event.error)

    async def _handle_exit(self, child: Child, error: BaseException | None) -> None:
        if error is not None:
            self.crashes += 1
            log.error("%s: child %s crashed: %r", self.name, child.id, error, exc_info=error)
        restart = child.restart is Restart.PERMANENT or (
            child.restart is Restart.TRANSIENT and error is not None
        )
        if not restart:  # let go of it for good: bindings and mailbox go with it
            await self._stop_children([child], final=True)
            return
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        else:
            order = list(self._children.values())
            first = 0 if self.strategy is Strategy.ONE_FOR_ALL else order.index(child)
            group = order[first:]
            await self._stop_children([c for c in group if c is not child], final=False)
        await self._restart_group(group, error)

    async def _restart_group(self, group: list[Child], error: BaseException | None) -> None:
        pending = list(group)
        while pending:
            await self._count_restart(error)
            try:
                while pending:
                    child = pending[0]
                    if self._children.get(child.id) is child:  # not terminated meanwhile
                        await self._start(child)
                    pending.pop(0)
            except Exception as exc:
                error = exc
                self.crashes += 1
                log.error("%s: restart of %s failed: %r", self.name, pending[0].id, exc)

    async def _count_restart(self, error: BaseException | None) -> None:
        now = trio.current_time()
        times = self._restart_times
        while times and times[0] <= now - self.period:
            times.popleft()
        times.append(now)
        if len(times) > self.intensity:
            raise RestartIntensityExceeded(self.name, self.intensity, self.period) from error
        self.restarts += 1
        await trio.sleep(self.backoff.delay(len(times), self._rng))

    async def _stop_children(self, children: list[Child], *, final: bool) -> None:
        for child in reversed(children):
            try:
                await child.stop(final=final)
            except Exception as exc:
                log.error("%s: stopping %s failed: %r", self.name, child.id, exc)
            if final:
                self._remove(child)

    def _remove(self, child: Child) -> None:
        if self._children.get(child.id) is child:
            del self._children[child.id]
            self._starts.pop(child.id, None)
            child.removed()
