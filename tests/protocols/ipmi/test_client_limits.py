"""The facade's bounds: every call has a finite deadline, and sessions do not pile up."""

from __future__ import annotations

import contextlib
import math

import pytest

from protocols.ipmi import BmcTarget, Credentials, IpmiClient, PowerState
from protocols.ipmi import _client as client_module
from protocols.ipmi.fakebmc import open_fake_bmcs
from tests.peers import free_udp_port

from ._peers import HOST, PASSWORD, USER


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.nan, math.inf])
async def test_a_timeout_that_is_no_finite_deadline_is_refused(timeout: float) -> None:
    """``IpmiClient(timeout=nan)`` would make every call raise ``ValueError`` from Trio, and
    ``inf`` would let a call to a silent BMC wait forever: both are refused, as is such a
    timeout on one call."""
    with pytest.raises(ValueError, match="timeout"):
        IpmiClient(timeout=timeout)
    async with IpmiClient(timeout=1) as ipmi:
        with pytest.raises(ValueError, match="timeout"):
            await ipmi.get_power(BmcTarget(HOST, Credentials(USER, PASSWORD)), timeout=timeout)
    assert ipmi.statistics().calls == 0


async def test_sessions_idle_past_the_limit_are_closed_and_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BMC nobody polls any more (its poller was deleted) does not keep a session in
    the client for the life of the process: sessions idle past ``SESSION_IDLE_LIMIT``
    are dropped when the client is next used."""
    monkeypatch.setattr(client_module, "SESSION_IDLE_LIMIT", 0.0)  # idle at once
    ports = [free_udp_port() for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        # One process per BMC: a process of several fake BMCs mixes up their sessions
        # when one client socket logs in again to one of them.
        for port in ports:
            await stack.enter_async_context(open_fake_bmcs(port))
        ipmi = await stack.enter_async_context(IpmiClient(timeout=5))
        bmcs = [BmcTarget(HOST, Credentials(USER, PASSWORD), port=port) for port in ports]
        for bmc in bmcs:
            assert await ipmi.get_power(bmc) == PowerState(on=False)
        assert ipmi.statistics().sessions == 1  # the last one's; the others were forgotten
        monkeypatch.undo()
        for bmc in bmcs:
            assert await ipmi.get_power(bmc) == PowerState(on=False)
        assert ipmi.statistics().sessions == 3
