"""What every test with a real peer needs: the peer's binary, a free port, a clean stop."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess

import pytest

LOOPBACK = "127.0.0.1"


def require(binary: str, package: str | None = None) -> str:
    """The path of a peer binary; a missing one fails the test loudly (never a skip)."""
    path = shutil.which(binary)
    if path is None:
        hint = f"apt-get install {package}" if package else "scripts/run-tests.sh installs it"
        pytest.fail(f"{binary} is not installed ({hint}); this test needs it")
    return path


def free_udp_port(host: str = LOOPBACK) -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def udp_bound(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (read from /proc/net/udp)."""
    wanted = f"0100007F:{port:04X}"
    lines = pathlib.Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1] == wanted for line in lines)


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate ``process`` (kill it after ``grace`` seconds) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
