"""Alerts raised while the bus cannot take them wait in a bounded buffer, in order."""

from __future__ import annotations

import datetime
import itertools
import logging

import pytest
import trio

from actors.exchanges import task as conv
from actors.pollers.credentials import CredentialStore
from actors.pollers.poller import PollerActor, PollerTools
from protocols.ipmi import BmcTarget, Credentials, PowerState
from runtime import Runtime
from runtime.testing import Inbox
from tests.actors.test_poller_failures import OutageBus, definition

SECRET = "Zq8-secret-77"


class Flipping:
    """A stand-in BMC whose power flips at every read: each round after the first alerts."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_power(self, bmc: BmcTarget, **_: object) -> PowerState:
        self.calls += 1
        return PowerState(on=self.calls % 2 == 0)


async def run_outage(buffer: int, outage: float) -> tuple[list[str], int, int]:
    """Poll every second through an outage of ``outage`` seconds, then 3 rounds more; the
    stamps of the alerts published (each round's stamp is one second after the last),
    how many rounds ran during the outage, and the poller's count of dropped alerts."""
    bus = OutageBus()
    bmc = Flipping()
    ticks = itertools.count(1_000_000_000)
    tools = PollerTools(
        CredentialStore({"bmc": Credentials("admin", SECRET)}), "g1", bmc,  # type: ignore[arg-type]
        clock=lambda: float(next(ticks)), max_pending_alerts=buffer,
    )  # fmt: skip
    async with Runtime(bus) as rt:
        alerts = Inbox()
        await alerts.bind(rt.bus, conv.NAME, "poller.alert.#")
        bus.down = True
        await rt.spawn(PollerActor, definition(), tools, key="poller:p1")
        await trio.sleep(outage)
        rounds_during_outage = bmc.calls
        bus.down = False
        await trio.sleep(3.4)
        cell = rt.registry.get("poller:p1")
        assert cell is not None and isinstance(cell.actor, PollerActor)
        dropped = cell.actor.alerts_dropped
    return [d.payload.timestamp for d in alerts.deliveries], rounds_during_outage, dropped


def consecutive(stamps: list[str]) -> bool:
    """Whether the stamps are one second apart, in order: one per round, none missing."""
    seconds = [datetime.datetime.fromisoformat(s).timestamp() for s in stamps]
    return all(b - a == 1 for a, b in itertools.pairwise(seconds))


async def test_alerts_raised_during_an_outage_are_published_in_order_afterwards(
    autojump_clock: object,
) -> None:
    """Every alert raised while publishing failed goes out, oldest first, once it works
    again, followed by the alerts of the rounds after."""
    stamps, rounds, dropped = await run_outage(buffer=100, outage=5.5)
    assert (rounds, dropped) == (6, 0)
    assert len(stamps) == rounds - 1 + 3  # no alert on the first round; 3 rounds after
    assert consecutive(stamps)


async def test_a_full_alert_buffer_drops_the_oldest_and_logs_how_many(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Past its bound, the buffer drops its oldest alerts; the log says how many, and
    holds no secret."""
    caplog.set_level(logging.INFO)
    stamps, rounds, dropped = await run_outage(buffer=2, outage=9.5)
    raised = rounds - 1
    assert (raised, dropped) == (9, 7)
    assert len(stamps) == 2 + 3  # the 2 newest of the outage, then 3 rounds after
    assert consecutive(stamps)
    assert "dropped 7 alerts" in caplog.text
    assert SECRET not in caplog.text
