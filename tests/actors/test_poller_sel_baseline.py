"""The SEL poller's first read sets a baseline: the log already there is not news."""

from __future__ import annotations

import pathlib
from typing import Any

import attrs
import trio

from actors.exchanges import task as conv
from actors.pollers.credentials import CredentialStore
from actors.pollers.definitions import PollerDefinition
from actors.pollers.poller import PollerActor, PollerTools, Resume
from protocols.ipmi import BmcTarget, Credentials, SelEntry, SelSince
from runtime import Runtime
from runtime.testing import Inbox
from tests.protocols.ipmi import _peers as ipmi_peers

from ._ipmi_sim import polling_ipmi_sim

CREDENTIALS = Credentials("admin", "Zq8-secret-77")
FAILURE_RULE = {"sensorType": "Power Supply", "severity": "critical"}


def sel_poller(**changes: Any) -> PollerDefinition:
    base = PollerDefinition(
        id="p1", type="ipmi", command="sel", nodeId="node-1", host="127.0.0.1",
        credentialsRef="bmc", interval=60.0, port=623, alerts=[FAILURE_RULE],
    )  # fmt: skip
    return attrs.evolve(base, **changes)


def failure(record_id: int) -> SelEntry:
    return SelEntry(record_id, 0x02, b"", sensor_type_name="Power Supply")


class ScriptedSel:
    """A stand-in BMC whose SEL the test edits between rounds."""

    def __init__(self, entries: list[SelEntry]) -> None:
        self.entries = entries

    async def get_sel(self, bmc: BmcTarget, **_: object) -> tuple[SelEntry, ...]:
        return tuple(self.entries)

    async def get_sel_since(self, bmc: BmcTarget, record_id: int, **_: object) -> SelSince:
        ids = [e.record_id for e in self.entries]
        if record_id not in ids:
            last = self.entries[-1].record_id if self.entries else None
            return SelSince(tuple(self.entries), True, last)
        after = tuple(e for e in self.entries if e.record_id > record_id)
        return SelSince(after, False, after[-1].record_id if after else record_id)


async def sel_rounds(bmc: ScriptedSel, edits: list[list[SelEntry] | None]) -> list[Any]:
    """Run one round per edit (``None``: leave the SEL as it is); each round's result and
    alerts, as ``(result, [alert record ids])``."""
    tools = PollerTools(CredentialStore({"bmc": CREDENTIALS}), "g1", bmc)  # type: ignore[arg-type]
    rounds: list[Any] = []
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, conv.NAME, "ipmi.command.sel.result.#")
        alerts = Inbox()
        await alerts.bind(rt.bus, conv.NAME, "poller.alert.#")
        ref = await rt.spawn(PollerActor, sel_poller(), tools, key="poller:p1")
        for count, edit in enumerate(edits, 1):
            if edit is not None:
                bmc.entries = edit
            if count > 1:
                await rt.tell(ref, Resume())
            await inbox.wait_for(count, timeout=30)
            await trio.sleep(1)  # the round's alerts follow its result
            rounds.append(
                (
                    inbox.deliveries[-1].payload.result,
                    [a.payload.data["recordId"] for a in alerts.deliveries],
                )
            )
            alerts.deliveries.clear()
    return rounds


async def test_the_first_sel_read_sets_a_baseline_without_alerts(autojump_clock: object) -> None:
    """Entries already in the SEL when polling starts are neither published as new nor
    alerted on (RackHD read entries after ``lastPreviouslyReadSelEntry``); entries that
    appear afterwards are."""
    bmc = ScriptedSel([failure(1), failure(2)])
    first, second = await sel_rounds(bmc, [None, [failure(1), failure(2), failure(3)]])
    assert first == ({"entries": [], "reset": False, "baseline": True}, [])
    entries, alerted = second
    assert [e["record_id"] for e in entries["entries"]] == [3] and not entries["baseline"]
    assert alerted == [3]


async def test_entries_after_an_empty_first_read_are_reported(autojump_clock: object) -> None:
    """A SEL empty at the first read sets an empty baseline: every entry that appears
    later is new, and alerts."""
    bmc = ScriptedSel([])
    first, second, third = await sel_rounds(bmc, [None, [failure(1)], [failure(1), failure(2)]])
    assert first == ({"entries": [], "reset": False, "baseline": True}, [])
    assert [e["record_id"] for e in second[0]["entries"]] == [1] and second[1] == [1]
    assert [e["record_id"] for e in third[0]["entries"]] == [2] and third[1] == [2]


async def test_entries_logged_after_a_clear_are_reported(autojump_clock: object) -> None:
    """After the SEL is cleared (``reset``), entries logged later are new: the poller does
    not take a second baseline."""
    bmc = ScriptedSel([failure(1)])
    rounds = await sel_rounds(bmc, [None, [], [failure(1)]])
    assert [r[0]["reset"] for r in rounds] == [False, True, False]
    assert [e["record_id"] for e in rounds[2][0]["entries"]] == [1] and rounds[2][1] == [1]


async def test_a_new_sel_entry_on_ipmi_sim_alerts_and_the_old_ones_do_not(
    tmp_path: pathlib.Path,
) -> None:
    """Against ipmi_sim, whose SEL holds a power-supply failure at start: the first round
    reports no entry and no alert; an entry added afterwards (Add SEL Entry) is reported
    and alerts once."""
    async with polling_ipmi_sim(tmp_path, "sel") as sim:
        inbox, rt = sim.results, sim.rt
        alerts = Inbox()
        await alerts.bind(rt.bus, conv.NAME, "poller.alert.#")
        definition = sel_poller(credentialsRef="sim", port=sim.port, interval=3600.0)
        ref = await rt.spawn(PollerActor, definition, sim.tools, key="poller:p1")
        await inbox.wait_for(1, timeout=30)
        record = ipmi_peers.SEL_RECORDS[1].split()  # the power supply failure
        await ipmi_peers.ipmitool(sim.port, "raw", "0x0a", "0x44", "0", "0", "0x02", *record)
        await rt.tell(ref, Resume())
        await inbox.wait_for(2, timeout=30)
        await alerts.wait_for(1, timeout=30)
    first, second = (d.payload.result for d in inbox.deliveries)
    assert first == {"entries": [], "reset": False, "baseline": True}
    assert [e["sensor_type_name"] for e in second["entries"]] == ["Power Supply"]
    (alert,) = alerts.deliveries
    assert alert.payload.severity == "critical"
    assert alert.payload.data["recordId"] == second["entries"][0]["record_id"]
