"""Fixtures that start snmpd on a free loopback port and stop it afterwards."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from protocols.snmp import CommunityAuth, SnmpClient, SnmpTarget, UsmAuth
from tests.peers import free_udp_port, stop

from ._peers import COMMUNITY, HOST, V3_AUTH_KEY, V3_PRIV_KEY, V3_USER, start_snmpd


@pytest.fixture
def snmpd_port(tmp_path: pathlib.Path) -> Iterator[int]:
    port = free_udp_port()
    process = start_snmpd(tmp_path, port)
    try:
        yield port
    finally:
        stop(process)


@pytest.fixture
def v2c(snmpd_port: int) -> SnmpTarget:
    return SnmpTarget(HOST, CommunityAuth(COMMUNITY), port=snmpd_port)


@pytest.fixture
def v3(snmpd_port: int) -> SnmpTarget:
    return SnmpTarget(HOST, UsmAuth(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY), port=snmpd_port)


@pytest.fixture
async def snmp() -> AsyncIterator[SnmpClient]:
    async with SnmpClient(timeout=1.0, retries=1) as client:
        yield client
