"""Actors on a Runtime: handlers by key and type, registry, context, isolation, bad input."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from runtime import (
    OWN_EXCHANGE,
    Actor,
    ActorExists,
    ActorNotFound,
    ActorStartError,
    Address,
    Delivery,
    InvalidRoutingKey,
    NoResponder,
    RemoteError,
    Runtime,
    handler,
    message,
)
from runtime.testing import wait_for_handler

EX = "on.task"


@message("RunTask")
@attrs.frozen
class RunTask:
    graph: str
    retries: int = 0


@message("CancelTask")
@attrs.frozen
class CancelTask:
    reason: str


@message("Ping")
@attrs.frozen
class Ping:
    n: int


class Task(Actor):
    """Records what it handled; serves run/cancel on its own key and Ping on its own address."""

    def __init__(self) -> None:
        self.handled: list[object] = []

    @handler(EX, "run.{key}")
    async def run(self, request: RunTask) -> str:
        self.handled.append(request)
        return f"{self.ctx.key} ran {request.graph}"

    @handler(EX, "run.{key}")
    async def cancel_on_run_key(self, request: CancelTask) -> str:
        self.handled.append(request)
        return "cancelled"

    @handler()
    async def ping(self, ping: Ping, delivery: Delivery) -> int:
        self.handled.append(ping)
        assert delivery.exchange == OWN_EXCHANGE
        return ping.n + 1

    @handler(EX, "boom.{key}")
    async def boom(self, request: RunTask) -> None:
        raise RuntimeError(f"cannot run {request.graph}")


async def test_handlers_chosen_by_key_and_type(autojump_clock) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Task, key="t1")
        assert await rt.call(Address(EX, "run.t1"), RunTask("g1")) == "t1 ran g1"
        assert await rt.call(Address(EX, "run.t1"), CancelTask("x")) == "cancelled"
        assert await rt.call(ref, Ping(1)) == 2
        assert set(ref.bindings) == {
            Address(EX, "run.t1"),
            Address(EX, "boom.t1"),
            Address(OWN_EXCHANGE, "t1"),
        }


async def test_untyped_payload_is_structured_into_the_handler_type(autojump_clock) -> None:
    async with Runtime() as rt:
        await rt.spawn(Task, key="t1")
        reply = await rt.call(Address(EX, "run.t1"), {"graph": "g2", "retries": 1})
        assert reply == "t1 ran g2"


async def test_bad_payload_gets_an_error_naming_the_field_and_the_actor_lives(
    autojump_clock,
) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Task, key="t1")
        with pytest.raises(RemoteError) as caught:
            await rt.call(ref, {"n": "not-an-int"})
        assert caught.value.name == "DecodeError"
        assert caught.value.status == 400
        assert "n" in caught.value.message
        # one-way garbage is counted, not fatal
        await rt.tell(ref, {"n": []})
        assert await rt.call(ref, Ping(5)) == 6
        assert ref.statistics().rejected == 2
        assert ref.alive


async def test_handler_error_in_a_call_reaches_the_caller_and_the_actor_lives(
    autojump_clock,
) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Task, key="t1")
        with pytest.raises(RemoteError) as caught:
            await rt.call(Address(EX, "boom.t1"), RunTask("g9"))
        assert caught.value.name == "RuntimeError"
        assert caught.value.message == "cannot run g9"
        assert caught.value.context == {"exchange": EX, "routingKey": "boom.t1"}
        assert "RuntimeError" in caught.value.stack
        assert ref.statistics().restarts == 0
        assert await rt.call(ref, Ping(1)) == 2


async def test_publish_reaches_every_actor_bound_by_pattern(autojump_clock) -> None:
    class Watcher(Actor):
        def __init__(self) -> None:
            self.seen: list[str] = []

        @handler("on.events", "graph.finished.*")
        async def finished(self, event: dict, delivery: Delivery) -> None:  # type: ignore[type-arg]
            self.seen.append(delivery.routing_key)

    async with Runtime() as rt:
        watchers = [await rt.spawn(Watcher, key=f"w{i}") for i in range(3)]
        async with wait_for_handler(watchers[-1], "finished"):
            await rt.publish("on.events", "graph.finished.g1", {"status": "succeeded"})
        await trio.testing.wait_all_tasks_blocked()
        for ref in watchers:
            assert ref.statistics().messages_in == 1


async def test_registry_spawn_lookup_stop(autojump_clock) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Task, key="t1")
        assert rt.lookup("t1") == ref
        assert rt.lookup("nope") is None
        with pytest.raises(ActorExists):
            await rt.spawn(Task, key="t1")
        await ref.stop()
        assert rt.lookup("t1") is None
        assert not ref.alive
        with pytest.raises(NoResponder):
            await rt.call(Address(EX, "run.t1"), RunTask("g"))
        with pytest.raises(ActorNotFound):
            await rt.stop_actor("t1")
        # the key is free again
        await rt.spawn(Task, key="t1")


async def test_generated_keys_are_unique(autojump_clock) -> None:
    async with Runtime() as rt:
        refs = [await rt.spawn(Task) for _ in range(5)]
        assert len({ref.key for ref in refs}) == 5


@pytest.mark.parametrize("key", ["a.b", "*", "#", "", "x" * 300, "a.*.c"])
async def test_hostile_keys_cannot_widen_a_binding(autojump_clock, key: str) -> None:
    async with Runtime() as rt:
        with pytest.raises(InvalidRoutingKey):
            await rt.spawn(Task, key=key)
        assert len(rt.registry) == 0


async def test_start_failure_raises_and_registers_nothing(autojump_clock) -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise OSError("disk on fire")

    async with Runtime() as rt:
        with pytest.raises(ActorStartError, match="disk on fire") as caught:
            await rt.spawn(Broken, key="b")
        assert isinstance(caught.value.__cause__, OSError)
        assert rt.lookup("b") is None


async def test_lifecycle_hooks_run_in_order(autojump_clock) -> None:
    events: list[str] = []

    class Hooked(Actor):
        async def on_start(self) -> None:
            events.append(f"start {self.ctx.key}")

        async def on_stop(self) -> None:
            events.append(f"stop {self.ctx.key}")

        @handler()
        async def ping(self, ping: Ping) -> None:
            events.append(f"ping {ping.n}")

    async with Runtime() as rt:
        ref = await rt.spawn(Hooked, key="h")
        await rt.call(ref, Ping(1))
    assert events == ["start h", "ping 1", "stop h"]


async def test_context_can_spawn_call_publish_and_stop(autojump_clock) -> None:
    class Parent(Actor):
        @handler()
        async def go(self, ping: Ping) -> int:
            child = await self.ctx.spawn(Task, key=f"child{ping.n}")
            reply = await self.ctx.call(child, Ping(ping.n))
            await self.ctx.publish("on.events", "parent.done", {"reply": reply})
            await self.ctx.tell(Address(EX, f"run.child{ping.n}"), RunTask("told"))
            self.ctx.stop()
            return int(reply)

    async with Runtime() as rt:
        parent = await rt.spawn(Parent, key="p")
        assert await rt.call(parent, Ping(10)) == 11
        await trio.testing.wait_all_tasks_blocked()
        assert rt.lookup("p") is None  # transient actor stopped normally: removed
        child = rt.lookup("child10")
        assert child is not None
        assert child.statistics().messages_in == 2


async def test_two_runtimes_never_see_each_other(autojump_clock) -> None:
    async with Runtime() as a, Runtime() as b:
        await a.spawn(Task, key="t1")
        with pytest.raises(NoResponder):
            await b.call(Address(EX, "run.t1"), RunTask("g"))
        assert b.lookup("t1") is None
        await b.spawn(Task, key="t1")  # same key, other runtime: fine
        assert await b.call(Address(EX, "run.t1"), RunTask("g")) == "t1 ran g"


async def test_statistics(autojump_clock) -> None:
    async with Runtime() as rt:
        refs = [await rt.spawn(Task, key=f"t{i}") for i in range(3)]
        for ref in refs:
            await rt.call(ref, Ping(0))
        stats = rt.statistics()
        assert stats.actors == 3
        assert stats.messages_in == 3
        assert stats.messages_out == 3
        assert stats.mailbox_depth_total == 0
        assert stats.bus.calls == 3
        one = refs[0].statistics()
        assert (one.key, one.state, one.messages_in, one.mailbox_capacity) == (
            "t0",
            "running",
            1,
            64,
        )


async def test_idle_actor_tasks_retire_and_wake_again(autojump_clock) -> None:
    async with Runtime(idle_timeout=1.0) as rt:
        ref = await rt.spawn(Task, key="t1")
        assert rt.statistics().active_actors == 0  # no task until a message comes
        await rt.call(ref, Ping(1))
        assert rt.statistics().active_actors == 1
        await trio.sleep(3.0)
        assert rt.statistics().active_actors == 0
        assert await rt.call(ref, Ping(2)) == 3


async def test_handler_must_be_async() -> None:
    with pytest.raises(TypeError, match="async def"):

        class Bad(Actor):
            @handler()
            def sync(self, ping: Ping) -> None:  # type: ignore[type-var]
                pass


async def test_an_exception_status_travels_to_the_caller(autojump_clock) -> None:
    class Refusing(Actor):
        @handler()
        async def refuse(self, ping: Ping) -> None:
            error = ValueError("bad ping")
            error.status = 422  # type: ignore[attr-defined]
            raise error

    async with Runtime() as rt:
        ref = await rt.spawn(Refusing, key="r")
        with pytest.raises(RemoteError) as caught:
            await rt.call(ref, Ping(1))
        assert (caught.value.name, caught.value.status) == ("ValueError", 422)


@message("LaneWork")
@attrs.frozen
class LaneWork:
    n: int


@message("LaneStop")
@attrs.frozen
class LaneStop:
    pass


class TwoLanes(Actor):
    """Own-address handlers in both lanes: each message goes to its handler's lane only."""

    def __init__(self) -> None:
        self.log: list[str] = []

    @handler(control=True)
    async def stop_now(self, request: LaneStop) -> str:
        self.log.append("stop")
        return "stopping"

    @handler()
    async def work(self, request: LaneWork) -> int:
        self.log.append(f"work {request.n}")
        return request.n


async def test_control_and_ordinary_handlers_share_an_address_without_refusals(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(TwoLanes, key="lanes")
        assert await rt.call(ref, LaneWork(1)) == 1
        assert await rt.call(ref, LaneStop()) == "stopping"
        await rt.tell(ref, LaneWork(2))
        await trio.sleep(1)
        assert ref._cell.actor.log == ["work 1", "stop", "work 2"]  # type: ignore[attr-defined]
        assert ref._cell.rejected == 0
    assert "refused" not in caplog.text


class Lingering(Actor):
    """Takes its time to stop: ``on_stop`` sleeps for a minute."""

    async def on_stop(self) -> None:
        await trio.sleep(60)


async def test_a_slow_stop_is_reported_with_the_grace_it_had(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    async with Runtime(shutdown_timeout=30) as rt:
        await rt.spawn(Lingering, key="slow", shutdown=2.0)
    assert "actor slow did not stop within 2 s; cancelled" in caplog.text


async def test_leaving_on_an_error_cancels_actors_without_a_warning(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KeyError):
        async with Runtime() as rt:
            await rt.spawn(Lingering, key="slow", shutdown=5.0)
            raise KeyError("the service failed")
    assert "did not stop" not in caplog.text  # cancelled at once by design, not late
