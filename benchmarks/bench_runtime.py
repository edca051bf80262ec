"""Runtime hot paths against raw Trio, measured in the same process.

Baselines are plain Trio: two tasks handing messages over a memory channel,
and idle tasks each waiting on its own channel. Run with
``python -m benchmarks.bench_runtime [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
import trio.testing

from runtime import Actor, Address, Runtime, handler, message

EX = "bench"


@message("BenchPing")
@attrs.frozen
class Ping:
    n: int


class Counter(Actor):
    """Counts what it gets; answers calls with the number."""

    mailbox_size = 256

    def __init__(self) -> None:
        self.count = 0
        self.done = trio.Event()
        self.expected = -1

    @handler(EX, "node.{key}")
    async def tick(self, ping: Ping) -> int:
        self.count += 1
        if self.count == self.expected:
            self.done.set()
        return ping.n


class Idle(Actor):
    """What a node actor looks like before anything happens to it."""

    @handler(EX, "node.{key}")
    async def tick(self, ping: Ping) -> None:
        pass


def report(name: str, value: float, unit: str) -> None:
    print(f"  {name:<46} {value:>14,.1f} {unit}")


def ratio(name: str, value: float, op: str, target: float) -> None:
    ok = value >= target if op == ">=" else value <= target
    print(f"ratio {name} = {value:.2f} (target {op} {target}){'' if ok else '  MISSED'}")


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# -- baselines ------------------------------------------------------------------


async def raw_handoff(n: int) -> float:
    """Messages per second from one task to another over an unbuffered memory channel."""
    send, receive = trio.open_memory_channel[Any](0)

    async def consume() -> None:
        async for _ in receive:
            pass

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send:
                item = Ping(0)
                for _ in range(n):
                    await send.send(item)

    return n / await timed(run)


async def raw_round_trip(n: int) -> float:
    """Request/reply pairs per second over two unbuffered memory channels."""
    req_send, req_receive = trio.open_memory_channel[Any](0)
    rep_send, rep_receive = trio.open_memory_channel[Any](0)

    async def serve() -> None:
        async with rep_send:
            async for item in req_receive:
                await rep_send.send(item)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            async with req_send:
                item = Ping(0)
                for _ in range(n):
                    await req_send.send(item)
                    await rep_receive.receive()

    return n / await timed(run)


async def raw_idle_tasks(n: int, measure_memory: bool) -> float:
    """Seconds to spawn n idle tasks on their own channels (or bytes each, with measure_memory)."""
    sends: list[Any] = []

    async def idle(receive: Any) -> None:
        async for _ in receive:
            pass

    async with trio.open_nursery() as nursery:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0] if measure_memory else 0
        start = time.perf_counter()
        for _ in range(n):
            send, receive = trio.open_memory_channel[Any](16)
            sends.append(send)
            nursery.start_soon(idle, receive)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        used = tracemalloc.get_traced_memory()[0] - before if measure_memory else 0
        nursery.cancel_scope.cancel()
    return used / n if measure_memory else elapsed


# -- rackbus ----------------------------------------------------------------------


async def flood(rt: Runtime, key: str, n: int) -> float:
    """Seconds to publish n messages to a new ``Counter`` under ``key`` until it handled them."""
    ref = await rt.spawn(Counter, key=key)
    actor = ref._cell.actor
    assert isinstance(actor, Counter)
    actor.expected = n
    item = Ping(0)

    async def run() -> None:
        for _ in range(n):
            await rt.publish(EX, f"node.{key}", item)
        await actor.done.wait()

    return await timed(run)


async def rackbus_tell(n: int) -> float:
    """Messages per second through publish -> routing -> mailbox -> handler."""
    async with Runtime() as rt:
        return n / await flood(rt, "c", n)


async def rackbus_call(n: int) -> float:
    """Calls per second to one actor."""
    async with Runtime() as rt:
        await rt.spawn(Counter, key="c")
        address = Address(EX, "node.c")
        item = Ping(1)

        async def run() -> None:
            for _ in range(n):
                await rt.call(address, item)

        return n / await timed(run)


async def rackbus_idle_actors(n: int, measure_memory: bool) -> float:
    """Seconds to spawn n idle actors, each bound to its own key (or bytes each)."""
    async with Runtime() as rt:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0] if measure_memory else 0
        start = time.perf_counter()
        for i in range(n):
            await rt.spawn(Idle, key=f"n{i}")
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        used = tracemalloc.get_traced_memory()[0] - before if measure_memory else 0
        assert rt.statistics().active_actors == 0
        # they are really bound: one of them answers
        await rt.publish(EX, f"node.n{n // 2}", Ping(0))
    return used / n if measure_memory else elapsed


async def publish_cost(n: int, exact: int, wildcard: int) -> float:
    """Seconds per publish to one actor while `exact` + `wildcard` other bindings exist."""
    async with Runtime() as rt:
        for i in range(exact):
            await rt.spawn(Idle, key=f"n{i}")
        for i in range(wildcard):
            # patterns that share words with the target key, so the trie is really walked
            pattern = f"node.*.alert{i}" if i % 2 else f"#.w{i}"
            await rt.bus.bind(EX, pattern, _Sink())
        return await flood(rt, "target", n) / n


class _Sink:
    async def deliver(self, delivery: Any, deadline: float) -> None:
        raise AssertionError("no wildcard binding should match the benchmark key")


# -- main -------------------------------------------------------------------------


async def bench(quick: bool) -> None:
    n = 20_000 if quick else 200_000
    actors = 10_000 if quick else 100_000
    print(f"rackbus runtime benchmarks ({n:,} messages, {actors:,} actors)")

    base_tell = await raw_handoff(n)
    ours_tell = await rackbus_tell(n)
    report("raw memory-channel handoff", base_tell, "msg/s")
    report("tell: publish + routing + mailbox + handler", ours_tell, "msg/s")
    ratio("tell_vs_raw_handoff", ours_tell / base_tell, ">=", 0.5)

    base_rt = await raw_round_trip(n // 2)
    ours_call = await rackbus_call(n // 2)
    report("raw round trip (two handoffs)", base_rt, "pairs/s")
    report("call round trip", ours_call, "calls/s")
    ratio("call_vs_raw_round_trip", ours_call / base_rt, ">=", 0.4)

    base_spawn = await raw_idle_tasks(actors, measure_memory=False)
    ours_spawn = await rackbus_idle_actors(actors, measure_memory=False)
    report(f"spawn {actors:,} raw idle tasks + channels", base_spawn, "s")
    report(f"spawn {actors:,} idle actors, own exact key each", ours_spawn, "s")
    ratio("spawn_time_vs_raw_tasks", ours_spawn / base_spawn, "<=", 1.0)

    tracemalloc.start()
    try:
        base_mem = await raw_idle_tasks(actors, measure_memory=True)
        ours_mem = await rackbus_idle_actors(actors, measure_memory=True)
    finally:
        tracemalloc.stop()
    report("memory per raw idle task + channel", base_mem, "bytes")
    report("memory per idle actor", ours_mem, "bytes")
    ratio("idle_actor_memory_vs_raw_task", ours_mem / base_mem, "<=", 1.0)

    few = await publish_cost(n // 2, exact=9, wildcard=0)
    many = await publish_cost(n // 2, exact=actors, wildcard=1_000)
    report("publish cost, 10 bindings", few * 1e6, "us")
    report(f"publish cost, {actors:,} exact + 1,000 wildcard", many * 1e6, "us")
    ratio("publish_cost_many_vs_few_bindings", many / few, "<=", 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    trio.run(bench, args.quick)


if __name__ == "__main__":
    main()
