"""``Timers``: messages delivered later (Erlang's ``send_after``).

An actor holds no task while idle, so it cannot sleep; it asks for a message
instead: ``self.ctx.send_after(60, Tick())`` tells it ``Tick()`` in a minute.
One task per runtime keeps every timer in a heap, on Trio's clock (so
``MockClock`` runs them in virtual time). A timer whose target is gone by then
is dropped quietly (an actor's timers to itself die with the incarnation that
set them, as in Erlang; a timer to an ``ActorRef`` dies with that actor). Each
delivery runs in its own task, so one full mailbox never delays the others.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .errors import RackbusError

log = logging.getLogger("rackbus.timers")

DEFAULT_MAX_TIMERS = 1_000_000

Deliver = Callable[[Any, object], Awaitable[object]]


class TooManyTimers(RackbusError):
    """``send_after`` found the runtime's bound on pending timers reached."""


class Timer:
    """A pending delivery; ``cancel()`` stops it if it has not fired yet."""

    __slots__ = ("cancelled", "deadline", "message", "to", "valid")

    def __init__(
        self,
        deadline: float,
        to: object,
        message: object,
        valid: Callable[[], bool] | None = None,
    ) -> None:
        self.deadline = deadline
        self.to = to
        self.message = message
        self.cancelled = False
        #: asked when the timer is due: ``False`` drops it (its owner is gone)
        self.valid = valid

    def cancel(self) -> None:
        """Do not deliver this timer's message."""
        self.cancelled = True

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"at {self.deadline:.3f}"
        return f"<Timer {type(self.message).__name__} {state}>"


class Timers:
    """Every pending timer of a runtime; ``run`` delivers them when due."""

    def __init__(self, max_timers: int = DEFAULT_MAX_TIMERS) -> None:
        self.max_timers = max_timers
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._changed = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def send_after(
        self,
        delay: float,
        to: object,
        message: object,
        *,
        valid: Callable[[], bool] | None = None,
    ) -> Timer:
        """Deliver ``message`` to ``to`` after ``delay`` seconds, unless ``valid()`` is false
        by then; returns the timer."""
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"timer delay must be a finite number of seconds >= 0, not {delay!r}")
        if len(self._heap) >= self.max_timers:
            self._drop_cancelled()
            if len(self._heap) >= self.max_timers:
                raise TooManyTimers(f"{self.max_timers} timers are pending")
        timer = Timer(trio.current_time() + delay, to, message, valid)
        heapq.heappush(self._heap, (timer.deadline, next(self._order), timer))
        self._changed.set()
        return timer

    def _drop_cancelled(self) -> None:
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)

    async def run(self, deliver: Deliver) -> None:
        """Deliver timers as they fall due, until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                self._changed = trio.Event()
                now = trio.current_time()
                while self._heap and self._heap[0][0] <= now:
                    _, _, timer = heapq.heappop(self._heap)
                    if not timer.cancelled:
                        nursery.start_soon(_deliver, deliver, timer)
                deadline = self._heap[0][0] if self._heap else math.inf
                with trio.move_on_at(deadline):
                    await self._changed.wait()


async def _deliver(deliver: Deliver, timer: Timer) -> None:
    if timer.valid is not None and not timer.valid():
        return
    try:
        await deliver(timer.to, timer.message)
    except RackbusError as exc:
        log.debug("timer %r not delivered: %s", timer, exc)
    except Exception as exc:  # one timer never takes the runtime down
        log.warning("timer %r not delivered: %r", timer, exc)
