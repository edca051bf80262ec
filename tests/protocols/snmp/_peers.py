"""A real SNMP agent for the tests: net-snmp's snmpd on a free loopback port, plus its tools."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

import trio

from tests.peers import require, stop, udp_bound

HOST = "127.0.0.1"
COMMUNITY = "rb-community-7x"
V3_USER, V3_AUTH_KEY, V3_PRIV_KEY = "rbuser", "auth-key-123", "priv-key-456"

SNMPD_CONF = """agentAddress udp:127.0.0.1:{port}
rocommunity {community} 127.0.0.1
createUser {user} SHA "{auth}" AES "{priv}"
rouser {user} priv
sysLocation rack 7
sysContact ops@example.com
"""


def start_snmpd(directory: pathlib.Path, port: int) -> subprocess.Popen[bytes]:
    """Write snmpd.conf into ``directory`` and run snmpd in the foreground on ``port``."""
    binary = require("snmpd", "snmpd")
    conf = directory / "snmpd.conf"
    conf.write_text(
        SNMPD_CONF.format(
            port=port, community=COMMUNITY, user=V3_USER, auth=V3_AUTH_KEY, priv=V3_PRIV_KEY
        )
    )
    persistent = directory / "persist"
    persistent.mkdir()
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persistent)}
    args = [binary, "-f", "-C", "-c", str(conf), "-Lf", str(directory / "snmpd.log")]
    args += ["-p", str(directory / "snmpd.pid")]
    process = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not udp_bound(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            log = (directory / "snmpd.log").read_text(errors="replace")
            raise RuntimeError(f"snmpd did not start on port {port}: {log[-2000:]}")
        time.sleep(0.02)
    return process


async def net_snmp(tool: str, port: int, *args: str) -> list[str]:
    """Run a net-snmp tool (v2c, numeric OIDs) against the agent; its output lines."""
    binary = require(tool, "snmp")
    command = [binary, "-v2c", "-c", COMMUNITY, "-On", "-Oe", f"{HOST}:{port}", *args]
    done = await trio.run_process(
        command, capture_stdout=True, capture_stderr=True, env={**os.environ, "MIBS": ""}
    )
    return done.stdout.decode().splitlines()
