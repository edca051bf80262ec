"""A poller's rig against a real BMC: ipmi_sim on a free loopback port, a runtime, an IPMI
client and the poller tools whose credentials ref ``"sim"`` logs into it."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator

import attrs

from actors.exchanges import task as conv
from actors.pollers.credentials import CredentialStore
from actors.pollers.poller import PollerTools
from protocols.ipmi import Credentials, IpmiClient
from runtime import Runtime
from runtime.testing import Inbox
from tests.peers import free_udp_port, stop
from tests.protocols.ipmi import _peers as ipmi_peers


@attrs.frozen
class SimRig:
    rt: Runtime
    client: IpmiClient
    tools: PollerTools
    port: int
    creds: Credentials
    #: the poller results (``ipmi.command.<command>.result``) published meanwhile
    results: Inbox


@contextlib.asynccontextmanager
async def polling_ipmi_sim(tmp_path: pathlib.Path, command: str) -> AsyncIterator[SimRig]:
    port = free_udp_port()
    process = ipmi_peers.start_ipmi_sim(tmp_path, port)
    creds = Credentials(ipmi_peers.USER, ipmi_peers.PASSWORD)
    try:
        async with Runtime() as rt, IpmiClient(timeout=10) as client:
            results = Inbox()
            await results.bind(rt.bus, conv.NAME, f"ipmi.command.{command}.result.#")
            tools = PollerTools(CredentialStore({"sim": creds}), "g1", client, timeout=10.0)
            yield SimRig(rt, client, tools, port, creds, results)
    finally:
        stop(process)
