"""Fixtures that start real IPMI peers on free loopback ports and stop them afterwards."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from protocols.ipmi import BmcTarget, Credentials, IpmiClient
from tests.peers import free_udp_port, stop

from ._peers import HOST, PASSWORD, USER, start_ipmi_sim


@pytest.fixture
def ipmi_sim(tmp_path: pathlib.Path) -> Iterator[BmcTarget]:
    """An OpenIPMI ipmi_sim BMC with two threshold sensors and three SEL entries."""
    port = free_udp_port()
    process = start_ipmi_sim(tmp_path, port)
    try:
        yield BmcTarget(HOST, Credentials(USER, PASSWORD), port=port)
    finally:
        stop(process)


@pytest.fixture
async def ipmi() -> AsyncIterator[IpmiClient]:
    async with IpmiClient(timeout=10) as client:
        yield client
