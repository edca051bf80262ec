"""Two processes on one broker: A calls an actor that lives in B; once B stops, nobody answers.

Process B runs a ``Runtime(AmqpBus(name="procB"))`` with one actor and stops
cleanly on SIGTERM or SIGINT. Its queue is deleted on a clean stop, so a call
made after B exited is returned by the broker at once: ``NoResponder``, not a
``CallTimeout`` much later. These tests wait on real I/O (real clock).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
import trio

from runtime import Address, NoResponder, Runtime
from runtime.amqp_bus import AmqpBus

from .processes import close_process

EXCHANGE = "on.test2p"
CALL_TIMEOUT = 10.0

SCRIPT = textwrap.dedent(
    """
    import os
    import signal
    import sys

    import trio

    from runtime import Actor, Runtime, handler
    from runtime.amqp_bus import AmqpBus

    KEY = sys.argv[1]


    class Echo(Actor):
        @handler("on.test2p", "methods.echo.{key}")
        async def echo(self, message: dict) -> dict:
            return {"echo": message, "pid": os.getpid()}


    async def main():
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with Runtime(AmqpBus(name="procB", persistent=False)) as rt:
                await rt.spawn(Echo, key=KEY)
                print("ready", flush=True)
                async for signum in signals:
                    print(f"received {signal.Signals(signum).name}", flush=True)
                    break
        print("stopped cleanly", flush=True)


    trio.run(main)
    """
)


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {**os.environ, "PYTHONPATH": root}


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes, output: bytearray) -> None:
    while marker not in output:
        chunk = await stream.receive_some()
        assert chunk, f"process B ended before printing {marker!r}:\n{output.decode()}"
        output += chunk


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_calls_b_then_b_stops_and_calls_fail_at_once(signum: int) -> None:
    key = f"b{uuid.uuid4().hex}"
    address = Address(EXCHANGE, f"methods.echo.{key}")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", SCRIPT, key],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    assert proc.stdout is not None
    output = bytearray()
    try:
        with trio.fail_after(30):
            await _read_until(proc.stdout, b"ready", output)

        async with Runtime(AmqpBus(name=f"procA-{uuid.uuid4().hex[:8]}", persistent=False)) as rt:
            for n in range(5):
                with trio.fail_after(CALL_TIMEOUT + 5):
                    answer = await rt.call(address, {"n": n}, timeout=CALL_TIMEOUT)
                assert answer == {"echo": {"n": n}, "pid": proc.pid}

            proc.send_signal(signum)
            with trio.fail_after(30):
                code = await proc.wait()
                output += b"".join([chunk async for chunk in proc.stdout])
            text = output.decode()
            assert code == 0, text
            assert f"received {signal.Signals(signum).name}" in text
            assert "stopped cleanly" in text

            start = trio.current_time()
            with trio.fail_after(CALL_TIMEOUT + 5), pytest.raises(NoResponder):
                await rt.call(address, {"n": 99}, timeout=CALL_TIMEOUT)
            elapsed = trio.current_time() - start
            assert elapsed < 1.0, f"NoResponder took {elapsed:.2f} s"
    finally:
        await close_process(proc)
