"""How the client sets up pysnmp's engine: an agent's address is resolved once, each target is
registered once (before it waits for an in-flight slot, without using up its timeout), and
requests never go through MIB resolution."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped, unused-ignore]
    UdpTransportTarget,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import (  # type: ignore[import-untyped, unused-ignore]
    CommandGeneratorLcdConfigurator,
)
from pysnmp.smi.rfc1902 import ObjectIdentity  # type: ignore[import-untyped, unused-ignore]

from protocols.snmp import (
    AuthenticationFailed,
    CommunityAuth,
    OctetString,
    SnmpClient,
    SnmpTarget,
    Timeout,
    UsmAuth,
    _pysnmp,
)

from ._peers import HOST, V3_PRIV_KEY, V3_USER

SYS_DESCR, SYS_LOCATION, SYSTEM = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.1"


class Registrations:
    """The credentials objects of every registration with a pysnmp engine, in order."""

    def __init__(self) -> None:
        self.auths: list[Any] = []
        self._added = trio.Event()

    def add(self, auth: Any) -> None:
        self.auths.append(auth)
        self._added.set()
        self._added = trio.Event()

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` registrations have been made."""
        while len(self.auths) < count:
            await self._added.wait()


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registrations]:
    seen = Registrations()
    configure = CommandGeneratorLcdConfigurator.configure

    def recording(self: Any, engine: Any, auth: Any, *args: Any, **kwargs: Any) -> Any:
        seen.add(auth)
        return configure(self, engine, auth, *args, **kwargs)

    monkeypatch.setattr(CommandGeneratorLcdConfigurator, "configure", recording)
    yield seen


async def test_requests_resolve_no_oid_against_mibs(
    snmp: SnmpClient, v2c: SnmpTarget, v3: SnmpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a request resolved an OID against a MIB")

    monkeypatch.setattr(ObjectIdentity, "resolve_with_mib", refuse)
    for target in (v2c, v3):
        (location,) = await snmp.get(target, SYS_LOCATION)
        assert location.value == OctetString(b"rack 7")
        (first,) = await snmp.get_next(target, SYSTEM)
        assert str(first.oid) == SYS_DESCR
        assert len(await snmp.walk(target, SYSTEM, max_repetitions=2)) > 5


async def test_a_target_is_registered_once_for_all_its_requests(
    snmp: SnmpClient, v2c: SnmpTarget, registrations: Registrations
) -> None:
    await snmp.get(v2c, SYS_DESCR)
    await snmp.walk(v2c, SYSTEM, max_repetitions=2)  # several GETBULKs
    await snmp.get_interfaces(v2c)
    assert len(registrations.auths) == 1
    other = SnmpTarget(HOST, CommunityAuth("another-community"), port=v2c.port)
    with pytest.raises(Timeout):  # snmpd ignores communities it does not know
        await snmp.get(other, SYS_DESCR, timeout=0.2, retries=0)
    await snmp.get(v2c, SYS_DESCR, timeout=0.5)  # other retransmission settings
    assert len(registrations.auths) == 3


async def test_a_new_target_is_registered_while_waiting_for_an_in_flight_slot(
    v2c: SnmpTarget, registrations: Registrations
) -> None:
    quiet_done = False
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind((HOST, 0))
        quiet = SnmpTarget(HOST, CommunityAuth("public"), port=silent.getsockname()[1])

        async def ask_quiet(snmp: SnmpClient) -> None:
            nonlocal quiet_done
            with contextlib.suppress(Timeout):
                await snmp.get(quiet, SYS_DESCR)
            quiet_done = True

        with trio.fail_after(10):  # a guard against hanging, not a speed check
            async with (
                SnmpClient(timeout=30.0, retries=0, max_in_flight=1) as snmp,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(ask_quiet, snmp)
                await silent.recv(2048)  # the quiet request is out: it holds the only slot
                nursery.start_soon(snmp.get, v2c, SYS_DESCR)
                await registrations.wait_for(2)
                assert not quiet_done
                nursery.cancel_scope.cancel()


async def test_registering_a_target_uses_none_of_its_requests_timeout(
    v2c: SnmpTarget, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    registering, go_on = trio.Event(), asyncio.Event()
    register = _pysnmp.register

    async def held_register(*args: Any) -> str:
        registering.set()
        await go_on.wait()
        return await register(*args)

    monkeypatch.setattr(_pysnmp, "register", held_register)
    answers = []
    async with SnmpClient(timeout=0.2, retries=0) as snmp, trio.open_nursery() as nursery:

        async def ask() -> None:
            answers.append(await snmp.get(v2c, SYS_LOCATION))

        nursery.start_soon(ask)
        await registering.wait()
        mock_clock.jump(10)  # far past the request's timeout, while it is still registering
        go_on.set()
    assert [vbs[0].value for vbs in answers] == [OctetString(b"rack 7")]


async def test_concurrent_first_requests_to_an_agent_resolve_it_once(
    v2c: SnmpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = []
    create = UdpTransportTarget.create.__func__

    async def counting(cls: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(args[0])
        return await create(cls, *args, **kwargs)

    monkeypatch.setattr(UdpTransportTarget, "create", classmethod(counting))
    communities = [CommunityAuth(f"community-{i}") for i in range(10)]
    async with SnmpClient(timeout=0.2, retries=0) as snmp, trio.open_nursery() as nursery:
        for auth in [v2c.auth] * 10 + communities:
            target = SnmpTarget(HOST, auth, port=v2c.port)
            nursery.start_soon(_ignore_timeout, snmp.get, target, SYS_DESCR)
    assert resolved == [(HOST, v2c.port)]


async def _ignore_timeout(ask: Any, *args: Any) -> None:
    with contextlib.suppress(Timeout):  # snmpd ignores communities it does not know
        await ask(*args)


async def test_a_v3_user_is_registered_again_when_its_keys_change(
    snmp: SnmpClient, v3: SnmpTarget
) -> None:
    wrong = SnmpTarget(HOST, UsmAuth(V3_USER, "not-the-auth-key", V3_PRIV_KEY), port=v3.port)
    for _ in range(2):
        (location,) = await snmp.get(v3, SYS_LOCATION)
        assert location.value == OctetString(b"rack 7")
        with pytest.raises(AuthenticationFailed):
            await snmp.get(wrong, SYS_LOCATION)
