"""A real broker failing under load: nothing that was confirmed is lost, nothing hangs.

While 10,000 events are published with confirms, every connection is closed by
force and then the broker application is stopped and started again. Afterwards
every publish that returned successfully has been delivered at least once, the
consumer resumed by itself, and calls made during the outage failed with a
clear error instead of hanging.
"""

from __future__ import annotations

import uuid

import attrs
import trio

from runtime import (
    Actor,
    Address,
    BusUnavailable,
    CallTimeout,
    ConnectionLost,
    NoResponder,
    PublishBufferFull,
    Runtime,
    handler,
    message,
)
from runtime.amqp_bus import AmqpBus
from runtime.amqp_connection import AmqpConnection
from runtime.amqp_url import AmqpAddress
from runtime.supervisor import Backoff

EVENTS = 10_000
PUBLISHERS = 20
FAST_RECONNECT = Backoff(initial=0.05, factor=2.0, maximum=1.0, jitter=0.1)


@message("FailoverEvent")
@attrs.frozen
class Event:
    n: int


class Sink(Actor):
    mailbox_size = 512

    def __init__(self, seen: set[int]) -> None:
        self.seen = seen

    @handler("on.failover", "event.{key}")
    async def event(self, event: Event) -> None:
        self.seen.add(event.n)

    @handler("on.failover", "methods.ping.{key}")
    async def ping(self, event: Event) -> int:
        return event.n


async def rabbitmqctl(*args: str) -> None:
    done = await trio.run_process(["rabbitmqctl", *args], capture_stdout=True, capture_stderr=True)
    assert done.returncode == 0, done.stderr


async def test_confirmed_publishes_survive_connection_loss_and_a_broker_restart() -> None:
    key = uuid.uuid4().hex[:10]
    seen: set[int] = set()
    confirmed: set[int] = set()
    refused: list[str] = []
    call_outcomes: list[str] = []
    bus = AmqpBus(name=f"failover-{key}", publish_buffer=EVENTS)
    with trio.fail_after(240):
        async with Runtime(bus) as rt:
            await rt.spawn(Sink, seen, key=key)
            counter = iter(range(EVENTS))
            outage_over = trio.Event()

            async def publisher() -> None:
                for n in counter:
                    try:
                        await rt.publish("on.failover", f"event.{key}", Event(n), timeout=60)
                    except (BusUnavailable, PublishBufferFull) as exc:
                        refused.append(type(exc).__name__)
                    else:
                        confirmed.add(n)
                    await trio.sleep(0.001)

            async def caller() -> None:
                while not outage_over.is_set():
                    start = trio.current_time()
                    try:
                        await rt.call(
                            Address("on.failover", f"methods.ping.{key}"), Event(1), timeout=2
                        )
                        call_outcomes.append("ok")
                    except (BusUnavailable, ConnectionLost, CallTimeout, NoResponder) as exc:
                        call_outcomes.append(type(exc).__name__)
                    assert trio.current_time() - start < 3, "a call outlived its deadline"
                    await trio.sleep(0.05)

            async def chaos() -> None:
                while len(confirmed) < EVENTS // 5:
                    await trio.sleep(0.05)
                await rabbitmqctl("close_all_connections", "failover test")
                while len(confirmed) < EVENTS // 2:
                    await trio.sleep(0.05)
                await rabbitmqctl("stop_app")
                await trio.sleep(1)
                await rabbitmqctl("start_app")
                while not rt.bus.statistics().connected:  # type: ignore[attr-defined]
                    await trio.sleep(0.1)
                await trio.sleep(1)
                outage_over.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(chaos)
                nursery.start_soon(caller)
                for _ in range(PUBLISHERS):
                    nursery.start_soon(publisher)

            # every confirmed publish arrives (at least once), without any help
            with trio.fail_after(120):
                while not confirmed <= seen:
                    await trio.sleep(0.1)
            stats = rt.bus.statistics()
            # the consumer resumed by itself: a fresh event still arrives
            await rt.publish("on.failover", f"event.{key}", Event(EVENTS + 1))
            with trio.fail_after(30):
                while EVENTS + 1 not in seen:
                    await trio.sleep(0.05)
            after = await rt.call(Address("on.failover", f"methods.ping.{key}"), Event(7))

    assert stats.reconnects >= 2  # type: ignore[attr-defined]
    assert len(confirmed) + len(refused) == EVENTS
    assert len(confirmed) >= EVENTS // 2
    assert confirmed <= seen
    assert after == 7
    # calls were made while the broker was away, and they failed clearly
    assert "ok" in call_outcomes
    assert set(call_outcomes) - {"ok"}, call_outcomes


async def test_a_deleted_consumer_queue_is_declared_again(nursery: trio.Nursery) -> None:
    key = uuid.uuid4().hex[:10]
    seen: set[int] = set()
    bus = AmqpBus(name=f"requeue-{key}", persistent=False, reconnect=FAST_RECONNECT)
    with trio.fail_after(60):
        async with Runtime(bus) as rt:
            await rt.spawn(Sink, seen, key=key)
            await rt.publish("on.failover", f"event.{key}", Event(1))
            while 1 not in seen:
                await trio.sleep(0.01)
            other = await nursery.start(AmqpConnection(AmqpAddress.resolve()).run, 10.0)
            await other.queue_delete(bus.queue)  # the broker cancels the bus's consumer
            await other.aclose()
            while bus.statistics().reconnects < 1:
                await trio.sleep(0.01)
            await rt.publish("on.failover", f"event.{key}", Event(2))
            while 2 not in seen:
                await trio.sleep(0.01)
