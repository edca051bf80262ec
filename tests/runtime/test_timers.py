"""Timers: messages delivered later, in virtual time."""

from __future__ import annotations

import attrs
import pytest
import trio

from runtime import Actor, Address, Runtime, TooManyTimers, handler, message
from runtime.timers import Timers


@message("Tick")
@attrs.frozen
class Tick:
    n: int


class Ticker(Actor):
    """Ticks every second by asking for its next tick."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    async def on_start(self) -> None:
        self.ctx.send_after(1.0, Tick(0))

    @handler()
    async def tick(self, tick: Tick) -> None:
        self.seen.append((tick.n, trio.current_time()))
        if tick.n < 4:
            self.ctx.send_after(1.0, Tick(tick.n + 1))


async def test_an_idle_actor_ticks_on_time(autojump_clock: object) -> None:
    async with Runtime() as rt:
        start = trio.current_time()
        ref = await rt.spawn(Ticker, key="ticker")
        await trio.sleep(10)
        seen = ref._cell.actor.seen  # type: ignore[attr-defined]
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert [round(at - start, 3) for _, at in seen] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_cancelled_timers_do_not_fire_and_order_holds(autojump_clock: object) -> None:
    got: list[object] = []

    async def deliver(to: object, msg: object) -> None:
        got.append(msg)

    timers = Timers()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run, deliver)
        timers.send_after(3, "x", "third")
        timers.send_after(1, "x", "first")
        timers.send_after(2, "x", "second").cancel()
        timers.send_after(2, "x", "also second")
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert got == ["first", "also second", "third"]


async def test_bad_delays_and_the_bound_are_refused(autojump_clock: object) -> None:
    timers = Timers(max_timers=2)
    with pytest.raises(ValueError, match="finite"):
        timers.send_after(float("inf"), "x", "m")
    with pytest.raises(ValueError, match=">= 0"):
        timers.send_after(-1, "x", "m")
    timers.send_after(1, "x", "a")
    second = timers.send_after(1, "x", "b")
    with pytest.raises(TooManyTimers):
        timers.send_after(1, "x", "c")
    second.cancel()
    timers.send_after(1, "x", "c")  # room again once a cancelled one is dropped
    assert len(timers) == 2


async def test_a_timer_to_nobody_is_dropped_quietly(autojump_clock: object) -> None:
    async with Runtime() as rt:
        rt.send_after(1, Address("rackbus.actors", "gone"), Tick(1))
        ref = await rt.spawn(Ticker, key="t")
        await trio.sleep(7)
        assert len(ref._cell.actor.seen) == 5  # type: ignore[attr-defined]
