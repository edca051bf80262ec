"""The bus contract suite runs once per bus kind; add a kind here and every test runs on it.

Each test takes ``clock`` and ``bus``: in-process buses run on virtual time
(``MockClock`` with autojump); a bus that waits on real I/O gets the real clock.
"""

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from runtime import Bus, MemoryBus

BUS_KINDS = ["memory"]


@pytest.fixture(params=BUS_KINDS)
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(bus_kind: str) -> trio.testing.MockClock | None:
    return trio.testing.MockClock(autojump_threshold=0) if bus_kind == "memory" else None


@pytest.fixture
async def bus(bus_kind: str, nursery: trio.Nursery) -> AsyncIterator[Bus]:
    if bus_kind == "memory":
        made: Bus = MemoryBus()
    else:  # pragma: no cover - filled in by the next bus
        raise LookupError(bus_kind)
    await made.start(nursery)
    try:
        yield made
    finally:
        await made.aclose()
