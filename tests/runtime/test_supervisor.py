"""Supervision with virtual time: strategies, restart types, intensity, escalation, shutdown."""

from __future__ import annotations

import random

import attrs
import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorStartError,
    Address,
    Backoff,
    Restart,
    RestartIntensityExceeded,
    Runtime,
    Strategy,
    Supervisor,
    TaskChild,
    handler,
    message,
)

EX = "on.test"


@message("Crash")
@attrs.frozen
class Crash:
    why: str = "boom"


@message("Quit")
@attrs.frozen
class Quit:
    pass


@message("Hello")
@attrs.frozen
class Hello:
    pass


class Journal:
    """What happened, in order, across every actor of a test."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def count(self, event: str) -> int:
        return self.events.count(event)


class Worker(Actor):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.events.append(f"start {self.ctx.key}")

    async def on_stop(self) -> None:
        self.journal.events.append(f"stop {self.ctx.key}")

    @handler(EX, "crash.{key}")
    async def crash(self, request: Crash) -> None:
        raise RuntimeError(request.why)

    @handler(EX, "quit.{key}")
    async def quit(self, request: Quit) -> None:
        self.ctx.stop()

    @handler(EX, "hello.{key}")
    async def hello(self, request: Hello) -> str:
        return self.ctx.key


async def spawn_workers(
    rt: Runtime, journal: Journal, sup: Supervisor, names: list[str], restart: Restart
) -> None:
    for name in names:
        await rt.spawn(Worker, journal, key=name, restart=restart, supervisor=sup)


async def crash(rt: Runtime, key: str) -> None:
    """Crash an actor and let the supervisor's (short) backoff pass in virtual time."""
    await rt.publish(EX, f"crash.{key}", Crash())
    await trio.sleep(1.0)


async def wait_until(predicate: object, timeout: float = 60.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.001)


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["b"]),
        (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
        (Strategy.REST_FOR_ONE, ["b", "c"]),
    ],
)
async def test_strategies_restart_the_right_children(
    autojump_clock, strategy: Strategy, restarted: list[str]
) -> None:
    journal = Journal()
    async with Runtime() as rt:
        sup = await rt.start_supervisor("workers", strategy=strategy, intensity=5)
        await spawn_workers(rt, journal, sup, ["a", "b", "c"], Restart.PERMANENT)
        journal.events.clear()
        await crash(rt, "b")
        for name in "abc":
            assert journal.count(f"start {name}") == (name in restarted)
        stats = rt.statistics()
        assert (stats.restarts, stats.crashes) == (len(restarted), 1)
        # siblings stop in reverse start order before restarting in start order
        stops = [e for e in journal.events if e.startswith("stop")]
        expected_stops = [f"stop {n}" for n in reversed(restarted) if n != "b"]
        assert stops == expected_stops
        starts = [e for e in journal.events if e.startswith("start")]
        assert starts == [f"start {n}" for n in restarted]
        for name in "abc":
            assert await rt.call(Address(EX, f"hello.{name}"), Hello()) == name


@pytest.mark.parametrize(
    ("restart", "after_crash", "after_normal_exit"),
    [
        (Restart.PERMANENT, True, True),
        (Restart.TRANSIENT, True, False),
        (Restart.TEMPORARY, False, False),
    ],
)
async def test_restart_types(
    autojump_clock, restart: Restart, after_crash: bool, after_normal_exit: bool
) -> None:
    journal = Journal()
    async with Runtime() as rt:
        sup = await rt.start_supervisor("workers", intensity=5)
        await spawn_workers(rt, journal, sup, ["x"], restart)
        await crash(rt, "x")
        assert journal.count("start x") == 1 + after_crash
        assert (rt.lookup("x") is not None) == after_crash
        assert sup.statistics().crashes == 1
        if not after_crash:
            return
        await rt.publish(EX, "quit.x", Quit())
        await trio.sleep(1.0)
        assert journal.count("start x") == 2 + after_normal_exit
        assert (rt.lookup("x") is not None) == after_normal_exit


async def test_mailbox_survives_a_restart(autojump_clock) -> None:
    journal = Journal()
    async with Runtime() as rt:
        await spawn_workers(rt, journal, rt.root, ["m"], Restart.PERMANENT)
        # queue a crash and three calls behind it: the calls are answered by the next incarnation
        async with trio.open_nursery() as nursery:
            await rt.publish(EX, "crash.m", Crash())
            results: list[str] = []

            async def ask() -> None:
                results.append(await rt.call(Address(EX, "hello.m"), Hello()))

            for _ in range(3):
                nursery.start_soon(ask)
        assert results == ["m", "m", "m"]
        assert journal.count("start m") == 2


async def test_intensity_exceeded_escalates_out_of_the_runtime(autojump_clock) -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Runtime(intensity=2, period=10.0) as rt:
            await spawn_workers(rt, journal, rt.root, ["w"], Restart.PERMANENT)
            for _ in range(3):
                await crash(rt, "w")
            await trio.sleep_forever()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert journal.count("start w") == 3


async def test_restarts_spread_over_time_stay_within_intensity(autojump_clock) -> None:
    journal = Journal()
    async with Runtime(intensity=2, period=10.0) as rt:
        await spawn_workers(rt, journal, rt.root, ["w"], Restart.PERMANENT)
        for _ in range(6):
            await crash(rt, "w")
            await trio.sleep(6.0)
        assert journal.count("start w") == 7


async def test_nested_supervisor_escalates_to_its_parent_which_restarts_it(autojump_clock) -> None:
    journal = Journal()
    async with Runtime(intensity=5) as rt:
        inner = await rt.start_supervisor("inner", intensity=1, period=10.0)
        await spawn_workers(rt, journal, inner, ["i"], Restart.PERMANENT)
        await crash(rt, "i")
        await crash(rt, "i")  # second restart in the window: inner gives up
        assert rt.root.statistics().restarts == 1
        assert rt.root.statistics().crashes == 1
        # the parent restarted the inner supervisor; its dynamic children went with it
        assert rt.lookup("i") is None
        assert inner.statistics().children == 0
        assert journal.count("start i") == 2  # the crashed incarnation gets no on_stop


async def test_backoff_delays_grow_and_jitter_stays_in_bounds() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, maximum=1.0, jitter=0.25)
    rng = random.Random(7)
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert base * 0.75 <= delay <= base * 1.25


async def test_restart_waits_for_the_backoff(autojump_clock) -> None:
    journal = Journal()
    backoff = Backoff(initial=1.0, factor=2.0, maximum=10.0, jitter=0.0)
    async with Runtime() as rt:
        sup = await rt.start_supervisor("slow", intensity=5, period=100.0, backoff=backoff)
        await spawn_workers(rt, journal, sup, ["s"], Restart.PERMANENT)
        for restarts, expected in enumerate((1.0, 2.0, 4.0), start=2):
            start = trio.current_time()
            await rt.publish(EX, "crash.s", Crash())
            await wait_until(lambda n=restarts: journal.count("start s") == n)
            assert trio.current_time() - start == pytest.approx(expected, abs=0.002)


async def test_shutdown_is_reverse_start_order(autojump_clock) -> None:
    journal = Journal()
    async with Runtime() as rt:
        await spawn_workers(rt, journal, rt.root, ["one", "two", "three"], Restart.PERMANENT)
    assert [e for e in journal.events if e.startswith("stop")] == [
        "stop three",
        "stop two",
        "stop one",
    ]


async def test_a_child_that_will_not_stop_is_cancelled_after_its_grace(autojump_clock) -> None:
    cancelled = trio.Event()

    async def stubborn() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async def ignores_stop_requests() -> None:
        pass  # a graceful stop that does nothing

    child = TaskChild("stubborn", stubborn, shutdown=3.0, graceful_stop=ignores_stop_requests)
    async with Runtime() as rt:
        await rt.root.start_child(child)
        start = trio.current_time()
        await rt.root.terminate_child("stubborn")
        assert trio.current_time() - start == pytest.approx(3.0)
        assert cancelled.is_set()


async def test_a_slow_handler_is_cancelled_after_the_grace_period(autojump_clock) -> None:
    cancelled = trio.Event()

    class Slow(Actor):
        @handler(EX, "slow")
        async def slow(self, request: Hello) -> None:
            try:
                await trio.sleep(100)
            finally:
                cancelled.set()

    async with Runtime() as rt:
        ref = await rt.spawn(Slow, key="slow", shutdown=2.0)
        await rt.publish(EX, "slow", Hello())
        await trio.sleep(1)
        start = trio.current_time()
        await ref.stop()
        assert trio.current_time() - start == pytest.approx(2.0)
        assert cancelled.is_set()
        assert rt.lookup("slow") is None


async def test_initial_child_failing_to_start_fails_the_supervisor(autojump_clock) -> None:
    async def fine() -> None:
        await trio.sleep_forever()

    class Boom:
        id = "boom"
        restart = Restart.PERMANENT
        shutdown = 1.0

        async def start(self, nursery: trio.Nursery, on_exit: object) -> None:
            raise OSError("cannot start")

        async def stop(self, *, final: bool) -> None:
            pass

        def removed(self) -> None:
            pass

    first = TaskChild("fine", fine)
    sup = Supervisor("boot", children=[first, Boom()])
    async with trio.open_nursery() as nursery:
        with pytest.raises(OSError, match="cannot start"):
            await nursery.start(sup.run)
    assert sup.statistics().children == 0


async def test_restart_that_fails_to_start_counts_toward_intensity(autojump_clock) -> None:
    attempts = 0

    class Flaky(Actor):
        async def on_start(self) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                raise OSError("still broken")

        @handler(EX, "crash.{key}")
        async def crash(self, request: Crash) -> None:
            raise RuntimeError("first crash")

    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Runtime(intensity=3, period=60.0) as rt:
            await rt.spawn(Flaky, key="f", restart=Restart.PERMANENT)
            await rt.publish(EX, "crash.f", Crash())
            await trio.sleep_forever()
    assert attempts == 4  # the first start, then three failed restarts
    assert isinstance(caught.value.__cause__, ActorStartError)


async def test_temporary_crash_is_counted_not_lost(autojump_clock, caplog) -> None:
    journal = Journal()
    async with Runtime() as rt:
        await spawn_workers(rt, journal, rt.root, ["t"], Restart.TEMPORARY)
        await crash(rt, "t")
        assert rt.lookup("t") is None
        assert rt.root.statistics().crashes == 1
    assert any("crashed" in record.getMessage() for record in caplog.records)


async def test_wait_started_child_raises_errors_before_it_started(autojump_clock) -> None:
    async def cannot_bind(*, task_status: trio.TaskStatus[None]) -> None:
        raise OSError("address in use")

    async with Runtime() as rt:
        with pytest.raises(OSError, match="address in use"):
            await rt.root.start_child(TaskChild("server", cannot_bind, wait_started=True))
        assert rt.root.get_child("server") is None


async def test_wait_started_child_is_up_when_start_returns_and_restarts_later(
    autojump_clock,
) -> None:
    runs: list[str] = []
    crash_now = trio.Event()

    async def server(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append("bound")
        task_status.started()
        await crash_now.wait()
        raise RuntimeError("socket broke")

    async with Runtime() as rt:
        await rt.root.start_child(TaskChild("server", server, wait_started=True))
        assert runs == ["bound"]
        crash_now.set()
        while len(runs) < 2:
            await trio.sleep(0.1)
        assert rt.root.statistics().crashes >= 1
        assert rt.root.get_child("server") is not None
