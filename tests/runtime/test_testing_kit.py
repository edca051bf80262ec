"""The test kit users get: the rackbus_runtime fixture, call_handler, wait_for_handler, Inbox."""

from __future__ import annotations

import attrs
import pytest
import trio

from runtime import Actor, Address, RemoteError, Runtime, handler, message
from runtime.testing import Inbox, call_handler, wait_for_handler

EX = "on.kit"


@message("Lease")
@attrs.frozen
class Lease:
    mac: str
    ip: str


class LeaseBook(Actor):
    def __init__(self) -> None:
        self.leases: dict[str, str] = {}

    @handler(EX, "bind.{key}")
    async def bind(self, lease: Lease) -> None:
        await trio.sleep(0.5)  # some slow bookkeeping
        self.leases[lease.mac] = lease.ip
        await self.ctx.publish("on.events", f"bound.{self.ctx.key}", {"ip": lease.ip})

    @handler(EX, "lookup.{key}")
    async def lookup(self, mac: str) -> str:
        if mac not in self.leases:
            raise KeyError(mac)
        return self.leases[mac]


async def test_fixture_call_handler_and_waiter(autojump_clock, rackbus_runtime: Runtime) -> None:
    ref = await rackbus_runtime.spawn(LeaseBook, key="dhcp")
    events = Inbox()
    await events.bind(rackbus_runtime.bus, "on.events", "bound.#")

    async with wait_for_handler(ref, "bind") as waiter:
        await rackbus_runtime.publish(EX, "bind.dhcp", {"mac": "aa:bb", "ip": "10.0.0.5"})
    assert waiter.message == Lease("aa:bb", "10.0.0.5")
    assert waiter.error is None
    [event] = await events.wait_for(1)
    assert event.payload == {"ip": "10.0.0.5"}

    assert await call_handler(ref, "lookup", "aa:bb") == "10.0.0.5"
    with pytest.raises(RemoteError) as caught:
        await call_handler(ref, "lookup", "ff:ff")
    assert caught.value.name == "KeyError"
    with pytest.raises(LookupError, match="no handler"):
        await call_handler(ref, "missing", "x")


async def test_waiter_predicate_and_timeout(autojump_clock, rackbus_runtime: Runtime) -> None:
    ref = await rackbus_runtime.spawn(LeaseBook, key="dhcp")
    async with wait_for_handler(ref, "bind", predicate=lambda lease: lease.ip.endswith(".9")) as w:
        for last in range(5, 10):
            await rackbus_runtime.publish(EX, "bind.dhcp", Lease("aa", f"10.0.0.{last}"))
    assert w.message.ip == "10.0.0.9"
    with pytest.raises(trio.TooSlowError):
        async with wait_for_handler(ref, "bind", timeout=2):
            pass


async def test_waiter_reports_a_handler_error(autojump_clock, rackbus_runtime: Runtime) -> None:
    ref = await rackbus_runtime.spawn(LeaseBook, key="dhcp")
    async with wait_for_handler(ref, "lookup") as waiter:
        with pytest.raises(RemoteError):
            await rackbus_runtime.call(Address(EX, "lookup.dhcp"), "nobody")
    assert isinstance(waiter.error, KeyError)


def test_plugin_is_registered_and_demands_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        """
        async def test_with_clock(autojump_clock, rackbus_runtime):
            assert rackbus_runtime.statistics().actors == 0

        async def test_without_clock(rackbus_runtime):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)  # pytest-trio runs async fixtures in the test
    result.stdout.fnmatch_lines(["*add pytest-trio's autojump_clock*"])
