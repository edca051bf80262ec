"""``PollerCache``: the last results of every poller, for ``methods.requestPollerCache``.

It listens to the result stream on ``on.task`` (so it caches pollers of every
process on the bus) and keeps the last ``size`` results per poller (RackHD: 10),
for at most ``max_pollers`` pollers (the least recently updated go first). A
failed poll is cached as ``{"error": ...}``; a deleted poller's results are
dropped (``ForgetPoller``). It answers our request and RackHD's
``{value, options}`` alike. Like RackHD's, the cache lives in memory and starts
empty after a restart.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import attrs

from runtime import Actor, handler, message

from ..exchanges import task as conv

DEFAULT_SIZE = 10
DEFAULT_MAX_POLLERS = 100_000


@message("ForgetPollerResults")
@attrs.frozen
class ForgetPoller:
    """Drop a (deleted) poller's cached results; the poller service sends it."""

    pollerId: str


class PollerCache(Actor):
    """Caches poller results; answers ``methods.requestPollerCache``."""

    def __init__(self, size: int = DEFAULT_SIZE, max_pollers: int = DEFAULT_MAX_POLLERS) -> None:
        self.size = size
        self.max_pollers = max_pollers
        self.entries: OrderedDict[str, deque[conv.PollerCacheEntry]] = OrderedDict()

    def _add(self, poller_id: str, timestamp: str, result: Any, error: str | None) -> None:
        cached = self.entries.pop(poller_id, None)
        if cached is None:
            cached = deque(maxlen=self.size)
            if len(self.entries) >= self.max_pollers:
                self.entries.popitem(last=False)
        value = {"error": error} if error is not None else result
        cached.append(conv.PollerCacheEntry(poller_id, timestamp, value))
        self.entries[poller_id] = cached

    @handler(conv.NAME, conv.IPMI_COMMAND_RESULT.pattern())
    async def ipmi_result(self, event: conv.IpmiCommandResult) -> None:
        self._add(event.pollerId, event.timestamp, event.result, event.error)

    @handler(conv.NAME, conv.SNMP_COMMAND_RESULT.pattern())
    async def snmp_result(self, event: conv.SnmpCommandResult) -> None:
        self._add(event.pollerId, event.timestamp, event.result, event.error)

    @handler()
    async def forget(self, request: ForgetPoller) -> None:
        self.entries.pop(request.pollerId, None)

    @handler(conv.NAME, conv.REQUEST_POLLER_CACHE.template)
    async def request(self, payload: object) -> list[conv.PollerCacheEntry]:
        """Ours or RackHD's request shape (``poller_cache_request``); other shapes are a 400."""
        request = conv.poller_cache_request(payload, self.ctx.runtime.codec)
        cached = self.entries.get(request.pollerId)
        if not cached:
            return []
        return [cached[-1]] if request.latestOnly else list(cached)
