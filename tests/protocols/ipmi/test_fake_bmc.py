"""The facade against pyghmi's BMC framework (protocols.ipmi.fakebmc), checked with ipmitool."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import trio

from protocols.ipmi import (
    AuthenticationFailed,
    BmcError,
    BmcTarget,
    BootDevice,
    Credentials,
    IpmiClient,
    PowerAction,
    PowerState,
    Timeout,
    Unreachable,
    Unsupported,
)
from protocols.ipmi.fakebmc import open_fake_bmcs
from tests.peers import free_udp_port

from ._peers import HOST, PASSWORD, USER, free_udp_ports, ipmitool


def target(port: int, password: str = PASSWORD) -> BmcTarget:
    return BmcTarget(HOST, Credentials(USER, password), port=port)


async def test_power_set_by_facade_agrees_with_ipmitool(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        bmc = target(port)
        assert await ipmi.get_power(bmc) == PowerState(on=False)
        await ipmi.set_power(bmc, PowerAction.ON)
        assert await ipmi.get_power(bmc) == PowerState(on=True)
        assert "Chassis Power is on" in await ipmitool(port, "power", "status")
        assert (await ipmi.get_chassis_status(bmc)).power_on
        await ipmi.set_power(bmc, PowerAction.OFF)
        assert "Chassis Power is off" in await ipmitool(port, "power", "status")
        assert await ipmi.get_power(bmc) == PowerState(on=False)


async def test_power_set_by_ipmitool_seen_by_facade(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        await ipmitool(port, "power", "on")
        assert await ipmi.get_power(target(port)) == PowerState(on=True)


async def test_cycle_reset_and_soft_off(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        bmc = target(port)
        with pytest.raises(
            BmcError
        ) as caught:  # the fake BMC refuses to cycle a chassis that is off
            await ipmi.set_power(bmc, PowerAction.CYCLE)
        assert caught.value.code == 0xD5
        await ipmi.set_power(bmc, PowerAction.ON)
        await ipmi.set_power(bmc, PowerAction.CYCLE)
        await ipmi.set_power(bmc, PowerAction.RESET)
        await ipmi.set_power(bmc, PowerAction.SOFT)
        assert await ipmi.get_power(bmc) == PowerState(on=False)


async def test_boot_device_round_trip(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        bmc = target(port)
        assert (await ipmi.get_boot_device(bmc)).device == "default"
        await ipmi.set_boot_device(bmc, "pxe")
        assert await ipmi.get_boot_device(bmc) == BootDevice("network")
        await ipmi.set_boot_device(bmc, "hd")
        assert (await ipmi.get_boot_device(bmc)).device == "hd"
        with pytest.raises(ValueError, match="unknown boot device"):
            await ipmi.set_boot_device(bmc, "tape")


async def test_device_id_and_unsupported_commands(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        bmc = target(port)
        device = await ipmi.get_device_id(bmc)
        assert device.ipmi_version == "2.0"
        assert device.firmware_version == "1.00"
        with pytest.raises(Unsupported):  # pyghmi's framework has no SEL
            await ipmi.get_sel(bmc)


async def test_wrong_password_is_authentication_failed(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port):
        secret = "not-the-Pa55word"
        with pytest.raises(AuthenticationFailed) as caught:
            await ipmi.get_power(target(port, secret))
        assert secret not in str(caught.value) and secret not in repr(caught.value)
        assert await ipmi.get_power(target(port)) == PowerState(on=False)  # right one still works


async def test_nothing_listening_fails_before_the_deadline(ipmi: IpmiClient) -> None:
    with pytest.raises((Timeout, Unreachable)), trio.fail_after(10):  # never hangs
        await ipmi.get_power(target(free_udp_port()), timeout=1.0)


async def test_bmc_that_stops_answering_then_comes_back(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    bmc = target(port)
    async with open_fake_bmcs(port) as fake:
        await ipmi.set_power(bmc, PowerAction.ON)
        fake.pause()
        with pytest.raises((Timeout, Unreachable)), trio.fail_after(10):
            await ipmi.get_power(bmc, timeout=1.5)
        await fake.stop()  # a new BMC process: the old session is unknown to it
    async with open_fake_bmcs(port):
        assert await ipmi.get_power(bmc, timeout=5) == PowerState(on=False)
        assert await ipmi.get_power(bmc, timeout=5) == PowerState(on=False)
    stats = ipmi.statistics()
    assert stats.logins == 2 and stats.timeouts >= 1


async def test_paused_bmc_resumes_with_a_fresh_session(ipmi: IpmiClient) -> None:
    port = free_udp_port()
    bmc = target(port)
    async with open_fake_bmcs(port) as fake:
        await ipmi.set_power(bmc, PowerAction.ON)
        fake.pause()
        with pytest.raises(Timeout):
            await ipmi.get_power(bmc, timeout=1.0)
        fake.resume()
        assert await ipmi.get_power(bmc, timeout=5) == PowerState(on=True)
    assert ipmi.statistics().logins == 2


async def test_concurrent_calls_share_one_session_per_bmc(ipmi: IpmiClient) -> None:
    first = free_udp_ports(3)
    async with open_fake_bmcs(first, count=3):
        bmcs = [target(first + i) for i in range(3)]
        results: list[PowerState] = []

        async def poll(bmc: BmcTarget) -> None:
            results.append(await ipmi.get_power(bmc))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                for bmc in bmcs:
                    nursery.start_soon(poll, bmc)
        assert results == [PowerState(on=False)] * 30
        stats = ipmi.statistics()
        assert stats.sessions == 3 and stats.logins == 3 and stats.calls == 30


async def test_a_new_password_never_reuses_the_old_login() -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port), IpmiClient(timeout=5) as ipmi:
        await ipmi.get_power(target(port))
        with pytest.raises(AuthenticationFailed):
            await ipmi.get_power(target(port, "changed-password"))
        assert ipmi.statistics().sessions == 1


async def test_own_thread_limiter_bounds_the_workers() -> None:
    first = free_udp_ports(3)
    limiter = trio.CapacityLimiter(1)
    async with open_fake_bmcs(first, count=3), IpmiClient(limiter=limiter, timeout=5) as ipmi:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(ipmi.get_power, target(first + i))
        assert limiter.borrowed_tokens == 0 and ipmi.statistics().logins == 3


async def test_the_process_stops_when_its_parent_goes_away() -> None:
    """A parent killed without stopping the BMCs closes their stdin: they stop, ports freed."""
    port = free_udp_port()
    args = [sys.executable, "-m", "protocols.ipmi.fakebmc", "--port", str(port), "--stop-on-eof"]
    process = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdin is not None and process.stdout is not None
        with trio.fail_after(30):
            ready = b""
            while b"fakebmc ready" not in ready:
                chunk = await process.stdout.receive_some()
                assert chunk, "the fake BMC process died before it was ready"
                ready += chunk
            await process.stdin.aclose()  # as when the parent dies
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def test_sessions_leave_the_process_random_generator_alone(ipmi: IpmiClient) -> None:
    """pyghmi's sessions draw their jitter from a generator of their own, so logging in and
    polling never moves ``random``'s shared state (a seeded run, a property test's draws)."""
    port = free_udp_port()
    state = random.getstate()
    async with open_fake_bmcs(port):
        bmc = target(port)
        assert await ipmi.get_power(bmc) == PowerState(on=False)
        await ipmi.set_power(bmc, PowerAction.ON)
        assert await ipmi.get_power(bmc) == PowerState(on=True)
    assert random.getstate() == state
