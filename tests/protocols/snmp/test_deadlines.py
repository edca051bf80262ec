"""How long a request may take: the timeout covers the exchange with the agent only, the wait
for an in-flight slot has its own bound, and nothing is sent for a request once it is given up.
"""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

from protocols.snmp import (
    CommunityAuth,
    OctetString,
    Overloaded,
    SnmpClient,
    SnmpTarget,
    Timeout,
    VarBind,
)

from ._peers import HOST, SilentPeer

SYS_DESCR, SYS_LOCATION = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.6.0"


def _target(peer: SilentPeer) -> SnmpTarget:
    return SnmpTarget(HOST, CommunityAuth("public"), port=peer.port)


async def test_a_request_that_times_out_sends_exactly_its_tries() -> None:
    with SilentPeer() as silent, trio.fail_after(10):
        async with SnmpClient(timeout=0.1, retries=3) as snmp:
            with pytest.raises(Timeout):
                await snmp.get(_target(silent), SYS_DESCR)
        assert silent.drain() == 4


async def test_nothing_is_sent_for_a_request_once_its_caller_gives_up() -> None:
    with SilentPeer() as abandoned, SilentPeer() as reference, trio.fail_after(10):
        async with SnmpClient(timeout=0.1, retries=4) as snmp:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(snmp.get, _target(abandoned), SYS_DESCR)
                await abandoned.receive()  # the first try is out
                nursery.cancel_scope.cancel()
            # A later request on the same schedule: once it has timed out, every retransmission
            # of the abandoned one would have been sent too.
            with pytest.raises(Timeout):
                await snmp.get(_target(reference), SYS_DESCR)
            assert reference.drain() == 5
            assert abandoned.drain() == 0


async def test_waiting_for_an_in_flight_slot_uses_none_of_the_timeout(
    v2c: SnmpTarget, mock_clock: trio.testing.MockClock
) -> None:
    answers: list[tuple[VarBind, ...]] = []
    with SilentPeer() as silent:
        async with (
            SnmpClient(timeout=0.2, retries=0, max_in_flight=1) as snmp,
            trio.open_nursery() as nursery,
        ):
            await snmp.get(v2c, SYS_LOCATION)  # registered: the next request goes to the slot
            holder = trio.CancelScope()

            async def hold_the_slot() -> None:
                with holder, contextlib.suppress(Timeout):
                    await snmp.get(_target(silent), SYS_DESCR, timeout=30.0)

            async def ask() -> None:
                answers.append(await snmp.get(v2c, SYS_LOCATION))

            nursery.start_soon(hold_the_slot)
            await silent.receive()  # the quiet request is out: it holds the only slot
            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()  # waiting for the slot
            mock_clock.jump(5)  # far past the waiting request's timeout
            holder.cancel()
    assert [vbs[0].value for vbs in answers] == [OctetString(b"rack 7")]


async def test_a_request_that_finds_no_free_slot_in_time_fails_as_overloaded(
    mock_clock: trio.testing.MockClock,
) -> None:
    with SilentPeer() as silent:
        async with (
            SnmpClient(timeout=30.0, retries=0, max_in_flight=1, slot_timeout=2.0) as snmp,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(snmp.get, _target(silent), SYS_DESCR)
            await silent.receive()  # it holds the only slot for up to 30 s
            mock_clock.autojump_threshold = 0
            start = trio.current_time()
            with pytest.raises(Overloaded) as caught:
                await snmp.get(_target(silent), SYS_LOCATION)
            assert 2.0 <= trio.current_time() - start < 30  # its slot bound, not the other's
            nursery.cancel_scope.cancel()
        assert silent.drain() == 0  # only the first request was ever sent
    assert str(caught.value) == (
        f"{HOST}:{silent.port}: no in-flight slot free within 2 s (all 1 taken);"
        " the agent was not asked"
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"max_in_flight": 0},
        {"max_rows": 0},
        {"timeout": 0.0},
        {"slot_timeout": -1.0},
        {"retries": -1},
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SnmpClient(**settings)  # type: ignore[arg-type]
