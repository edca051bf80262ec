"""AmqpBus against plain asyncio + aiormq, on the same broker and in the same run.

Baselines are plain-asyncio aiormq code run with ``asyncio.run`` in this
process, never at the same time as the Trio part: publish with publisher
confirms (persistent, mandatory, to a durable queue) and then consume and
ack, and an RPC client on direct reply-to whose server runs in a separate
process. rackbus does the same work through ``Runtime(AmqpBus(...))``:
publishes from concurrent Trio tasks to an actor that holds deliveries back
until every publish has returned (so both sides publish, then consume), and
``Runtime.call`` to an actor in a separate process. The RPC clients take turns
in rounds. Exchange and queue names are unique to the run and deleted at the
end. The broker URL comes from ``RACKBUS_AMQP_URL`` (default: the local
broker). Run with ``python -m benchmarks.bench_amqp [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiormq
import attrs
import orjson
import trio
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from runtime import Actor, Address, Runtime, handler, message
from runtime.amqp_bus import AmqpBus
from runtime.amqp_url import AmqpAddress

EVENTS_KEY = "events.bench"
ECHO_KEY = "methods.echo"
REPLY_TO = "amq.rabbitmq.reply-to"
JSON = "application/json"
PREFETCH = 1024
CALL_TIMEOUT = 10.0
WARMUP_CALLS = 50
RPC_ROUNDS = 4
"""The RPC calls are made in rounds, the asyncio and the rackbus client taking turns: round-trip
times on a small VM swing with the load on the machine, so both should see the same load.
Each figure is total calls / total time over the rounds."""
QUEUE_EXPIRES_MS = 120_000
"""Queues left behind by a crash disappear on their own after this long."""
SERVER_LIFETIME = 900.0
"""A server process stops by itself after this many seconds, whatever happens."""
ROOT = Path(__file__).resolve().parent.parent

DETAIL = ("node discovery: task graph running step " * 4)[:134]


@message("BenchAmqpEvent")
@attrs.frozen
class Event:
    """About 200 bytes of JSON on the wire."""

    n: int
    node: str
    kind: str
    detail: str


def make_event(i: int) -> Event:
    return Event(n=i, node=f"node-{i % 1000:04d}", kind="graph.progress", detail=DETAIL)


def event_data(i: int) -> dict[str, Any]:
    return {"n": i, "node": f"node-{i % 1000:04d}", "kind": "graph.progress", "detail": DETAIL}


@attrs.frozen
class Sizes:
    messages: int
    publishers: int
    sequential: int
    callers: int
    calls_each: int


def limit(count: int) -> float:
    """Seconds a phase of ``count`` operations may take before it counts as stuck."""
    return 60.0 + count / 250


@attrs.frozen
class Names:
    """Everything this run creates on the broker is named after ``run``."""

    run: str

    @property
    def asyncio_exchange(self) -> str:
        return f"bench-amqp.{self.run}.asyncio"

    @property
    def rackbus_exchange(self) -> str:
        return f"bench-amqp.{self.run}.rackbus"

    @property
    def events_queue(self) -> str:
        return f"bench-amqp.{self.run}.asyncio.events"

    @property
    def rpc_queue(self) -> str:
        return f"bench-amqp.{self.run}.asyncio.rpc"


@attrs.frozen
class Flow:
    """Seconds to publish every message, and then to consume and ack them all."""

    messages: int
    publish: float
    consume: float

    @property
    def publish_rate(self) -> float:
        return self.messages / self.publish

    @property
    def consume_rate(self) -> float:
        return self.messages / self.consume

    @property
    def end_to_end(self) -> float:
        return self.messages / (self.publish + self.consume)


@attrs.frozen
class Calls:
    """``callers`` concurrent callers, each making ``each`` calls one after another."""

    callers: int
    each: int

    @property
    def total(self) -> int:
        return self.callers * self.each


def split(total: int, rounds: int) -> list[int]:
    """``total`` in ``rounds`` nearly equal parts."""
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


def report(name: str, value: float, unit: str) -> None:
    print(f"  {name:<46} {value:>14,.1f} {unit}")


def info(name: str, value: float) -> None:
    print(f"  {name:<46} {value:>14.2f} x")


def ratio(name: str, value: float, op: str, target: float) -> None:
    ok = value >= target if op == ">=" else value <= target
    print(f"ratio {name} = {value:.2f} (target {op} {target}){'' if ok else '  MISSED'}")


# -- baselines: plain asyncio + aiormq --------------------------------------------


async def asyncio_publish_consume(url: str, names: Names, sizes: Sizes) -> Flow:
    """Publish with confirms in batches of concurrent publishes, then consume and ack."""
    n, batch = sizes.messages, sizes.publishers
    connection = await asyncio.wait_for(aiormq.connect(url), 10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange, queue = names.asyncio_exchange, names.events_queue
        await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(queue, durable=True, arguments={"x-expires": QUEUE_EXPIRES_MS})
        await channel.queue_bind(queue, exchange, routing_key=EVENTS_KEY)

        async def publish(i: int) -> None:
            confirm = await channel.basic_publish(
                orjson.dumps(event_data(i)),
                exchange=exchange,
                routing_key=EVENTS_KEY,
                properties=Basic.Properties(
                    content_type=JSON, message_type="BenchAmqpEvent", delivery_mode=2
                ),
                mandatory=True,
            )
            if not isinstance(confirm, Basic.Ack):
                raise RuntimeError(f"publish {i} not confirmed: {confirm!r}")

        start = time.perf_counter()
        async with asyncio.timeout(limit(n)):
            for first in range(0, n, batch):
                await asyncio.gather(*(publish(i) for i in range(first, min(n, first + batch))))
        published = time.perf_counter() - start

        done = asyncio.Event()
        count = 0

        async def on_message(delivered: DeliveredMessage) -> None:
            nonlocal count
            orjson.loads(delivered.body)
            await channel.basic_ack(delivered.delivery_tag)  # type: ignore[arg-type]
            count += 1
            if count == n:
                done.set()

        await channel.basic_qos(prefetch_count=PREFETCH)
        start = time.perf_counter()
        consuming = await channel.basic_consume(queue, on_message, no_ack=False)
        async with asyncio.timeout(limit(n)):
            await done.wait()
        consumed = time.perf_counter() - start
        await channel.basic_cancel(str(consuming.consumer_tag))
        await channel.queue_delete(queue)
    finally:
        await asyncio.wait_for(connection.close(), 10)
    return Flow(n, published, consumed)


async def asyncio_rpc(url: str, names: Names, calls: Calls) -> float:
    """Seconds for ``calls`` on direct reply-to, with publisher confirms, as AmqpBus makes them."""
    connection = await asyncio.wait_for(aiormq.connect(url), 10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[Any]] = {}

        async def on_reply(delivered: DeliveredMessage) -> None:
            future = waiting.get(delivered.header.properties.correlation_id or "")
            if future is not None and not future.done():
                future.set_result(orjson.loads(delivered.body))

        await channel.basic_consume(REPLY_TO, on_reply, no_ack=True)

        async def call(i: int) -> None:
            correlation_id = uuid.uuid4().hex
            future = waiting[correlation_id] = loop.create_future()
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    await channel.basic_publish(
                        orjson.dumps(event_data(i)),
                        exchange=names.asyncio_exchange,
                        routing_key=ECHO_KEY,
                        properties=Basic.Properties(
                            content_type=JSON,
                            message_type="BenchAmqpEvent",
                            delivery_mode=1,
                            reply_to=REPLY_TO,
                            correlation_id=correlation_id,
                        ),
                        mandatory=True,
                    )
                    reply = await future
            finally:
                del waiting[correlation_id]
            if reply["value"]["n"] != i:
                raise RuntimeError(f"call {i} got the reply to {reply['value']['n']}")

        async def caller(first: int, count: int) -> None:
            for i in range(first, first + count):
                await call(i)

        async with asyncio.timeout(limit(WARMUP_CALLS)):
            await caller(0, WARMUP_CALLS)
        start = time.perf_counter()
        async with asyncio.timeout(limit(calls.total)):
            await asyncio.gather(
                *(caller(c * calls.each, calls.each) for c in range(calls.callers))
            )
        return time.perf_counter() - start
    finally:
        await asyncio.wait_for(connection.close(), 10)


async def asyncio_server(url: str, exchange: str, queue: str) -> None:
    """Answer calls on ``queue`` (bound to ``exchange``) until stdin closes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    connection = await asyncio.wait_for(aiormq.connect(url), 10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.basic_qos(prefetch_count=PREFETCH)
        await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(queue, durable=True, arguments={"x-expires": QUEUE_EXPIRES_MS})
        await channel.queue_bind(queue, exchange, routing_key=ECHO_KEY)

        async def on_request(delivered: DeliveredMessage) -> None:
            props = delivered.header.properties
            request = orjson.loads(delivered.body)
            if props.reply_to:
                await channel.basic_publish(
                    orjson.dumps({"value": request}),
                    exchange="",
                    routing_key=props.reply_to,
                    properties=Basic.Properties(
                        content_type=JSON,
                        message_type="Result",
                        correlation_id=props.correlation_id,
                    ),
                )
            await channel.basic_ack(delivered.delivery_tag)  # type: ignore[arg-type]

        consuming = await channel.basic_consume(queue, on_request, no_ack=False)
        watch_stdin(lambda: loop.call_soon_threadsafe(stop.set))
        announce(queue)
        try:
            async with asyncio.timeout(SERVER_LIFETIME):
                await stop.wait()
        finally:
            await asyncio.wait_for(channel.basic_cancel(str(consuming.consumer_tag)), 10)
            await asyncio.wait_for(channel.queue_delete(queue), 10)
    finally:
        await asyncio.wait_for(connection.close(), 10)


# -- rackbus ------------------------------------------------------------------------


class Sink(Actor):
    """Counts events; holds them back until ``gate`` is set."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = -1
        self.gate = trio.Event()
        self.done = trio.Event()


def sink_on(exchange: str) -> type[Sink]:
    class BoundSink(Sink):
        @handler(exchange, EVENTS_KEY)
        async def on_event(self, event: Event) -> None:
            if not self.gate.is_set():
                await self.gate.wait()
            self.count += 1
            if self.count == self.expected:
                self.done.set()

    return BoundSink


def echo_on(exchange: str) -> type[Actor]:
    class Echo(Actor):
        @handler(exchange, ECHO_KEY)
        async def echo(self, event: Event) -> Event:
            return event

    return Echo


def amqp_bus(url: str, name: str, queues: list[str]) -> AmqpBus:
    bus = AmqpBus(url, name=name)
    bus.codec.register(Event)
    queues.append(bus.queue)
    return bus


async def rackbus_publish_consume(url: str, names: Names, sizes: Sizes, queues: list[str]) -> Flow:
    """Publishes from concurrent tasks; the actor counts once every publish has returned."""
    n, tasks = sizes.messages, sizes.publishers
    exchange = names.rackbus_exchange
    async with Runtime(amqp_bus(url, f"bench-{names.run}", queues), name="bench-amqp") as rt:
        ref = await rt.spawn(sink_on(exchange), key="sink")  # binds, so declares the exchange
        sink = ref._cell.actor
        assert isinstance(sink, Sink)
        sink.expected = n

        async def publisher(first: int, count: int) -> None:
            for i in range(first, first + count):
                await rt.publish(exchange, EVENTS_KEY, make_event(i))

        each = n // tasks
        start = time.perf_counter()
        with trio.fail_after(limit(n)):
            async with trio.open_nursery() as nursery:
                for t in range(tasks):
                    count = each if t < tasks - 1 else n - each * (tasks - 1)
                    nursery.start_soon(publisher, t * each, count)
        published = time.perf_counter() - start

        start = time.perf_counter()
        sink.gate.set()
        with trio.fail_after(limit(n)):
            await sink.done.wait()
        consumed = time.perf_counter() - start
        unroutable = rt.bus.statistics().unroutable
        if unroutable:
            raise RuntimeError(f"{unroutable} messages were unroutable")
    return Flow(n, published, consumed)


async def rackbus_rpc(url: str, names: Names, calls: Calls, queues: list[str]) -> float:
    """Seconds for ``calls`` of ``Runtime.call`` to the echo actor of the server process."""
    bus = amqp_bus(url, f"bench-{names.run}-client", queues)
    async with Runtime(bus, name="bench-amqp-client") as rt:
        address = Address(names.rackbus_exchange, ECHO_KEY)

        async def caller(first: int, count: int) -> None:
            for i in range(first, first + count):
                reply = await rt.call(address, make_event(i), timeout=CALL_TIMEOUT, returns=Event)
                if reply.n != i:
                    raise RuntimeError(f"call {i} got the reply to {reply.n}")

        with trio.fail_after(limit(WARMUP_CALLS)):
            await caller(0, WARMUP_CALLS)
        start = time.perf_counter()
        with trio.fail_after(limit(calls.total)):
            async with trio.open_nursery() as nursery:
                for c in range(calls.callers):
                    nursery.start_soon(caller, c * calls.each, calls.each)
        return time.perf_counter() - start


async def rackbus_server(url: str, exchange: str, name: str) -> None:
    """Run the echo actor on ``exchange`` until stdin closes."""
    stop = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def on_eof() -> None:
        try:
            token.run_sync_soon(stop.set)
        except trio.RunFinishedError:
            pass

    queues: list[str] = []
    async with Runtime(amqp_bus(url, name, queues), name=name) as rt:
        await rt.spawn(echo_on(exchange), key="echo")
        watch_stdin(on_eof)
        announce(queues[0])
        with trio.move_on_after(SERVER_LIFETIME):
            await stop.wait()


# -- shared -------------------------------------------------------------------------


def watch_stdin(on_eof: Callable[[], object]) -> None:
    """Call ``on_eof()`` from a daemon thread once stdin is closed (or the parent died)."""

    def read() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        try:
            on_eof()
        except RuntimeError:  # the loop is gone already
            pass

    threading.Thread(target=read, name="bench-stdin", daemon=True).start()


def announce(queue: str) -> None:
    print(f"ready {queue}", flush=True)


@contextmanager
def server(kind: str, exchange: str, queue_or_name: str) -> Iterator[str]:
    """Run a server in a separate process; yields the name of its queue, stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_amqp", "--serve", kind, exchange, queue_or_name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = read_line(process.stdout.fileno(), timeout=30.0)
        if not line.startswith("ready "):
            raise RuntimeError(f"{kind} server said {line!r}")
        yield line.removeprefix("ready ")
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


def read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer from the server within {timeout} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 1024)
            if not chunk:
                raise RuntimeError("the server exited before it was ready")
            data += chunk
    return data.decode().strip()


async def clean_up(url: str, exchanges: list[str], queues: list[str]) -> None:
    """Delete what the run created; what is already gone is fine."""
    async with asyncio.timeout(30):
        connection = await aiormq.connect(url)
        try:
            for queue in queues:
                channel = await connection.channel()
                try:
                    await channel.queue_delete(queue)
                except aiormq.exceptions.AMQPError:
                    continue
                await channel.close()
            for exchange in exchanges:
                channel = await connection.channel()
                try:
                    await channel.exchange_delete(exchange)
                except aiormq.exceptions.AMQPError:
                    continue
                await channel.close()
        finally:
            await connection.close()


async def broker_reachable(url: str) -> bool:
    try:
        connection = await asyncio.wait_for(aiormq.connect(url), 5)
    except (OSError, aiormq.exceptions.AMQPError):  # TimeoutError is an OSError
        return False
    await asyncio.wait_for(connection.close(), 5)
    return True


# -- main -------------------------------------------------------------------------


def rpc_rounds(
    url: str, names: Names, rounds: list[Calls], queues: list[str]
) -> tuple[float, float]:
    """Calls per second of the asyncio and the rackbus client, taking turns round by round."""
    base = ours = 0.0
    for r, calls in enumerate(rounds):
        # alternate who goes first, so neither always follows the other
        for side in ("asyncio", "rackbus") if r % 2 == 0 else ("rackbus", "asyncio"):
            if side == "asyncio":
                base += asyncio.run(asyncio_rpc(url, names, calls))
            else:
                ours += trio.run(rackbus_rpc, url, names, calls, queues)
    total = sum(calls.total for calls in rounds)
    return total / base, total / ours


def bench(address: AmqpAddress, quick: bool) -> None:
    scale = 10 if quick else 1
    sizes = Sizes(
        messages=50_000 // scale,
        publishers=1_000,
        sequential=2_000 // scale,
        callers=32,
        calls_each=250 // scale,
    )
    url = str(address.url)
    names = Names(uuid.uuid4().hex[:10])
    queues = [names.events_queue, names.rpc_queue]
    size = len(orjson.dumps(event_data(sizes.messages - 1)))
    print(
        f"rackbus AMQP benchmarks against asyncio + aiormq on {address.safe} "
        f"({sizes.messages:,} messages of ~{size} bytes; RPC {sizes.sequential:,} sequential, "
        f"{sizes.callers} x {sizes.calls_each:,} concurrent)",
        flush=True,
    )
    try:
        base_flow = asyncio.run(asyncio_publish_consume(url, names, sizes))
        ours_flow = trio.run(rackbus_publish_consume, url, names, sizes, queues)
        report("asyncio: publish, confirms", base_flow.publish_rate, "msg/s")
        report("rackbus: publish, confirms", ours_flow.publish_rate, "msg/s")
        report("asyncio: consume + ack", base_flow.consume_rate, "msg/s")
        report("rackbus: consume + ack (actor)", ours_flow.consume_rate, "msg/s")
        report("asyncio: publish then consume, end to end", base_flow.end_to_end, "msg/s")
        report("rackbus: publish then consume, end to end", ours_flow.end_to_end, "msg/s")
        info("publish only, rackbus / asyncio", ours_flow.publish_rate / base_flow.publish_rate)
        info("consume only, rackbus / asyncio", ours_flow.consume_rate / base_flow.consume_rate)
        ratio(
            "amqp_publish_consume_confirms",
            ours_flow.end_to_end / base_flow.end_to_end,
            ">=",
            0.8,
        )

        with (
            server("asyncio", names.asyncio_exchange, names.rpc_queue),
            server("rackbus", names.rackbus_exchange, f"bench-{names.run}-server") as queue,
        ):
            queues.append(queue)
            sequential = [Calls(1, count) for count in split(sizes.sequential, RPC_ROUNDS)]
            concurrent = [
                Calls(sizes.callers, each) for each in split(sizes.calls_each, RPC_ROUNDS)
            ]
            base_seq, ours_seq = rpc_rounds(url, names, sequential, queues)
            base_conc, ours_conc = rpc_rounds(url, names, concurrent, queues)
        report("asyncio: RPC, sequential", base_seq, "calls/s")
        report("rackbus: RPC, sequential", ours_seq, "calls/s")
        ratio("amqp_rpc_sequential", ours_seq / base_seq, ">=", 0.8)
        report(f"asyncio: RPC, {sizes.callers} concurrent callers", base_conc, "calls/s")
        report(f"rackbus: RPC, {sizes.callers} concurrent callers", ours_conc, "calls/s")
        ratio(f"amqp_rpc_concurrent_{sizes.callers}", ours_conc / base_conc, ">=", 0.8)
    finally:
        exchanges = [names.asyncio_exchange, names.rackbus_exchange]
        try:
            asyncio.run(clean_up(url, exchanges, queues))
        except Exception as exc:
            print(f"clean-up failed ({exc!r}): {exchanges + queues} may be left", file=sys.stderr)


def serve(kind: str, exchange: str, queue_or_name: str) -> None:
    url = str(AmqpAddress.resolve().url)
    if kind == "asyncio":
        asyncio.run(asyncio_server(url, exchange, queue_or_name))
    else:
        trio.run(rackbus_server, url, exchange, queue_or_name)


def main(*, skip_without_broker: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x smaller sizes, for a smoke run")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    address = AmqpAddress.resolve()
    if skip_without_broker and not asyncio.run(broker_reachable(str(address.url))):
        print(f"rackbus AMQP benchmarks skipped: no broker at {address.safe}")
        return
    # a run stopped by SIGTERM (say, by `timeout`) still deletes what it created
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bench(address, args.quick)


if __name__ == "__main__":
    main()
