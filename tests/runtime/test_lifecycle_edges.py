"""Edges of the actor lifecycle: self-stops, crashes of temporary actors, stale exits,
stops during restarts and starts, timers that outlive their actor, undecodable handler
types, failed binds and bounded shutdowns.

All run in virtual time (``autojump_clock``) under a deadline, so a hang fails instead
of blocking.
"""

from __future__ import annotations

import attrs
import pytest
import trio

from runtime import (
    OWN_EXCHANGE,
    Actor,
    Address,
    Backoff,
    CallTimeout,
    NoResponder,
    RackbusError,
    Restart,
    Runtime,
    Strategy,
    handler,
    message,
)
from runtime.cell import State

from .test_supervisor import Journal

EX = "on.lifecycle"
NO_JITTER = Backoff(initial=1.0, factor=1.0, maximum=1.0, jitter=0.0)


@message("LifecycleCrash")
@attrs.frozen
class Crash:
    why: str = "boom"


@message("LifecyclePing")
@attrs.frozen
class Ping:
    n: int = 0


@message("LifecycleTick")
@attrs.frozen
class Tick:
    n: int = 0


class Plain:
    """Not an attrs class: the codec has no way to build it from JSON."""

    def __init__(self, a: int) -> None:
        self.a = a


async def call_outcome(rt: Runtime, address: Address, request: object) -> str:
    """``"NoResponder"``, ``"CallTimeout"`` or ``"answered"``."""
    try:
        await rt.call(address, request, timeout=2)
    except NoResponder:
        return "NoResponder"
    except CallTimeout:
        return "CallTimeout"
    return "answered"


class Worker(Actor):
    """Records its lifecycle; crashes on ``crash.<key>``, answers ``hello.<key>``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.events.append(f"start {self.ctx.key}")

    async def on_stop(self) -> None:
        self.journal.events.append(f"stop {self.ctx.key}")

    @handler(EX, "crash.{key}")
    async def crash(self, request: Crash) -> None:
        raise RuntimeError(request.why)

    @handler(EX, "hello.{key}")
    async def hello(self, request: Ping) -> str:
        return self.ctx.key


async def test_actor_stopping_itself_through_its_ref_stops_after_the_message(
    autojump_clock,
) -> None:
    """A handler that stops its own actor with ``self.ctx.ref.stop()`` (the public
    ``ActorRef.stop``) cannot wait for its own task: the call returns at once and the
    actor stops once the handler is done, as with ``ctx.stop()``.
    """
    after_stop: list[str] = []

    class SelfStopper(Actor):
        @handler()
        async def quit(self, request: Ping) -> None:
            await self.ctx.ref.stop()
            after_stop.append("handler went on")

    with trio.fail_after(60):
        async with Runtime() as rt:
            ref = await rt.spawn(SelfStopper, key="selfstop", shutdown=1.0)
            await rt.tell(ref, Ping())
            await trio.sleep(1)
            assert not ref.alive
            assert rt.lookup("selfstop") is None
            assert await call_outcome(rt, Address(OWN_EXCHANGE, "selfstop"), Ping()) == (
                "NoResponder"
            )
    assert after_stop == ["handler went on"]


async def test_crashed_temporary_actor_releases_its_bindings(autojump_clock) -> None:
    """A TEMPORARY actor that crashes is dropped by its supervisor: its bindings must
    go with it, so a later call fails at once with ``NoResponder`` instead of being
    queued in a mailbox nobody will ever read (and timing out after 5 s).
    """
    journal = Journal()
    with trio.fail_after(60):
        async with Runtime() as rt:
            await rt.spawn(Worker, journal, key="tmp", restart=Restart.TEMPORARY)
            bindings_alive = rt.bus.statistics().bindings
            assert bindings_alive > 0
            await rt.publish(EX, "crash.tmp", Crash())
            await trio.sleep(1)
            assert rt.lookup("tmp") is None  # the registry forgot it ...
            leftover = rt.bus.statistics().bindings
            outcome = await call_outcome(rt, Address(EX, "hello.tmp"), Ping())
    assert (outcome, leftover) == ("NoResponder", 0)


async def test_one_for_all_ignores_the_exit_of_an_incarnation_it_already_replaced(
    autojump_clock,
) -> None:
    """ONE_FOR_ALL children a, b, c (c's ``on_stop`` takes 2 s). ``a`` crashes; while
    the supervisor is stopping the group, ``b`` crashes too. That exit belongs to an
    incarnation the group restart replaces anyway, so the group must be restarted
    once: every child started exactly once more, and ``b`` never started twice
    without a stop in between.
    """
    journal = Journal()

    class SlowStop(Worker):
        async def on_stop(self) -> None:
            await trio.sleep(2)
            await super().on_stop()

    with trio.fail_after(60):
        async with Runtime() as rt:
            sup = await rt.start_supervisor(
                "group", strategy=Strategy.ONE_FOR_ALL, intensity=10, period=60.0
            )
            for key, cls in (("a", Worker), ("b", Worker), ("c", SlowStop)):
                await rt.spawn(cls, journal, key=key, restart=Restart.PERMANENT, supervisor=sup)
            journal.events.clear()
            await rt.publish(EX, "crash.a", Crash())
            await trio.sleep(1)  # the supervisor is waiting for c's on_stop
            await rt.publish(EX, "crash.b", Crash())
            await trio.sleep(10)
            restarts = sup.statistics().restarts
            events = list(journal.events)
    assert [events.count(f"start {key}") for key in "abc"] == [1, 1, 1], events
    assert restarts == 1, events


async def test_stop_during_restart_backoff_is_final(autojump_clock) -> None:
    """``stop_actor`` on a crashed actor whose restart is pending must stop it for
    good: the supervisor must not start it again afterwards.
    """
    journal = Journal()
    with trio.fail_after(60):
        async with Runtime(backoff=NO_JITTER) as rt:
            ref = await rt.spawn(Worker, journal, key="z", restart=Restart.PERMANENT)
            await rt.publish(EX, "crash.z", Crash())
            await trio.sleep(0.5)  # crashed; the restart waits 1 s of backoff
            await ref.stop()
            assert rt.lookup("z") is None
            await trio.sleep(5)
            starts = journal.count("start z")
            bindings = rt.bus.statistics().bindings
            zombie_state = ref._cell.state
    assert starts == 1, "the terminated actor was started again"
    assert bindings == 0
    assert zombie_state is State.STOPPED


async def test_child_starting_while_its_supervisor_stops_is_not_left_bound(
    autojump_clock,
) -> None:
    """A spawn whose ``on_start`` is still running when its supervisor stops must
    either fail or be stopped with the supervisor; it must not end up RUNNING and
    bound on the bus with no supervisor and no registry entry.
    """
    journal = Journal()

    class SlowStart(Worker):
        async def on_start(self) -> None:
            await trio.sleep(2)
            await super().on_start()

    outcome: list[object] = []

    async def spawn_it(rt: Runtime, sup: object) -> None:
        try:
            outcome.append(await rt.spawn(SlowStart, journal, key="late", supervisor=sup))
        except Exception as exc:
            outcome.append(exc)

    with trio.fail_after(60):
        async with Runtime() as rt:
            sup = await rt.start_supervisor("nested")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(spawn_it, rt, sup)
                await trio.sleep(1)  # on_start is running
                await rt.root.terminate_child("nested")
            await trio.sleep(1)
            bindings = rt.bus.statistics().bindings
            registered = rt.lookup("late")
    assert registered is None
    assert bindings == 0, f"spawn gave {outcome!r} and left the actor bound"


async def test_timer_to_an_invalid_exchange_does_not_crash_the_runtime(autojump_clock) -> None:
    """``send_after`` with an invalid exchange name must either be refused at once
    (``ValueError``) or be dropped when it fires; it must not take the Runtime down.
    """
    with trio.fail_after(60):
        async with Runtime() as rt:
            try:
                rt.send_after(1, Address("not an exchange!", "k"), Tick())
            except ValueError:
                return  # refused up front: fine
            await trio.sleep(2)
            ref = await rt.spawn(Worker, Journal(), key="alive")
            assert await rt.call(Address(EX, "hello.alive"), Ping()) == ref.key


async def test_timers_of_a_stopped_actor_do_not_reach_a_new_actor_with_its_key(
    autojump_clock,
) -> None:
    """A timer an actor set for itself belongs to that actor: once it is stopped
    the timer is "a timer whose target is gone" and must be dropped, not delivered
    to a new actor later spawned under the same key (a re-created poller would
    otherwise tick twice as often, once for each generation).
    """
    ticks: list[tuple[int, float]] = []

    class Poller(Actor):
        def __init__(self, generation: int) -> None:
            self.generation = generation

        async def on_start(self) -> None:
            self.ctx.send_after(10.0, Tick(self.generation))

        @handler()
        async def tick(self, tick: Tick) -> None:
            ticks.append((tick.n, trio.current_time()))

    with trio.fail_after(60):
        async with Runtime() as rt:
            start = trio.current_time()
            ref = await rt.spawn(Poller, 1, key="poller")
            await trio.sleep(1)
            await ref.stop()
            await rt.spawn(Poller, 2, key="poller")
            await trio.sleep(15)
    assert [n for n, _ in ticks] == [2], [(n, at - start) for n, at in ticks]


async def test_undecodable_handler_type_does_not_crash_the_runtime(autojump_clock) -> None:
    """A handler annotated with a class the codec cannot build (a plain class, not
    attrs) is a bug of that actor: a JSON message for it must be refused (or crash
    that actor under its supervisor), never kill the Runtime and every other actor.
    """

    class Misdeclared(Actor):
        @handler(EX, "plain")
        async def take(self, request: Plain) -> str:
            return "ok"

    caught: list[BaseException] = []
    with trio.fail_after(60):
        async with Runtime() as rt:
            await rt.spawn(Misdeclared, key="mis")
            await rt.spawn(Worker, Journal(), key="bystander")
            try:
                await rt.call(Address(EX, "plain"), {"a": 1}, timeout=2)
            except Exception as exc:  # a RemoteError is fine
                caught.append(exc)
            await trio.sleep(1)
            assert await rt.call(Address(EX, "hello.bystander"), Ping()) == "bystander"


async def test_stop_requested_in_on_start_stops_the_actor(autojump_clock) -> None:
    """An actor that calls ``self.ctx.stop()`` in ``on_start`` (nothing to do) must
    stop: unregistered and unbound, so callers get ``NoResponder``.
    """

    class NothingToDo(Actor):
        async def on_start(self) -> None:
            self.ctx.stop()

        @handler(EX, "work.{key}")
        async def work(self, request: Ping) -> int:
            return request.n

    with trio.fail_after(60):
        async with Runtime() as rt:
            await rt.spawn(NothingToDo, key="idle")
            await trio.sleep(5)
            registered = rt.lookup("idle")
            outcome = await call_outcome(rt, Address(EX, "work.idle"), Ping(1))
    assert (registered, outcome) == (None, "NoResponder")


async def test_hanging_on_stop_after_self_stop_is_bounded_by_grace(autojump_clock) -> None:
    """``on_stop`` is given ``shutdown`` seconds when the actor is stopped from
    outside; after ``ctx.stop()`` it must get the same bound.
    """

    class Stuck(Actor):
        async def on_stop(self) -> None:
            await trio.sleep_forever()

        @handler()
        async def quit(self, request: Ping) -> None:
            self.ctx.stop()

    with trio.fail_after(120):
        async with Runtime() as rt:
            ref = await rt.spawn(Stuck, key="stuck", shutdown=1.0)
            await rt.tell(ref, Ping())
            await trio.sleep(30)  # 30 grace periods
            registered = rt.lookup("stuck")
            state = ref._cell.state
    assert registered is None, f"still registered in state {state}"


async def test_failed_bind_at_start_leaves_no_binding_behind(autojump_clock) -> None:
    """When binding fails part-way through a start (here a 200-character key, which
    ``spawn`` accepts, makes the second pattern longer than 255 bytes), the spawn
    fails and must leave nothing behind: no registry entry and no binding.
    """
    long_prefix = "p" * 60

    class TwoRoutes(Actor):
        @handler()
        async def ping(self, request: Ping) -> int:
            return request.n

        @handler(EX, long_prefix + ".{key}")
        async def other(self, request: Tick) -> None:
            pass

    key = "k" * 200
    with trio.fail_after(60):
        async with Runtime() as rt:
            with pytest.raises(RackbusError):  # InvalidRoutingKey or ActorStartError
                await rt.spawn(TwoRoutes, key=key)
            assert rt.lookup(key) is None
            leftover = rt.bus.statistics().bindings
            outcome = await call_outcome(rt, Address(OWN_EXCHANGE, key), Ping(1))
    assert (leftover, outcome) == (0, "NoResponder")


class StuckOnStop(Actor):
    """An ``on_stop`` that never returns (a hook waiting on a dead peer)."""

    async def on_stop(self) -> None:
        await trio.sleep_forever()


async def test_clean_shutdown_is_bounded_by_shutdown_timeout(autojump_clock) -> None:
    """Leaving ``async with Runtime(shutdown_timeout=3)`` normally stops every actor
    "all within ``shutdown_timeout``" (module docstring of ``runtime.py``): with five
    actors whose ``on_stop`` hangs (2 s grace each) it must end, without an error,
    in about 3 s.
    """
    raised: list[BaseException] = []
    with trio.fail_after(120):
        leaving = 0.0
        try:
            async with Runtime(shutdown_timeout=3.0) as rt:
                for n in range(5):
                    await rt.spawn(StuckOnStop, key=f"stuck{n}", shutdown=2.0)
                leaving = trio.current_time()
        except Exception as exc:
            raised.append(exc)
        took = trio.current_time() - leaving
    assert (raised, took <= 3.5) == ([], True), f"took {took:g} s, raised {raised!r}"


async def test_leaving_by_an_error_cancels_actors_at_once(autojump_clock) -> None:
    """Leaving ``async with Runtime()`` by an exception "cancels them at once"
    (module docstring of ``runtime.py``): actors whose ``on_stop`` hangs must not
    hold the error up for a grace period each (here 5 x 2 s).
    """

    class Boom(Exception):
        pass

    with trio.fail_after(120):
        leaving = 0.0
        with pytest.raises(Boom):
            async with Runtime() as rt:
                for n in range(5):
                    await rt.spawn(StuckOnStop, key=f"stuck{n}", shutdown=2.0)
                leaving = trio.current_time()
                raise Boom
        took = trio.current_time() - leaving
    assert took < 1.0, f"leaving by an error took {took:g} s"
