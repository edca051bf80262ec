"""Mailboxes: backpressure, overflow policies, the control lane, per-sender order, memory."""

from __future__ import annotations

import contextlib
import resource

import attrs
import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    Address,
    Mailbox,
    MailboxClosed,
    MailboxFull,
    Overflow,
    PublishTimeout,
    Runtime,
    handler,
    message,
)

EX = "on.test"


@message("Tick")
@attrs.frozen
class Tick:
    sender: int
    n: int


@message("Stop")
@attrs.frozen
class StopRequest:
    pass


def make_slow(capacity: int, overflow: Overflow = Overflow.BLOCK) -> type[Actor]:
    class Slow(Actor):
        mailbox_size = capacity

        def __init__(self) -> None:
            self.seen: list[Tick] = []
            self.control: list[int] = []
            self.max_depth = 0

        @handler(EX, "tick")
        async def tick(self, tick: Tick) -> None:
            self.seen.append(tick)
            self.max_depth = max(self.max_depth, self.ctx.ref.statistics().mailbox_depth)
            await trio.sleep(0.01)

        @handler(EX, "stop", control=True)
        async def stop(self, request: StopRequest) -> None:
            self.control.append(len(self.seen))

    Slow.overflow = overflow
    return Slow


async def test_full_mailbox_makes_the_sender_wait(autojump_clock) -> None:
    async with Runtime() as rt:
        await rt.spawn(make_slow(4), key="slow")
        start = trio.current_time()
        for n in range(20):
            await rt.publish(EX, "tick", Tick(0, n))
        # 20 messages through a 4-deep mailbox at 10 ms each: the sender was held back
        assert trio.current_time() - start >= 0.15
        assert rt.statistics().mailbox_depth_max <= 4


async def test_publish_deadline_on_a_full_mailbox(autojump_clock) -> None:
    async with Runtime() as rt:
        await rt.spawn(make_slow(1), key="slow")
        with pytest.raises(PublishTimeout) as caught:
            for n in range(10):
                await rt.publish(EX, "tick", Tick(0, n), timeout=0.001)
        assert caught.value.routing_key == "tick"


async def test_per_sender_fifo_under_backpressure(autojump_clock) -> None:
    seen: list[Tick] = []

    class Recorder(Actor):
        mailbox_size = 3

        @handler(EX, "tick")
        async def tick(self, tick: Tick) -> None:
            seen.append(tick)
            await trio.sleep(0.001)

    async with Runtime() as rt:
        await rt.spawn(Recorder, key="r")

        async def sender(i: int) -> None:
            for n in range(50):
                await rt.publish(EX, "tick", Tick(i, n))

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(sender, i)
        await trio.sleep(1)
    assert len(seen) == 250
    for i in range(5):
        assert [t.n for t in seen if t.sender == i] == list(range(50))


async def test_reject_policy_raises_mailbox_full(autojump_clock) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(make_slow(2, Overflow.REJECT), key="slow")
        with pytest.raises(MailboxFull) as caught:
            for n in range(10):
                await rt.publish(EX, "tick", Tick(0, n))
        assert caught.value.capacity == 2
        assert ref.statistics().rejected == 1


async def test_drop_oldest_policy_keeps_the_newest(autojump_clock) -> None:
    class Telemetry(Actor):
        mailbox_size = 3
        overflow = Overflow.DROP_OLDEST

        def __init__(self) -> None:
            self.seen: list[int] = []

        @handler(EX, "tick")
        async def tick(self, tick: Tick) -> None:
            await trio.sleep(1)
            self.seen.append(tick.n)

        @handler()
        async def read(self, request: StopRequest) -> list[int]:
            return self.seen

    async with Runtime() as rt:
        ref = await rt.spawn(Telemetry, key="t")
        for n in range(10):
            await rt.publish(EX, "tick", Tick(0, n))
        await trio.sleep(10)
        seen = await rt.call(ref, StopRequest())
        assert seen[-3:] == [7, 8, 9]
        assert len(seen) < 10
        assert ref.statistics().dropped == 10 - len(seen)


@pytest.mark.parametrize("overflow", list(Overflow))
async def test_control_messages_are_never_dropped_and_jump_the_queue(
    autojump_clock, overflow: Overflow
) -> None:
    actor_type = make_slow(2, overflow)
    async with Runtime() as rt:
        ref = await rt.spawn(actor_type, key="slow")
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                for n in range(6):
                    with contextlib.suppress(MailboxFull):
                        await rt.publish(EX, "tick", Tick(0, n))

            nursery.start_soon(flood)
            await trio.sleep(0.001)
            for _ in range(5):
                await rt.publish(EX, "stop", StopRequest())
        await trio.sleep(1)
        actor = ref._cell.actor
        assert actor is not None
        assert len(actor.control) == 5  # type: ignore[attr-defined]
        # the stop requests were handled before the ordinary backlog ran out
        assert actor.control[0] < len(actor.seen)  # type: ignore[attr-defined]
        assert actor.control[-1] < 6  # type: ignore[attr-defined]


async def test_mailbox_close_releases_waiting_senders() -> None:
    box = Mailbox("m", 1, Overflow.BLOCK, lambda: None)
    await box.put("first")
    async with trio.open_nursery() as nursery:

        async def blocked() -> None:
            with pytest.raises(MailboxClosed):
                await box.put("second")

        nursery.start_soon(blocked)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    with pytest.raises(MailboxClosed):
        await box.put("third")


async def test_mailbox_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox("m", 0, Overflow.BLOCK, lambda: None)


async def test_stopping_an_actor_answers_its_queued_calls(autojump_clock) -> None:
    class Stuck(Actor):
        @handler(EX, "work")
        async def work(self, tick: Tick) -> None:
            await trio.sleep_forever()

    async with Runtime() as rt:
        ref = await rt.spawn(Stuck, key="s", shutdown=1.0)
        errors: list[str] = []

        async def caller() -> None:
            try:
                await rt.call(Address(EX, "work"), Tick(0, 0), timeout=30)
            except Exception as exc:
                errors.append(type(exc).__name__ + ":" + getattr(exc, "name", ""))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(caller)
            await trio.sleep(0.1)
            await ref.stop()
        # the one in progress was cancelled and the queued ones refused: none hung for 30 s
        assert trio.current_time() < 5
        assert errors == ["RemoteError:ActorStopped"] * 3


@pytest.mark.slow
async def test_a_flood_of_a_million_tells_keeps_memory_bounded(autojump_clock) -> None:
    class Slow(Actor):
        mailbox_size = 128

        def __init__(self) -> None:
            self.count = 0

        @handler(EX, "flood")
        async def flood(self, tick: Tick) -> None:
            self.count += 1
            if self.count % 1000 == 0:
                await trio.sleep(0.001)  # a slow consumer, in virtual time

    total = 1_000_000
    async with Runtime() as rt:
        ref = await rt.spawn(Slow, key="slow")
        message = Tick(0, 0)
        for _ in range(20_000):
            await rt.publish(EX, "flood", message)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        depth_max = 0
        for n in range(total - 20_000):
            await rt.publish(EX, "flood", message)
            if n % 10_000 == 0:
                depth_max = max(depth_max, ref.statistics().mailbox_depth)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await trio.sleep(1)
        assert ref._cell.actor.count == total  # type: ignore[union-attr]
    assert depth_max <= 128
    # an unbounded queue of a million messages would need well over 50 MB
    assert rss_after - rss_before < 20 * 1024  # ru_maxrss is in KiB
