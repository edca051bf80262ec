"""The Runtime as a whole: nothing outlives it, cancellation and Ctrl-C tear everything down."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing

from runtime import Actor, Address, Runtime, RuntimeClosed, handler, message

EX = "on.test"


@message("Work")
@attrs.frozen
class Work:
    n: int


class Busy(Actor):
    @handler(EX, "work.{key}")
    async def work(self, work: Work) -> int:
        await trio.sleep(0.5)
        return work.n


def all_tasks() -> set[trio.lowlevel.Task]:
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def test_no_task_survives_the_runtime(autojump_clock) -> None:
    before = all_tasks()
    async with Runtime(idle_timeout=100) as rt:
        sup = await rt.start_supervisor("nested")
        refs = [await rt.spawn(Busy, key=f"b{i}", supervisor=sup) for i in range(20)]
        for ref in refs:
            await rt.publish(EX, f"work.{ref.key}", Work(1))
        await trio.sleep(0.1)
        assert len(all_tasks()) > len(before) + 20
    assert all_tasks() == before


async def test_cancellation_tears_everything_down(autojump_clock) -> None:
    before = all_tasks()
    with trio.move_on_after(1.0) as scope:
        async with Runtime() as rt:
            for i in range(10):
                ref = await rt.spawn(Busy, key=f"b{i}")
                await rt.publish(EX, f"work.{ref.key}", Work(i))
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert all_tasks() == before


async def test_user_error_propagates_unchanged(autojump_clock) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with Runtime() as rt:
            await rt.spawn(Busy, key="b")
            raise KeyError("mine")


async def test_closed_runtime_refuses_work(autojump_clock) -> None:
    rt = Runtime()
    with pytest.raises(RuntimeClosed):
        await rt.spawn(Busy)
    async with rt:
        pass
    with pytest.raises(RuntimeClosed):
        await rt.spawn(Busy)
    with pytest.raises(RuntimeError, match="once"):
        async with rt:
            pass


async def test_calls_in_flight_fail_clearly_when_the_runtime_stops(autojump_clock) -> None:
    outcome: list[str] = []

    async def caller(rt: Runtime) -> None:
        try:
            await rt.call(Address(EX, "work.b"), Work(1), timeout=60)
        except Exception as exc:
            outcome.append(getattr(exc, "name", type(exc).__name__))

    async with trio.open_nursery() as nursery, Runtime() as rt:
        await rt.spawn(Busy, key="b", shutdown=0.1)
        for _ in range(3):
            nursery.start_soon(caller, rt)
        await trio.sleep(0.01)
    # the first finished its 0.5 s of work? no: the grace is 0.1 s, so all three were refused
    assert outcome == ["ActorStopped"] * 3
    assert trio.current_time() < 1


SCRIPT = textwrap.dedent(
    """
    import signal
    import trio
    from runtime import Actor, Runtime, handler

    # as at a terminal: a test run started in the background hands its children SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class Spin(Actor):
        @handler("on.test", "spin.{key}")
        async def spin(self, message: dict) -> None:
            while True:
                await trio.sleep(0.01)

    async def main():
        async with Runtime() as rt:
            for i in range(100):
                await rt.spawn(Spin, key=f"s{i}")
                await rt.publish("on.test", f"spin.s{i}", {})
            print("ready", flush=True)
            await trio.sleep_forever()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        print("interrupted cleanly", flush=True)
        raise SystemExit(3)
    """
)


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {**os.environ, "PYTHONPATH": root}


@contextlib.asynccontextmanager
async def reaped(proc: trio.Process, timeout: float) -> AsyncIterator[None]:
    """Fail after ``timeout``; a test that fails kills its child and waits for it, so that
    nothing is left running."""
    try:
        with trio.fail_after(timeout):
            yield
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await proc.wait()


async def test_ctrl_c_tears_down_a_busy_runtime() -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, env=_env()
    )
    assert proc.stdout is not None
    async with reaped(proc, 30):
        buffer = b""
        while b"ready" not in buffer:
            chunk = await proc.stdout.receive_some()
            assert chunk, "the script died before it was ready"
            buffer += chunk
        proc.send_signal(signal.SIGINT)
        code = await proc.wait()
        buffer += b"".join([chunk async for chunk in proc.stdout])
    assert code == 3
    assert b"interrupted cleanly" in buffer


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_rackbus_serve_stops_on_signal_and_exits_zero(signum: int, tmp_path) -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "actors.cli", "serve", "--state-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stderr is not None
    async with reaped(proc, 30):
        log = b""
        while b"ready" not in log:
            chunk = await proc.stderr.receive_some()
            assert chunk, f"rackbus serve died: {log.decode()}"
            log += chunk
        proc.send_signal(signum)
        code = await proc.wait()
        log += b"".join([chunk async for chunk in proc.stderr])
    text = log.decode()
    assert code == 0, text
    assert "started on the in-memory bus" in text
    assert "configuration service: settings in" in text
    assert "logging service: publishing on on.logging" in text
    assert (tmp_path / "config.sqlite3").exists()
    assert f"received {signal.Signals(signum).name}" in text
    assert "stopped" in text


def test_rackbus_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "actors.cli", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=True,
    )
    assert "serve" in done.stdout
