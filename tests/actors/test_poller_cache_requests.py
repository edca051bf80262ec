"""``methods.requestPollerCache`` takes our request and RackHD's ``{value, options}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.exchanges import task as conv
from actors.pollers.cache import PollerCache
from runtime import Address, IpAddress, RemoteError, Result, Runtime

CACHE = Address(conv.NAME, "methods.requestPollerCache")
T1, T2 = "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    """A runtime whose poller cache holds two results of poller ``p1``."""
    async with Runtime() as rt:
        await rt.spawn(PollerCache, key="poller-cache")
        client = conv.TaskClient(rt)
        for stamp, power in ((T1, "off"), (T2, "on")):
            result = conv.IpmiCommandResult("p1", "n1", "power", {"power": power}, stamp)
            await client.ipmi_command_result("power", "g1", result)
        yield rt


async def cached(rt: Runtime, request: object) -> list[conv.PollerCacheEntry]:
    entries: list[conv.PollerCacheEntry] = await rt.call(
        CACHE, request, returns=list[conv.PollerCacheEntry], timeout=5
    )
    return entries


async def test_rackhds_request_shape_is_answered(rt: Runtime) -> None:
    """RackHD's pollers API sends ``{value: <pollerId>, options: {latestOnly}}`` as a plain
    object (its timeouts read ``requestPollerCache:Object``); it gets the same entries as
    our ``PollerCacheRequest``, ``latestOnly`` included."""
    everything = await cached(rt, {"value": "p1"})
    assert [e.timestamp for e in everything] == [T1, T2]
    assert await cached(rt, {"value": "p1", "options": {}}) == everything
    latest = await cached(rt, {"value": "p1", "options": {"latestOnly": True}})
    assert latest == everything[-1:]
    assert await cached(rt, conv.PollerCacheRequest("p1", True)) == latest
    assert await cached(rt, {"value": "unknown"}) == []


async def test_rackhds_result_envelope_is_answered(rt: Runtime) -> None:
    """The same request typed ``Result`` (the envelope keeps only ``value``)."""
    assert [e.timestamp for e in await cached(rt, Result("p1"))] == [T1, T2]


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        ({"foo": 1}, "$.pollerId"),
        ({"value": 42}, "$.value"),
        ({"value": "a b"}, "$.value"),
        ({"value": "p1", "options": {"latestOnly": "yes"}}, "$.options.latestOnly"),
        ({"value": "p1", "options": []}, "$.options"),
        (Result({"pollerId": "p1"}), "$.value"),
        (Result(None), "$.value"),
        (IpAddress("10.0.0.1"), "not IpAddress"),
        ([1, 2], "not list"),
    ],
)
async def test_other_request_shapes_are_refused_with_a_400(
    rt: Runtime, request_: Any, named: str
) -> None:
    """Any other shape gets a 400 that names both accepted shapes and what is wrong."""
    assert "pollerId" in conv.POLLER_CACHE_SHAPES and "value" in conv.POLLER_CACHE_SHAPES
    with pytest.raises(RemoteError) as caught:
        await cached(rt, request_)
    assert caught.value.status == 400
    assert caught.value.message.startswith(conv.POLLER_CACHE_SHAPES)
    assert named in caught.value.message
