"""Pollers under failure: bus outages, odd replies, deletes, crashes and bad definitions."""

from __future__ import annotations

import pathlib
from typing import Any

import attrs
import pytest
import trio

from actors.exchanges import task as conv
from actors.exchanges.task import TaskClient
from actors.pollers import service as poller_service
from actors.pollers.alerts import SensorWatch
from actors.pollers.cache import PollerCache
from actors.pollers.credentials import CredentialStore
from actors.pollers.definitions import PollerDefinition, PollerDefinitionError
from actors.pollers.poller import PollerActor, PollerTools, Resume
from actors.pollers.service import PollerClient, PollerService, start_pollers
from actors.services.config_store import MemoryConfigStore
from protocols.ipmi import BmcTarget, Credentials, PowerState, SensorReading
from protocols.ipmi import SensorStatus as Status
from protocols.snmp import CommunityAuth
from runtime import MemoryBus, RemoteError, Runtime
from runtime.errors import PublishBufferFull
from runtime.testing import Inbox
from tests.peers import free_udp_port, stop
from tests.protocols.snmp import _peers as snmp_peers

from ._ipmi_sim import polling_ipmi_sim

CREDENTIALS = Credentials("admin", "Zq8-secret-77")


def definition(**changes: Any) -> PollerDefinition:
    base = PollerDefinition(
        id="p1", type="ipmi", command="power", nodeId="node-1", host="127.0.0.1",
        credentialsRef="bmc", interval=1.0, port=623,
    )  # fmt: skip
    return attrs.evolve(base, **changes)


class PoweredOn:
    """Answers ``get_power`` (a unit test's stand-in for a BMC)."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_power(self, bmc: BmcTarget, **_: object) -> PowerState:
        self.calls += 1
        return PowerState(on=True)


class OutageBus(MemoryBus):
    """A memory bus whose publishes on ``on.task`` fail, while ``down``, as the AMQP bus's
    do once its outage buffer is full."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(
        self, exchange: str, routing_key: str, message: object, *, timeout: float | None = None
    ) -> None:
        if self.down and exchange == conv.NAME:
            await trio.lowlevel.checkpoint()
            raise PublishBufferFull("outage buffer full")
        await super().publish(exchange, routing_key, message, timeout=timeout)


async def test_a_bus_outage_neither_crashes_pollers_nor_ends_the_runtime(
    autojump_clock: object,
) -> None:
    """Publishing a command or a result fails while the broker is away (``BusUnavailable``);
    every poller goes on polling on its timer, none crashes (a crash restarts it without
    its alert state, and counts against the root supervisor's restart intensity), and
    they publish again once the bus is back."""
    bus = OutageBus()
    bmc = PoweredOn()
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", bmc)  # type: ignore[arg-type]
    keys = [f"poller:p{i}" for i in range(12)]
    async with Runtime(bus) as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, conv.NAME, "ipmi.command.*.result.#")
        bus.down = True
        for i, key in enumerate(keys):
            await rt.spawn(PollerActor, definition(id=f"p{i}"), tools, key=key)
        await trio.sleep(60)
        assert inbox.deliveries == []
        calls_during_outage = bmc.calls
        bus.down = False
        await trio.sleep(5)
        crashes = [rt.lookup(key).statistics().crashes for key in keys]  # type: ignore[union-attr]
    assert crashes == [0] * len(keys)
    assert calls_during_outage >= len(keys) * 10  # polled on, with the backoff of failures
    assert {d.payload.pollerId for d in inbox.deliveries} == {f"p{i}" for i in range(12)}


async def test_a_paused_poller_stays_paused_when_it_restarts(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poller actor that crashes is restarted from its current definition: one paused
    through the service does not start polling again."""

    class CrashOnce(PollerActor):
        crashed = False

        async def on_pause(self, request: Any) -> None:
            await super().on_pause(request)
            if not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise RuntimeError("crash after pausing")

    monkeypatch.setattr(poller_service, "PollerActor", CrashOnce)
    bmc = PoweredOn()
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", bmc)  # type: ignore[arg-type]
    async with Runtime() as rt:
        await rt.spawn(PollerService, MemoryConfigStore(), tools, key=poller_service.SERVICE_KEY)
        await PollerClient(rt).create(definition(interval=10.0))
        await trio.sleep(1)
        await PollerClient(rt).pause("p1")
        await trio.sleep(5)
        assert CrashOnce.crashed
        calls = bmc.calls
        await trio.sleep(120)
    assert bmc.calls == calls


async def test_a_deleted_pollers_cached_results_are_dropped(autojump_clock: object) -> None:
    """``methods.requestPollerCache`` answers nothing for a deleted poller (its results
    would otherwise stay in the cache for as long as the process runs)."""
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", PoweredOn())  # type: ignore[arg-type]
    async with Runtime() as rt:
        await rt.spawn(PollerCache, key=poller_service.CACHE_KEY)
        await rt.spawn(PollerService, MemoryConfigStore(), tools, key=poller_service.SERVICE_KEY)
        pollers = PollerClient(rt)
        await pollers.create(definition(id="gone"))
        await pollers.create(definition(id="kept"))
        await trio.sleep(3)
        assert await TaskClient(rt).request_poller_cache("gone")
        await pollers.delete("gone")
        await trio.sleep(1)
        assert await TaskClient(rt).request_poller_cache("gone") == []
        assert await TaskClient(rt).request_poller_cache("kept")
        cache = rt.lookup(poller_service.CACHE_KEY)
        assert cache is not None


async def test_a_deleted_poller_never_polls_or_publishes_again(autojump_clock: object) -> None:
    """Delete right after resume (whose timer is already due): the poller is gone before
    the service answers, and nothing is published for it afterwards."""
    bmc = PoweredOn()
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", bmc)  # type: ignore[arg-type]
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, conv.NAME, "#")
        await rt.spawn(PollerService, MemoryConfigStore(), tools, key=poller_service.SERVICE_KEY)
        pollers = PollerClient(rt)
        await pollers.create(definition(interval=30.0))
        await trio.sleep(1)
        await pollers.resume("p1")
        await pollers.delete("p1")
        seen, calls = len(inbox.deliveries), bmc.calls
        await trio.sleep(120)
        assert rt.lookup(poller_service.poller_key("p1")) is None
    assert (len(inbox.deliveries), bmc.calls) == (seen, calls)


def reading(name: str, number: int, status: Status) -> SensorReading:
    return SensorReading(name, number, "Temperature", 50.0, "C", status)


def test_sensors_sharing_a_name_alert_once_each() -> None:
    """BMCs often name several sensors alike ("Temp" on each board); one in a bad state
    alerts once, not on every round because another of the same name reads ok."""
    watch = SensorWatch()
    rounds = [watch.update([reading("Temp", 1, Status.CRITICAL), reading("Temp", 2, Status.OK)])
              for _ in range(3)]  # fmt: skip
    assert [len(alerts) for alerts in rounds] == [1, 0, 0]
    (cleared,) = watch.update([reading("Temp", 1, Status.OK), reading("Temp", 2, Status.OK)])
    assert cleared.data["inCondition"] is False


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"oids": []}, "oids"),
        ({"oids": ["not an oid"]}, "oids[0]"),
        ({"oids": ["1.3.6.1.2.1.1.5.0", "1.3..6"]}, "oids[1]"),
    ],
)
async def test_an_snmp_oid_poller_needs_valid_oids(
    autojump_clock: object, changes: dict[str, Any], named: str
) -> None:
    """An ``oids`` poller without OIDs, or with one that does not parse, is refused with a
    400 naming it, instead of being stored and failing every round."""
    fields: dict[str, Any] = {
        "id": "s1", "type": "snmp", "command": "oids", "nodeId": "sw-1", "host": "10.1.0.9",
        "credentialsRef": "sw", **changes,
    }  # fmt: skip
    with pytest.raises(PollerDefinitionError, match=named.replace("[", r"\[")):
        PollerDefinition(**fields)
    tools = PollerTools(CredentialStore(snmp={"sw": CommunityAuth("c")}), "g1")
    store = MemoryConfigStore()
    async with Runtime() as rt:
        await rt.spawn(PollerService, store, tools, key=poller_service.SERVICE_KEY)
        with pytest.raises(RemoteError) as caught:
            await rt.call(rt.own_address(poller_service.SERVICE_KEY), {"definition": fields})
    assert caught.value.status == 400 and named in caught.value.message
    assert store.values == {}


async def test_an_ip_address_value_is_published_as_json(tmp_path: pathlib.Path) -> None:
    """An OID whose value is an IpAddress (snmpd's ipAdEntAddr) gives a JSON result that
    goes over any bus, and the poller cache can answer with it."""
    port = free_udp_port()
    process = snmp_peers.start_snmpd(tmp_path, port)
    oid = "1.3.6.1.2.1.4.20.1.1.127.0.0.1"
    credentials = CredentialStore(snmp={"sw": CommunityAuth(snmp_peers.COMMUNITY)})
    try:
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, conv.NAME, "snmp.command.result.#")
            await start_pollers(rt, MemoryConfigStore(), credentials, timeout=5.0)
            ip_poller = PollerDefinition(
                id="ip", type="snmp", command="oids", nodeId="sw-1", host="127.0.0.1",
                credentialsRef="sw", port=port, oids=[oid], interval=60.0,
            )  # fmt: skip
            await PollerClient(rt).create(ip_poller)
            (delivery,) = await inbox.wait_for(1, timeout=30)
            rt.codec.encode(delivery.payload)  # raises EncodeError for a non-JSON result
            cached = await TaskClient(rt).request_poller_cache("ip")
    finally:
        stop(process)
    assert delivery.payload.error is None
    assert delivery.payload.result == {oid: "127.0.0.1"}
    assert cached[-1].result == {oid: "127.0.0.1"}


async def test_after_the_sel_is_cleared_reset_is_reported_once(tmp_path: pathlib.Path) -> None:
    """A SEL poller reports ``reset`` on the round that finds its last entry gone (the SEL
    was cleared), and not again on the rounds after."""
    async with polling_ipmi_sim(tmp_path, "sel") as sim:
        inbox = sim.results
        sel = definition(command="sel", credentialsRef="sim", port=sim.port, interval=3600.0)
        ref = await sim.rt.spawn(PollerActor, sel, sim.tools, key="poller:p1")
        await inbox.wait_for(1, timeout=30)
        await sim.client.clear_sel(BmcTarget("127.0.0.1", sim.creds, port=sim.port))
        for count in (2, 3):
            await sim.rt.tell(ref, Resume())  # poll now
            await inbox.wait_for(count, timeout=30)
    first, cleared, after = (d.payload.result for d in inbox.deliveries)
    assert first == {"entries": [], "reset": False, "baseline": True}  # 3 old entries
    assert cleared == {"entries": [], "reset": True, "baseline": False}
    assert after == {"entries": [], "reset": False, "baseline": False}
