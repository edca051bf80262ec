"""Two network namespaces joined by a veth pair, made and removed by the test.

DHCP clients broadcast; to test them against our server without touching the
machine's own networks, the server side lives in one namespace and the client
in another. ``socket_in`` opens a socket inside a namespace from this process
(a socket stays in the namespace it was made in), so the server under test can
run in the test's own Trio loop.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

from tests import peers

CLONE_NEWNET = 0x40000000


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command, its output captured as text."""
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def require(*programs: str) -> None:
    """Fail (never skip) when a peer program is missing."""
    for program in programs:
        peers.require(program)


@attrs.frozen
class VethLink:
    """Server namespace ``server_ns`` (``server_if`` with ``server_ip``) and client side."""

    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    server_ip: str
    client_ip: str
    prefix: int

    def in_client(self, *args: str) -> list[str]:
        """A command line that runs in the client namespace."""
        return ["ip", "netns", "exec", self.client_ns, *args]

    def in_server(self, *args: str) -> list[str]:
        """A command line that runs in the server namespace."""
        return ["ip", "netns", "exec", self.server_ns, *args]


@contextmanager
def veth_link(
    server_ip: str = "10.64.0.1", client_ip: str = "10.64.0.2", prefix: int = 24
) -> Iterator[VethLink]:
    """Create two namespaces joined by veth; the client side gets ``client_ip`` only if asked.

    The client interface stays without an address unless ``client_ip`` is used
    by the caller (a relay needs one, a DHCP client must not have one).
    """
    require("ip")
    tag = secrets.token_hex(3)
    link = VethLink(
        server_ns=f"rbs-{tag}",
        client_ns=f"rbc-{tag}",
        server_if=f"rbs{tag}",
        client_if=f"rbc{tag}",
        server_ip=server_ip,
        client_ip=client_ip,
        prefix=prefix,
    )
    try:
        run("ip", "netns", "add", link.server_ns)
        run("ip", "netns", "add", link.client_ns)
        run(
            "ip", "link", "add", link.server_if, "netns", link.server_ns,
            "type", "veth", "peer", "name", link.client_if, "netns", link.client_ns,
        )  # fmt: skip
        for ns, ifname in ((link.server_ns, link.server_if), (link.client_ns, link.client_if)):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", ifname, "up")
        address = f"{server_ip}/{prefix}"
        run("ip", "-n", link.server_ns, "addr", "add", address, "dev", link.server_if)
        yield link
    finally:
        run("ip", "netns", "del", link.server_ns, check=False)
        run("ip", "netns", "del", link.client_ns, check=False)


def add_client_address(link: VethLink) -> None:
    """Give the client interface its address (for a relay such as perfdhcp)."""
    run(
        "ip", "-n", link.client_ns, "addr", "add", f"{link.client_ip}/{link.prefix}",
        "dev", link.client_if,
    )  # fmt: skip


def in_namespace(ns: str, make: Callable[[], socket.socket]) -> socket.socket:
    """Call ``make`` in a thread that has joined namespace ``ns``; the socket stays there."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def enter_and_make() -> None:
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns({ns}): {os.strerror(errno)}")
            result.append(make())
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter_and_make)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
