"""The TFTP server under adverse conditions: stopped mid-transfer, content and commits that
fail, stray packets during negotiation, a full send buffer at the end of a transfer, hosts with
several addresses and IPv6 link-local clients. One request that goes wrong fails that transfer,
with an ERROR and a ``TransferFailed``; it never ends ``serve``.

Traffic goes to 127.0.0.1, or stays inside network namespaces the test makes (``netns``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import secrets
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import cast

import pytest
import trio

from protocols.tftp import (
    Data,
    DirectoryRoot,
    GeneratedContent,
    OptionAck,
    ServerConfig,
    ServerTransfer,
    TftpServer,
    TransferEvent,
    TransferFailed,
    TransferOptions,
    TransferState,
    WritableRoot,
    WriteRequest,
    decode,
    encode,
)
from protocols.tftp._dataplane import DataPlane

from .link import Sink

CLONE_NEWNET = 0x40000000


def rrq(name: str, **options: object) -> bytes:
    fields = [name, "octet"] + [f"{key}\0{value}" for key, value in options.items()]
    return b"\0\1" + "\0".join(fields).encode() + b"\0"


def wrq(name: str) -> bytes:
    return b"\0\2" + name.encode() + b"\0octet\0"


@contextlib.asynccontextmanager
async def serving(server: TftpServer) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield port
        nursery.cancel_scope.cancel()


async def udp_client() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


async def still_serves(port: int) -> None:
    """A fresh read of ``f511`` gets its first (and last) block."""
    sock = await udp_client()
    with sock:
        await sock.sendto(rrq("f511"), ("127.0.0.1", port))
        data, remote = await sock.recvfrom(2048)
        assert data[:4] == b"\0\3\0\1" and len(data) == 4 + 511
        await sock.sendto(b"\0\4\0\1", remote)


# -- the data plane and the Trio server ------------------------------------------------------------


async def test_stopping_the_server_reports_the_transfers_it_aborts(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """A transfer cut short because ``serve`` is cancelled has ended without completing, so
    ``on_event`` gets a ``TransferFailed`` ("server stopped") for it and
    ``statistics().failed`` counts it."""
    events: list[TransferEvent] = []
    server = TftpServer(DirectoryRoot(tree[0]), host="127.0.0.1", port=0, on_event=events.append)
    sock = await udp_client()
    with sock, trio.fail_after(10):
        async with serving(server) as port:
            await sock.sendto(rrq("f1m"), ("127.0.0.1", port))
            first, _ = await sock.recvfrom(2048)
            assert first[:4] == b"\0\3\0\1"
            assert server.statistics().active == 1
        # serve() was cancelled with the transfer in the middle of block 1
    assert server.statistics().active == 0
    assert [type(e) for e in events] == [TransferFailed], events
    assert isinstance(events[0], TransferFailed) and events[0].message == "server stopped"
    assert server.statistics().failed == 1


async def test_upload_commit_failure_fails_one_transfer_not_the_server(
    tree: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """When committing an upload fails with an ``OSError`` (here ``os.replace`` meets a
    directory created at the target name during the upload; ENOSPC/EDQUOT when the buffered
    tail is flushed by ``close`` is the common case), the client gets an ERROR instead of the
    final ACK, a ``TransferFailed`` is reported, the temporary file is removed and the server
    keeps serving."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    events: list[TransferEvent] = []
    server = TftpServer(
        DirectoryRoot(tree[0]),
        host="127.0.0.1",
        port=0,
        writable=WritableRoot(uploads, overwrite=True),
        on_event=events.append,
    )
    sock = await udp_client()
    crashed: BaseException | None = None
    answer = b""
    with sock, trio.fail_after(10):
        try:
            async with serving(server) as port:
                await sock.sendto(wrq("target"), ("127.0.0.1", port))
                ack0, remote = await sock.recvfrom(2048)
                assert ack0 == b"\0\4\0\0"
                (uploads / "target").mkdir()  # the name is taken while the upload runs
                await sock.sendto(b"\0\3\0\1" + b"tail", remote)  # the last (short) block
                with trio.move_on_after(2):
                    answer, _ = await sock.recvfrom(2048)
                await still_serves(port)
        except BaseException as exc:  # nothing may escape serve()
            crashed = exc
    assert crashed is None, f"serve() died: {crashed!r}"
    assert answer[:2] == b"\0\5", answer  # an ERROR, not the final ACK
    assert any(isinstance(e, TransferFailed) for e in events), events
    assert [p.name for p in uploads.iterdir()] == ["target"]  # no temporary file left


async def test_content_exception_fails_one_transfer_not_the_server(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """A generator of ``GeneratedContent`` that raises (a bug, a lookup that fails for one
    node) fails that request only: an ERROR to the client, a ``TransferFailed`` event, and
    the server keeps serving, as the data plane does for a source that fails while being
    read."""

    def broken(name: str, remote: tuple[str, int]) -> bytes:
        raise KeyError(remote[0])

    content = GeneratedContent({"per-node.cfg": broken}, fallback=DirectoryRoot(tree[0]))
    events: list[TransferEvent] = []
    server = TftpServer(content, host="127.0.0.1", port=0, on_event=events.append)
    sock = await udp_client()
    crashed: BaseException | None = None
    answer = b""
    with sock, trio.fail_after(10):
        try:
            async with serving(server) as port:
                await sock.sendto(rrq("per-node.cfg"), ("127.0.0.1", port))
                with trio.move_on_after(2):
                    answer, _ = await sock.recvfrom(2048)
                await still_serves(port)
        except BaseException as exc:  # nothing may escape serve()
            crashed = exc
    assert crashed is None, f"serve() died: {crashed!r}"
    assert answer[:2] == b"\0\5", answer
    assert any(isinstance(e, TransferFailed) for e in events), events


class EndingEngine:
    """An engine whose first step is also its last: many datagrams, then no deadline."""

    def __init__(self, out: list[bytes]) -> None:
        self.out = out
        self.state = TransferState.TRANSFERRING
        self.error: tuple[int, str] | None = None
        self.finished = False
        self.compiled = False
        self.options = TransferOptions(timeout=5.0)

    def start(self, now: float) -> tuple[list[bytes], float | None]:
        self.state = TransferState.SUCCEEDED
        self.finished = True
        return self.out, None

    def receive(self, datagram: memoryview, now: float) -> tuple[list[bytes], float | None]:
        return [], None


async def test_last_datagrams_wait_for_a_full_send_buffer() -> None:
    """When a transfer's last datagrams meet a full send buffer, the session ends only once
    they are sent (when the socket is writable again), not right away with them dropped.
    An ``AF_UNIX`` datagram pair with a small send buffer and a peer that reads late stands
    in for a congested link."""
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setblocking(False)
    out = [i.to_bytes(2, "big") * 500 for i in range(40)]
    received: list[bytes] = []

    async def read_late() -> None:
        await trio.sleep(0.2)  # the send buffer fills up meanwhile
        while len(received) < len(out):
            await trio.lowlevel.wait_readable(peer)
            received.append(peer.recv(2048))

    plane = DataPlane(trio.lowlevel.current_trio_token(), 1 << 16)
    with ours, peer, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, plane.run)
            try:
                nursery.start_soon(read_late)
                await plane.drive(ours, cast(ServerTransfer, EndingEngine(out)))
                # every datagram was sent before the session ended: the reader gets them all
                with trio.fail_after(5):
                    while len(received) < len(out):
                        await trio.sleep(0.01)
            finally:
                plane.stop()  # the worker thread cannot be cancelled: it must be told
    assert received == out


# -- the sans-I/O engine ---------------------------------------------------------------------------


def test_stray_data_during_write_negotiation_keeps_the_oack_and_a_future_deadline() -> None:
    """A WRQ with options is answered by an OACK, which only DATA 1 acknowledges (RFC 2347).
    A DATA with another block number neither ends the negotiation (the OACK is still
    retransmitted) nor hands back a deadline in the past: the deadlines count from the
    ``now`` given to ``start``, not from when the engine was built."""
    sink = Sink()
    server = ServerTransfer(WriteRequest("up", "octet", {"blksize": "1024"}), sink=sink)
    out, deadline = server.start(1000.0)
    assert isinstance(decode(out[0]), OptionAck) and deadline == 1001.0
    out, deadline = server.receive(encode(Data(5, b"x" * 1024)), 1000.5)
    assert deadline is not None and deadline >= 1000.5, deadline
    assert server.state is TransferState.NEGOTIATING
    out, deadline = server.timeout(1001.0)
    assert [type(decode(d)) for d in out] == [OptionAck]


# -- network namespaces ----------------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def namespace_with_veth() -> Iterator[str]:
    """A namespace with a veth pair ``va``/``vb`` (both ends inside): ``va`` holds
    10.77.0.1/24, 10.77.0.2/24 and fe80::1/64."""
    ns = f"rbt-{secrets.token_hex(3)}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", ns, "link", "set", "va", "up")
        _ip("-n", ns, "link", "set", "vb", "up")
        _ip("-n", ns, "addr", "add", "10.77.0.1/24", "dev", "va")
        _ip("-n", ns, "addr", "add", "10.77.0.2/24", "dev", "va")
        _ip("-n", ns, "addr", "add", "fe80::1/64", "dev", "va", "nodad")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)


def run_trio_in_namespace(ns: str, main: Callable[[], Awaitable[None]], limit: float) -> None:
    """Run ``trio.run(main)`` in a thread that joined ``ns``, so every socket the server
    makes lives there; re-raise what it raised."""
    libc = ctypes.CDLL(None, use_errno=True)
    errors: list[BaseException] = []

    def body() -> None:
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            trio.run(main)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(limit + 5)
    assert not thread.is_alive(), "the server thread hung"
    if errors:
        raise errors[0]


def _require_ip() -> None:
    if subprocess.run(["which", "ip"], capture_output=True, check=False).returncode:
        pytest.fail("iproute2 (ip) is needed for the namespace tests")


def test_answers_come_from_the_address_the_request_was_sent_to(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """On a host with several addresses (here 10.77.0.1 and 10.77.0.2) and the default
    ``host="0.0.0.0"``, a client that sent its RRQ to 10.77.0.2 must get the DATA from
    10.77.0.2: clients (PXE ROMs among them) take a reply from another address for a stray
    packet. Left to the routing table, the kernel would pick 10.77.0.1."""
    _require_ip()
    seen: list[tuple[str, int]] = []

    async def main() -> None:
        server = TftpServer(DirectoryRoot(tree[0]), host="0.0.0.0", port=0)
        with trio.fail_after(10):
            async with serving(server) as port:
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                with sock:
                    await sock.bind(("10.77.0.1", 0))
                    await sock.sendto(rrq("f511"), ("10.77.0.2", port))
                    _, remote = await sock.recvfrom(2048)
                    seen.append(remote)
                    await sock.sendto(b"\0\4\0\1", remote)

    with namespace_with_veth() as ns:
        run_trio_in_namespace(ns, main, 10)
    assert seen and seen[0][0] == "10.77.0.2", seen


def test_ipv6_link_local_request_does_not_kill_the_server(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """A server on ``::`` serves a request from a link-local address such as fe80::1%va: the
    transfer's socket keeps the client's scope (without it, connecting to fe80::1 fails with
    EINVAL)."""
    _require_ip()
    outcome: list[object] = []

    async def main() -> None:
        server = TftpServer(DirectoryRoot(tree[0]), host="::", port=0)
        with trio.fail_after(10):
            async with serving(server) as port:
                index = socket.if_nametoindex("va")
                sock = trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM)
                with sock:
                    await sock.bind(("fe80::1", 0, 0, index))
                    await sock.sendto(rrq("f511"), ("fe80::1", port, 0, index))
                    with trio.move_on_after(3):
                        data, remote = await sock.recvfrom(2048)
                        outcome.append(data[:4])
                        await sock.sendto(b"\0\4\0\1", remote)

    with namespace_with_veth() as ns:
        run_trio_in_namespace(ns, main, 10)
    assert outcome == [b"\0\3\0\1"], outcome


def test_a_refusal_comes_from_the_address_the_request_was_sent_to(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """The listening socket's own answers ("server busy", a malformed request) leave from
    the address the request was sent to as well, not from the one the routing table picks."""
    _require_ip()
    seen: list[tuple[bytes, tuple[str, int]]] = []

    async def main() -> None:
        config = ServerConfig(max_sessions=0)  # every request is refused as busy
        server = TftpServer(DirectoryRoot(tree[0]), host="0.0.0.0", port=0, config=config)
        with trio.fail_after(10):
            async with serving(server) as port:
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                with sock:
                    await sock.bind(("10.77.0.1", 0))
                    for request in (rrq("f511"), b"\0\1no-mode"):
                        await sock.sendto(request, ("10.77.0.2", port))
                        answer, remote = await sock.recvfrom(2048)
                        seen.append((answer[:2], remote))

    with namespace_with_veth() as ns:
        run_trio_in_namespace(ns, main, 10)
    assert [(opcode, remote[0]) for opcode, remote in seen] == [
        (b"\0\5", "10.77.0.2"),
        (b"\0\5", "10.77.0.2"),
    ], seen
