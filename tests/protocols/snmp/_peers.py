"""Real peers for the tests: net-snmp's snmpd on a free loopback port, its tools, and a silent
UDP peer that counts the datagrams it receives."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
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


class SilentPeer:
    """A UDP peer on loopback that never answers on its own and counts what it receives.

    Loopback delivers a datagram into the receive buffer during the sender's ``sendto``, so
    :meth:`drain` counts every datagram sent to it before the call.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> SilentPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        """The next datagram and its sender."""
        while True:
            try:
                data, sender = self.sock.recvfrom(65535)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)
            else:
                return data, sender

    def drain(self) -> int:
        """How many datagrams are waiting (they are discarded)."""
        count = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recvfrom(65535)
                count += 1
        return count

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """Send one datagram (at once: loopback never blocks a small one)."""
        self.sock.sendto(data, address)
