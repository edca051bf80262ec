"""``AsyncioThread``: a stock asyncio event loop in a worker thread, owned by a Trio nursery.

Measured on this stack, trio-asyncio's loop runs aiormq 3-4x slower than a
plain asyncio loop, and each crossing between the two costs 35-50 us; a stock
loop in its own thread, with crossings batched, runs at plain-asyncio speed.
So asyncio code runs here, and the two sides talk through two batched queues:
``to_asyncio`` and ``to_trio`` append a call to a list and wake the other side
only when the list was empty, so a burst of a thousand messages costs one
wake-up, not a thousand.

The loop's thread starts and is joined inside ``run``, a task in a Trio
nursery: when that task is cancelled, ``run`` awaits the shutdown coroutine,
stops the loop and joins the thread, so nothing outlives the nursery.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class AsyncioThread:
    """An asyncio loop in a thread; start it with ``await nursery.start(thread.run)``."""

    def __init__(self, name: str = "rackbus-asyncio") -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._to_trio: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._to_asyncio: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    async def run(
        self,
        shutdown: Callable[[], Coroutine[Any, Any, None]] | None = None,
        *,
        task_status: trio.TaskStatus[AsyncioThread] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the loop until cancelled; then run ``shutdown()`` on it, stop it, join the thread."""
        self._token = trio.lowlevel.current_trio_token()
        # A plain selector loop: trio-asyncio, once imported, makes new_event_loop()
        # refuse to run inside Trio.
        loop = self.loop = asyncio.SelectorEventLoop()
        running = trio.Event()
        loop.call_soon(self._token.run_sync_soon, running.set)
        thread = threading.Thread(target=self._run_forever, name=self.name, daemon=True)
        thread.start()
        try:
            await running.wait()
            task_status.started(self)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                if shutdown is not None:
                    with trio.move_on_after(10):
                        await self.call(shutdown)
                loop.call_soon_threadsafe(loop.stop)
                await trio.to_thread.run_sync(thread.join)
                self.loop = None

    def _run_forever(self) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Await ``fn(*args)`` on the loop from Trio (one crossing each way); cancellable."""
        loop = self.loop
        token = self._token
        if loop is None or token is None:
            raise RuntimeError("the asyncio thread is not running")
        done = trio.Event()
        future = asyncio.run_coroutine_threadsafe(fn(*args), loop)
        future.add_done_callback(lambda _: token.run_sync_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            future.cancel()
            raise
        return future.result()

    def to_asyncio(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` (a plain function) to run on the loop; batched."""
        loop = self.loop
        if loop is None:
            raise RuntimeError("the asyncio thread is not running")
        with self._lock:
            first = not self._to_asyncio
            self._to_asyncio.append((fn, args))
        if first:
            loop.call_soon_threadsafe(self._flush_asyncio)

    def to_trio(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` (a plain function) to run in Trio; batched; any thread."""
        token = self._token
        if token is None:
            return
        with self._lock:
            first = not self._to_trio
            self._to_trio.append((fn, args))
        if first:
            try:
                token.run_sync_soon(self._flush_trio)
            except trio.RunFinishedError:
                pass

    def _flush_asyncio(self) -> None:
        with self._lock:
            batch, self._to_asyncio = self._to_asyncio, []
        for fn, args in batch:
            fn(*args)

    def _flush_trio(self) -> None:
        with self._lock:
            batch, self._to_trio = self._to_trio, []
        for fn, args in batch:
            fn(*args)
