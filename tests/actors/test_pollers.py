"""Pollers against pyghmi's BMC (in a child process) and, for alert timing, in virtual time."""

from __future__ import annotations

import logging
import pathlib
import string
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.exchanges import events
from actors.exchanges import task as conv
from actors.exchanges.task import TaskClient
from actors.pollers.credentials import CredentialStore
from actors.pollers.definitions import PollerDefinition
from actors.pollers.poller import PollerActor, PollerTools
from actors.pollers.service import PollerClient, start_pollers
from actors.services.config_store import MemoryConfigStore
from protocols.ipmi import (
    BmcTarget,
    Credentials,
    IpmiClient,
    PowerAction,
    SensorReading,
    SensorStatus,
    Thresholds,
)
from protocols.ipmi.fakebmc import FakeBmcProcess, open_fake_bmcs
from protocols.snmp import CommunityAuth
from runtime import RemoteError, Runtime
from runtime.testing import Inbox
from tests.peers import free_udp_port, stop
from tests.protocols.ipmi import _peers as ipmi_peers
from tests.protocols.snmp import _peers as snmp_peers

SECRET = "Zq8-secret-77"
CREDENTIALS = Credentials("admin", SECRET)


@attrs.frozen
class Rig:
    rt: Runtime
    bmc: FakeBmcProcess
    port: int
    tasks: Inbox
    node_events: Inbox


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    port = free_udp_port()
    async with open_fake_bmcs(port, users={"admin": SECRET}) as bmc, Runtime() as rt:
        tasks, node_events = Inbox(), Inbox()
        await tasks.bind(rt.bus, conv.NAME, "#")
        await node_events.bind(rt.bus, events.NAME, "node.#")
        await start_pollers(
            rt, MemoryConfigStore(), CredentialStore({"bmc": CREDENTIALS}), timeout=1.5
        )
        yield Rig(rt, bmc, port, tasks, node_events)


def power_poller(port: int, **changes: Any) -> PollerDefinition:
    base = PollerDefinition(
        id="p1", type="ipmi", command="power", nodeId="node-1", host="127.0.0.1",
        credentialsRef="bmc", interval=1.0, port=port,
    )  # fmt: skip
    return attrs.evolve(base, **changes)


async def results(inbox: Inbox, count: int, timeout: float = 20) -> list[conv.IpmiCommandResult]:
    with trio.fail_after(timeout):
        while True:
            found = [
                d.payload for d in inbox.deliveries if isinstance(d.payload, conv.IpmiCommandResult)
            ]
            if len(found) >= count:
                return found
            await trio.sleep(0.05)


async def test_power_poller_publishes_results_alerts_and_fills_the_cache(rig: Rig) -> None:
    await PollerClient(rig.rt).create(power_poller(rig.port))
    first = (await results(rig.tasks, 1))[0]
    assert (first.pollerId, first.nodeId, first.error) == ("p1", "node-1", None)
    assert first.result == {"power": "off"}
    command = rig.tasks.deliveries[0]
    assert command.routing_key == "ipmi.command.power.pollers"
    assert command.payload.obmRef == "bmc"

    async with IpmiClient() as client:
        await client.set_power(BmcTarget("127.0.0.1", CREDENTIALS, rig.port), PowerAction.ON)
    with trio.fail_after(20):
        while not any(isinstance(d.payload, conv.PollerAlert) for d in rig.tasks.deliveries):
            await trio.sleep(0.05)
    (alert,) = [d for d in rig.tasks.deliveries if isinstance(d.payload, conv.PollerAlert)]
    assert alert.routing_key == "poller.alert.pollers"
    assert alert.payload.kind == "power"
    assert alert.payload.data == {"states": {"last": "off", "current": "on"}}

    cached = await TaskClient(rig.rt).request_poller_cache("p1")
    assert cached and cached[-1].result == {"power": "on"}
    latest = await TaskClient(rig.rt).request_poller_cache("p1", latest_only=True)
    assert latest == [cached[-1]]
    assert await TaskClient(rig.rt).request_poller_cache("unknown") == []


async def test_a_bmc_that_stops_answering_makes_the_node_inaccessible_then_accessible(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await PollerClient(rig.rt).create(power_poller(rig.port))
    await results(rig.tasks, 1)
    rig.bmc.pause()
    with trio.fail_after(30):
        while not rig.node_events.deliveries:
            await trio.sleep(0.05)
    failed = [r for r in await results(rig.tasks, 2) if r.error]
    assert failed and "no answer" in (failed[0].error or "")
    rig.bmc.resume()
    (down, up) = await rig.node_events.wait_for(2, timeout=30)
    assert down.routing_key == "node.inaccessible.information.node-1.node-1"
    assert up.routing_key == "node.accessible.information.node-1.node-1"
    assert (await PollerClient(rig.rt).list())[0].id == "p1"  # the tree is still up
    everything = [orjson.dumps(d.payload, default=repr) for d in rig.tasks.deliveries]
    everything += [orjson.dumps(d.payload, default=repr) for d in rig.node_events.deliveries]
    assert not any(SECRET.encode() in blob for blob in everything)
    assert SECRET not in caplog.text


async def test_pause_resume_delete_and_bad_requests(rig: Rig) -> None:
    pollers = PollerClient(rig.rt)
    await pollers.create(power_poller(rig.port, interval=2.0))
    await results(rig.tasks, 1)
    assert (await pollers.pause("p1")).paused
    seen = len(await results(rig.tasks, 1))
    await trio.sleep(3)
    assert len(await results(rig.tasks, 1)) == seen  # nothing while paused
    assert not (await pollers.resume("p1")).paused
    await results(rig.tasks, seen + 1)
    await pollers.delete("p1")
    assert await pollers.list() == []
    with pytest.raises(RemoteError, match="no poller 'p1'") as caught:
        await pollers.pause("p1")
    assert caught.value.status == 400
    with pytest.raises(RemoteError, match="no IPMI credentials named 'nope'"):
        await pollers.create(power_poller(rig.port, id="p2", credentialsRef="nope"))
    with pytest.raises(RemoteError, match="exists already"):
        await pollers.create(power_poller(rig.port, id="p3"))
        await pollers.create(power_poller(rig.port, id="p3"))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"command": "reboot"}, "command must be one of"),
        ({"interval": 0.1}, "interval"),
        ({"id": "a.b"}, "poller id"),
        ({"type": "redfish"}, "type must be"),
        ({"port": 70000}, "port"),
    ],
)
def test_bad_definitions_are_refused(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        attrs.evolve(power_poller(623), **changes)


async def test_definitions_survive_a_restart(autojump_clock: object) -> None:
    store = MemoryConfigStore()
    credentials = CredentialStore({"bmc": CREDENTIALS})
    async with Runtime() as rt:
        tools = await start_pollers(rt, store, credentials, snmp_enabled=False)
        assert tools.ipmi is not None and tools.snmp is None
        await PollerClient(rt).create(power_poller(9, interval=30.0))
        await PollerClient(rt).pause("p1")
    assert tools.ipmi is None  # the clients went with the task that held them
    async with Runtime() as rt:
        await start_pollers(rt, store, credentials, snmp_enabled=False)
        (kept,) = await PollerClient(rt).list()
    assert kept.id == "p1" and kept.paused and kept.interval == 30.0


class ScriptedBmc:
    """Answers ``get_sensors`` from a script (a unit test's stand-in for a BMC)."""

    def __init__(self, statuses: list[SensorStatus]) -> None:
        self.statuses = statuses
        self.calls = 0

    async def get_sensors(self, bmc: BmcTarget, **_: object) -> tuple[SensorReading, ...]:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        reading = SensorReading(
            "CPU Temp", 1, "Temperature", 95.0 if status is not SensorStatus.OK else 50.0, "C",
            status, thresholds=Thresholds(upper_critical=90.0),
        )  # fmt: skip
        return (reading,)


async def test_a_threshold_crossing_alerts_once_and_clears_once(autojump_clock: object) -> None:
    ok, critical = SensorStatus.OK, SensorStatus.CRITICAL
    bmc = ScriptedBmc([ok, ok, critical, critical, critical, ok, ok])
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", bmc)  # type: ignore[arg-type]
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, conv.NAME, "poller.alert.#")
        definition = power_poller(623, command="sdr", interval=60.0)
        await rt.spawn(PollerActor, definition, tools, key="poller:p1")
        await trio.sleep(60 * 7 + 1)
    assert bmc.calls >= 7
    alerts = [d.payload for d in inbox.deliveries]
    assert [(a.severity, a.data["inCondition"]) for a in alerts] == [
        ("critical", True),
        ("information", False),
    ]


async def test_snmp_pollers_read_oids_and_interfaces_from_snmpd(tmp_path: pathlib.Path) -> None:
    port = free_udp_port()
    process = snmp_peers.start_snmpd(tmp_path, port)
    credentials = CredentialStore(snmp={"sw": CommunityAuth(snmp_peers.COMMUNITY)})
    try:
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, conv.NAME, "snmp.command.result.#")
            await start_pollers(rt, MemoryConfigStore(), credentials, timeout=5.0)
            base = PollerDefinition(
                id="sys", type="snmp", command="oids", nodeId="switch-1", host="127.0.0.1",
                credentialsRef="sw", port=port, oids=["1.3.6.1.2.1.1.5.0"], interval=60.0,
                alerts=[{"oid": "1.3.6.1.2.1.1.5.0", "value": "/./", "severity": "information"}],
            )  # fmt: skip
            await PollerClient(rt).create(base)
            await PollerClient(rt).create(attrs.evolve(base, id="ifs", command="interfaces"))
            deliveries = await inbox.wait_for(2, timeout=30)
    finally:
        stop(process)
    by_poller = {d.payload.pollerId: d.payload for d in deliveries}
    assert by_poller["sys"].error is None and by_poller["ifs"].error is None
    assert isinstance(by_poller["sys"].result["1.3.6.1.2.1.1.5.0"], str)
    names = {row["descr"] for row in by_poller["ifs"].result}
    assert "lo" in names


@settings(max_examples=25, deadline=None)
@given(
    password=st.text(
        alphabet=string.ascii_letters + string.digits + "!#%&-_", min_size=8, max_size=20
    )
)
def test_no_secret_reaches_the_bus_or_the_log(password: str) -> None:
    """Whatever the password, and even when an error quotes it, nothing published holds it."""

    class LeakyBmc:
        async def get_power(self, bmc: BmcTarget, **_: object) -> object:
            raise RuntimeError(f"login as {bmc.credentials.username}/{password} refused")

    credentials = CredentialStore({"bmc": Credentials("admin", password)})
    tools = PollerTools(credentials, "g1", LeakyBmc())  # type: ignore[arg-type]
    published: list[bytes] = []
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    async def main() -> None:
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, conv.NAME, "#")
            await inbox.bind(rt.bus, events.NAME, "#")
            await rt.spawn(PollerActor, power_poller(623), tools, key="poller:p1")
            await trio.sleep(30)
            published.extend(orjson.dumps(d.payload, default=repr) for d in inbox.deliveries)

    handler = Capture(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        logging.getLogger().removeHandler(handler)
    assert len(published) >= 3  # command, failed result, inaccessible event
    assert not any(password.encode() in blob for blob in published)
    assert not any(password in line for line in records)


async def test_sel_and_sdr_pollers_against_ipmi_sim(tmp_path: pathlib.Path) -> None:
    port = free_udp_port()
    process = ipmi_peers.start_ipmi_sim(tmp_path, port)
    credentials = CredentialStore({"sim": Credentials(ipmi_peers.USER, ipmi_peers.PASSWORD)})
    try:
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, conv.NAME, "#")
            await start_pollers(rt, MemoryConfigStore(), credentials, timeout=10.0)
            sel = PollerDefinition(
                id="sel", type="ipmi", command="sel", nodeId="node-3", host="127.0.0.1",
                credentialsRef="sim", port=port, interval=60.0,
                alerts=[{"sensorType": "Power Supply", "event": "/Fail/", "severity": "critical"}],
            )  # fmt: skip
            await PollerClient(rt).create(sel)
            await PollerClient(rt).create(attrs.evolve(sel, id="sdr", command="sdr", alerts=[]))
            with trio.fail_after(60):
                while len([d for d in inbox.deliveries if "result" in d.routing_key]) < 2:
                    await trio.sleep(0.05)
    finally:
        stop(process)
    by_poller = {
        d.payload.pollerId: d.payload
        for d in inbox.deliveries
        if isinstance(d.payload, conv.IpmiCommandResult)
    }
    # the SEL's 3 entries were there before polling started: the baseline, not news
    assert by_poller["sel"].error is None and by_poller["sel"].result["entries"] == []
    assert {s["name"] for s in by_poller["sdr"].result} == {"MB Temp", "CPU Temp"}
    alerts = [d.payload for d in inbox.deliveries if isinstance(d.payload, conv.PollerAlert)]
    kinds = sorted((a.kind, a.severity) for a in alerts)
    # CPU Temp is above its non-critical threshold; the old power-supply failure in the SEL
    # does not alert (test_poller_sel_baseline covers a new one)
    assert kinds == [("sdr", "warning")]
