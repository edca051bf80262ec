"""Child processes the interop tests start: ended and their pipes closed, whatever happened."""

from __future__ import annotations

import trio


async def close_process(proc: trio.Process) -> None:
    """Kill ``proc`` if it still runs, reap it, and close its pipes."""
    if proc.returncode is None:
        proc.kill()
    with trio.move_on_after(10):
        await proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            await stream.aclose()
