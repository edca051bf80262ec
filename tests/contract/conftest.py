"""The bus contract suite runs once per bus kind; add a kind here and every test runs on it.

Each test takes ``clock`` and ``bus``: in-process buses run on virtual time
(``MockClock`` with autojump); a bus that waits on real I/O gets the real clock.
"""

import uuid
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing

from runtime import Bus, MemoryBus, message
from runtime.amqp_bus import AmqpBus

BUS_KINDS = ["memory", "amqp"]


@message("ContractPing")
@attrs.frozen
class Ping:
    """The suite's own message type; every bus's codec knows it."""

    n: int
    note: str = ""


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
    else:
        made = AmqpBus(name=f"contract-{uuid.uuid4().hex[:6]}", persistent=False)
    made.codec.register(Ping)
    await made.start(nursery)
    try:
        yield made
    finally:
        await made.aclose()
