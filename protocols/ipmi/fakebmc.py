"""Simulated BMCs for tests and benchmarks, built on pyghmi's BMC framework.

:class:`FakeBmc` answers power (get, on, off, cycle, reset, soft off), chassis status, boot
device and device id on a given address and port; SEL and sensors answer "invalid command".
pyghmi's client and server share process-wide state, so run the BMCs in their own process:
``python -m protocols.ipmi.fakebmc --port 9623 --count 1000`` (ports 9623-10622), or
:func:`open_fake_bmcs` from Trio, which starts that process and stops it on exit (and, should
the parent die first, the process stops when its stdin closes).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from pyghmi.ipmi import bmc as _bmc  # type: ignore[import-untyped, unused-ignore]
from pyghmi.ipmi.private import serversession as _serversession  # type: ignore[import-untyped, unused-ignore]
from pyghmi.ipmi.private import session as _session  # type: ignore[import-untyped, unused-ignore]

DEFAULT_USERS: Mapping[str, str] = {"admin": "password"}
_READY = "fakebmc ready"
_patched = False


def patch_cipher_suites() -> None:
    """Make pyghmi's BMC refuse every cipher suite but 3 (HMAC-SHA1), so clients fall back.

    As shipped it accepts a SHA-256 proposal but answers with SHA-1 algorithms, which makes
    pyghmi's own client crash during login. Idempotent.
    """
    global _patched
    if _patched:
        return
    original = _serversession.ServerSession.create_open_session_response

    def suite_3_only(self: Any, request: bytearray) -> Any:
        if request[12] != 1:  # proposed authentication algorithm is not HMAC-SHA1
            return bytearray([request[0], 0x11, 0, 0]) + request[4:8]  # no cipher suite match
        return original(self, request)

    _serversession.ServerSession.create_open_session_response = suite_3_only
    # A late datagram for a closed session is routed to the session object, which lacks
    # the handler for sessionless packets and would crash the serving loop: drop it.
    if not hasattr(_serversession.ServerSession, "sessionless_data"):
        _serversession.ServerSession.sessionless_data = lambda self, data, sockaddr: None
    _patched = True


class FakeBmc(_bmc.Bmc):  # type: ignore[misc]
    """One simulated BMC bound to ``address``:``port``, with users from ``users``."""

    def __init__(
        self,
        *,
        port: int,
        address: str = "127.0.0.1",
        users: Mapping[str, str] = DEFAULT_USERS,
        power_on: bool = False,
    ) -> None:
        patch_cipher_suites()
        super().__init__(dict(users), port, address=address)
        self.address = address
        self.powered = power_on
        self.boot_device = "default"
        self.power_requests: list[str] = []

    def get_power_state(self) -> str:
        return "on" if self.powered else "off"

    def power_on(self) -> None:
        self.power_requests.append("on")
        self.powered = True

    def power_off(self) -> None:
        self.power_requests.append("off")
        self.powered = False

    def power_cycle(self) -> int:
        self.power_requests.append("cycle")
        if not self.powered:
            return 0xD5  # "not supported in present state", as real BMCs answer when off
        return 0

    def power_reset(self) -> None:
        self.power_requests.append("reset")

    def power_shutdown(self) -> None:
        self.power_requests.append("soft")
        self.powered = False

    def get_boot_device(self) -> str:
        return self.boot_device

    def set_boot_device(self, bootdevice: str) -> None:
        self.boot_device = bootdevice

    def cold_reset(self) -> None:
        """Accept a BMC reset without doing anything."""

    def is_active(self) -> bool:
        return self.powered

    def stop(self) -> None:
        """Stop answering and release the port."""
        sock = self.serversocket
        _session.Session.bmc_handlers.pop(sock, None)
        if sock in _session.iosockets:
            _session.iosockets.remove(sock)
        sock.close()


def serve(stop: threading.Event, poll_interval: float = 0.2) -> None:
    """Answer requests for every :class:`FakeBmc` of this process until ``stop`` is set."""
    while not stop.is_set():
        try:
            _session.Session.wait_for_rsp(poll_interval)
        except Exception:  # one bad datagram must not stop the other BMCs
            traceback.print_exc()


def start_fake_bmcs(
    first_port: int,
    count: int = 1,
    *,
    address: str = "127.0.0.1",
    users: Mapping[str, str] = DEFAULT_USERS,
) -> list[FakeBmc]:
    """``count`` BMCs on consecutive ports from ``first_port``; call :func:`serve` to run them."""
    return [FakeBmc(port=first_port + i, address=address, users=users) for i in range(count)]


@attrs.define(eq=False)
class FakeBmcProcess:
    """A child process running fake BMCs on ``ports``; stop it with :meth:`stop`."""

    process: trio.Process
    address: str
    ports: tuple[int, ...]

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): the BMCs stop answering but keep their state."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Terminate the process and wait for it to exit."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            with trio.move_on_after(5) as scope:
                await self.process.wait()
            if scope.cancelled_caught:
                self.process.kill()
                await self.process.wait()


async def _wait_ready(process: trio.Process) -> None:
    assert process.stdout is not None
    buffer = b""
    while _READY.encode() not in buffer:
        chunk = await process.stdout.receive_some(4096)
        if not chunk:
            raise RuntimeError(f"fake BMC process exited early: {buffer.decode(errors='replace')}")
        buffer += chunk


@asynccontextmanager
async def open_fake_bmcs(
    first_port: int,
    count: int = 1,
    *,
    address: str = "127.0.0.1",
    users: Mapping[str, str] = DEFAULT_USERS,
    startup_timeout: float = 30.0,
) -> AsyncIterator[FakeBmcProcess]:
    """Run ``count`` fake BMCs (ports ``first_port``...) in a child process for the block."""
    args = [sys.executable, "-m", "protocols.ipmi.fakebmc", "--address", address]
    args += ["--port", str(first_port), "--count", str(count), "--stop-on-eof"]
    for user, password in users.items():
        args += ["--user", f"{user}:{password}"]
    # the child's stdin is a pipe from us: if we die without stopping it, it sees EOF and stops
    process = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    handle = FakeBmcProcess(process, address, tuple(range(first_port, first_port + count)))
    try:
        with trio.fail_after(startup_timeout):
            await _wait_ready(process)
        yield handle
    finally:
        with trio.CancelScope(shield=True):
            await handle.stop()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve fake BMCs until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m protocols.ipmi.fakebmc", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9623, help="port of the first BMC")
    parser.add_argument("--count", type=int, default=1, help="number of BMCs (consecutive ports)")
    parser.add_argument(
        "--user", action="append", default=[], help="USER:PASSWORD (default admin:password)"
    )
    parser.add_argument(
        "--stop-on-eof",
        action="store_true",
        help="stop when stdin closes (for a parent that may die without stopping us)",
    )
    args = parser.parse_args(argv)
    users = dict(u.split(":", 1) for u in args.user) if args.user else dict(DEFAULT_USERS)
    start_fake_bmcs(args.port, args.count, address=args.address, users=users)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.stop_on_eof:

        def stop_at_eof() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            stop.set()

        threading.Thread(target=stop_at_eof, name="fakebmc stdin", daemon=True).start()
    print(f"{_READY} {args.address} {args.port} {args.count}", flush=True)
    serve(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
