"""``Reports``: a bounded queue between a protocol server and the bus.

Servers report what happened (a transfer ended, a lease was bound) from their
packet loops, which must never wait for the bus. ``submit`` never blocks: when
the queue is full the report is dropped, counted and logged, and the server
goes on serving. ``run`` publishes the queued reports, one at a time, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")

DEFAULT_SIZE = 4096


class Reports(Generic[T]):
    """Queue reports with ``submit``; ``await run()`` hands each to ``publish``."""

    def __init__(
        self,
        name: str,
        publish: Callable[[T], Awaitable[object]],
        *,
        size: int = DEFAULT_SIZE,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.publish = publish
        self.dropped = 0
        self._log = log or logging.getLogger("rackbus.reports")
        self._send, self._receive = trio.open_memory_channel[T](size)

    def submit(self, report: T) -> None:
        """Queue ``report``; drop it (counted, logged) when the queue is full."""
        try:
            self._send.send_nowait(report)
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                self._log.warning(
                    "%s: %d reports dropped (the bus is slow)", self.name, self.dropped
                )

    async def run(self) -> None:
        """Publish reports until cancelled; a report that fails to publish is logged."""
        async for report in self._receive:
            try:
                await self.publish(report)
            except Exception as exc:
                self._log.warning("%s: report not published: %r", self.name, exc)
