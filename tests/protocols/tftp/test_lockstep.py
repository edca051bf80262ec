"""The compiled lock-step sender (``_lockstep.c``) against its reference, ``BlockSender``: the
same events give the same datagrams, states and deadlines; ``pump`` over a real datagram socket
pair; and the data plane handing it what is not a plain ACK."""

from __future__ import annotations

import gc
import os
import pathlib
import socket
import tempfile
import time
from collections.abc import Iterator

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tftp import (
    BlockSender,
    BytesSource,
    DirectoryRoot,
    ReadRequest,
    ServerTransfer,
    TransferFailed,
    TransferOptions,
    TransferSucceeded,
    _server_transfer,
)
from protocols.tftp._lockstep import (
    PUMP_DONE,
    PUMP_IDLE,
    PUMP_READ_FAILED,
    PUMP_SEND_BLOCKED,
    LockstepSender,
)

from .link import run_read
from .test_dataplane import LossyClient, download, rrq, serving

BURST, CALM = 16, 64


def ack(block: int) -> bytes:
    return b"\0\4" + (block & 0xFFFF).to_bytes(2, "big")


def file_with(data: bytes) -> tempfile._TemporaryFileWrapper[bytes]:
    handle = tempfile.NamedTemporaryFile()  # noqa: SIM115 - closed by the caller's ``with``
    handle.write(data)
    handle.flush()
    handle.seek(0)
    return handle


def both(
    data: bytes, blksize: int, fileno: int, *, retries: int = 3, timeout: float = 1.0
) -> tuple[BlockSender, LockstepSender]:
    """A reference sender over ``data`` and a compiled one over ``fileno``, a file holding it."""
    options = TransferOptions(blksize=blksize, timeout=timeout)
    return (
        BlockSender(BytesSource(data), options, retries=retries),
        LockstepSender(fileno, blksize, timeout, retries),
    )


def state(sender: BlockSender | LockstepSender) -> tuple[object, ...]:
    return (sender.done, sender.failed, sender.deadline, sender.size)


def wire(out: list[bytes | memoryview]) -> list[bytes]:
    return [bytes(datagram) for datagram in out]


def test_the_compiled_sender_is_built_and_used_for_file_reads(tmp_path: pathlib.Path) -> None:
    """Fails when the C extension was not built (no compiler at install time)."""
    (tmp_path / "boot").write_bytes(b"x" * 3000)
    source = DirectoryRoot(tmp_path).open_read("boot")
    try:
        plain = ServerTransfer(ReadRequest("boot", "octet", {}), source=source, size=3000)
        assert plain.compiled
        windowed = ReadRequest("boot", "octet", {"windowsize": "4"})
        assert not ServerTransfer(windowed, source=source, size=3000).compiled
    finally:
        source.close()
    generated = ServerTransfer(ReadRequest("s", "octet", {}), source=BytesSource(b"#!ipxe\n"))
    assert not generated.compiled  # no descriptor to read: the Python sender


events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(-3, 3)),  # relative to the last ACKed block
        st.tuples(st.just("wire"), st.integers(0, 0xFFFF)),  # any block number
        st.tuples(st.just("timeout"), st.floats(0, 2.5)),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(st.binary(max_size=700), st.integers(8, 96), events, st.integers(0, 4))
def test_same_events_same_datagrams(
    data: bytes, blksize: int, steps: list[tuple[str, float]], retries: int
) -> None:
    with file_with(data) as handle:
        check_same_events(data, blksize, handle.fileno(), steps, retries)


def check_same_events(
    data: bytes, blksize: int, fileno: int, steps: list[tuple[str, float]], retries: int
) -> None:
    reference, compiled = both(data, blksize, fileno, retries=retries)
    now = 0.0
    assert wire(reference.start(now)) == wire(compiled.start(now))
    acked = 0
    for kind, value in steps:
        if kind == "timeout":
            now += value
            pair = reference.on_timeout(now), compiled.on_timeout(now)
        else:
            now += 0.01
            block = acked + int(value) if kind == "ack" else int(value)
            pair = reference.on_ack(block, now), compiled.on_ack(block, now)
            if pair[0]:
                acked = int.from_bytes(bytes(pair[0][0])[2:4], "big") - 1
        assert wire(pair[0]) == wire(pair[1])
        assert state(reference) == state(compiled)


def test_block_numbers_roll_over_like_the_reference() -> None:
    data = os.urandom(8 * 65_600 + 3)  # more than 65,535 blocks of 8 octets
    with file_with(data) as handle:
        reference, compiled = both(data, 8, handle.fileno())
        check_rollover(data, reference, compiled)


def check_rollover(data: bytes, reference: BlockSender, compiled: LockstepSender) -> None:
    assert wire(reference.start(0.0)) == wire(compiled.start(0.0))
    received = bytearray()
    block = 1
    while not compiled.done:
        out = compiled.on_ack(block, 0.0)
        assert wire(reference.on_ack(block, 0.0)) == wire(out)
        if out:
            received += bytes(out[0])[4:]
        block += 1
    assert reference.done and compiled.size == len(data)
    assert block - 1 > 0xFFFF and bytes(received) == data[8:]


@given(st.binary(max_size=3000), st.integers(0, 2**32), st.floats(0, 0.3), st.floats(0, 0.3))
@settings(max_examples=60)
def test_lossy_link_with_the_compiled_sender(
    data: bytes, seed: int, drop: float, duplicate: float
) -> None:
    """The engine property of ``test_engines`` with a file behind the transfer."""
    with file_with(data) as handle:
        client, server, sink, _ = run_read(
            data, blksize=64, windowsize=None, seed=seed, drop=drop, duplicate=duplicate,
            fileno=handle.fileno(),
        )  # fmt: skip
    assert server is not None and server.compiled
    assert client.finished
    if client.error is None:
        assert sink.getvalue() == data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    client.settimeout(5)
    with ours, client:
        yield ours, client


def test_pump_answers_acks_and_hands_back_the_rest(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, client = pair
    data = os.urandom(100 * 3 + 10)
    buffer = bytearray(2048)
    with file_with(data) as handle:
        sender = LockstepSender(handle.fileno(), 100, 1.0, 3)
        ours.send(sender.start(0.0)[0])
        assert client.recv(2048)[:4] == b"\0\3\0\1"
        assert sender.pump(ours.fileno(), buffer, False, BURST, CALM) == PUMP_IDLE  # nothing yet
        client.send(ack(1))
        client.send(ack(1))  # a duplicate: read, never answered
        error = b"\0\5\0\0stop\0"
        client.send(error)
        assert sender.pump(ours.fileno(), buffer, False, BURST, CALM) == len(error)
        assert bytes(buffer[: len(error)]) == error
        assert client.recv(2048) == b"\0\3\0\2" + data[100:200]
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(2048)  # the duplicate sent nothing
        client.send(ack(2))
        client.send(ack(3))
        client.send(ack(4))
        assert sender.pump(ours.fileno(), buffer, False, BURST, CALM) == PUMP_DONE
        assert [client.recv(2048) for _ in range(2)] == [
            b"\0\3\0\3" + data[200:300],
            b"\0\3\0\4" + data[300:],
        ]
        assert sender.done and sender.deadline is None and sender.size == len(data)


def test_pump_reports_a_full_send_buffer(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, client = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with file_with(os.urandom(1 << 20)) as handle:
        sender = LockstepSender(handle.fileno(), 1024, 1.0, 3)
        sender.start(0.0)
        filler = b"\0" * 1024
        with pytest.raises(BlockingIOError):
            while True:  # the client reads nothing: fill our send buffer
                ours.send(filler)
        client.send(ack(1))
        code = sender.pump(ours.fileno(), bytearray(2048), False, BURST, CALM)
        assert code == PUMP_SEND_BLOCKED
        assert bytes(sender.current()[0])[:4] == b"\0\3\0\2"


def test_pump_raises_a_failed_receive() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours:
        ours.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
            gone.bind(("127.0.0.1", 0))
            ours.connect(gone.getsockname())
        ours.send(b"\0\3\0\1")  # to a closed port: the ICMP error waits on our socket
        with file_with(b"abc") as handle:
            sender = LockstepSender(handle.fileno(), 512, 1.0, 3)
            with pytest.raises(ConnectionRefusedError):
                for _ in range(100):
                    sender.pump(ours.fileno(), bytearray(2048), False, BURST, CALM)


def test_pump_reports_a_failed_read(
    pair: tuple[socket.socket, socket.socket], tmp_path: pathlib.Path
) -> None:
    ours, client = pair
    with file_with(os.urandom(200_000)) as handle:
        fd = os.dup(handle.fileno())
    sender = LockstepSender(fd, 1024, 1.0, 3)
    sender.start(0.0)  # reads the first 64 KiB
    directory = os.open(tmp_path, os.O_RDONLY)
    os.dup2(directory, fd)  # the next read meets a directory
    os.close(directory)
    try:
        code = PUMP_IDLE
        for block in range(1, 100):
            client.send(ack(block))
            code = sender.pump(ours.fileno(), bytearray(2048), False, BURST, CALM)
            if code != PUMP_IDLE:
                break
        assert code == PUMP_READ_FAILED
        with pytest.raises(IsADirectoryError):
            sender.on_timeout(time.monotonic() + 10)  # a resend reads again, and raises it
    finally:
        os.close(fd)


def test_a_datagram_view_keeps_its_sender_alive() -> None:
    data = os.urandom(700)
    with file_with(data) as handle:
        sender = LockstepSender(handle.fileno(), 512, 1.0, 3)
        (view,) = sender.start(0.0)
    del sender
    gc.collect()
    assert bytes(view) == b"\0\3\0\1" + data[:512]


@pytest.mark.parametrize(
    "argv",
    [(-1, 512, 1.0, 3), (0, 4, 1.0, 3), (0, 512, 0.0, 3), (0, 512, float("nan"), 3)],
)
def test_bad_arguments_are_refused(argv: tuple[int, int, float, int]) -> None:
    with pytest.raises(ValueError, match="bad fd, blksize, timeout or retries"):
        LockstepSender(*argv)


async def test_a_client_error_mid_transfer_reaches_the_engine(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> None:
    """The pump hands the ERROR back; the transfer fails with the client's message, and a
    malformed datagram before it is dropped without ending anything."""
    async with serving(tree[0], 1.0) as (port, server, events):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock, trio.fail_after(10):
            await sock.bind(("127.0.0.1", 0))
            await sock.sendto(rrq("f1m"), ("127.0.0.1", port))
            first, remote = await sock.recvfrom(2048)
            await sock.sendto(ack(1), remote)
            second, _ = await sock.recvfrom(2048)
            assert (first[:4], second[:4]) == (b"\0\3\0\1", b"\0\3\0\2")
            await sock.sendto(b"\0\7junk", remote)
            await sock.sendto(ack(2), remote)
            third, _ = await sock.recvfrom(2048)
            assert third[:4] == b"\0\3\0\3"
            await sock.sendto(b"\0\5\0\0disk full\0", remote)
            while not events:
                await trio.sleep(0.01)
    (event,) = events
    assert isinstance(event, TransferFailed) and "disk full" in event.message
    assert server.statistics().active == 0


async def test_without_the_extension_file_reads_run_on_the_python_sender(
    tree: tuple[pathlib.Path, pathlib.Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an install without a C compiler runs: the same lossy download, byte-exact."""
    monkeypatch.setattr(_server_transfer, "COMPILED", False)
    source = DirectoryRoot(tree[0]).open_read("f1m")
    try:
        assert not ServerTransfer(ReadRequest("f1m", "octet", {}), source=source).compiled
    finally:
        source.close()
    async with serving(tree[0], 0.05) as served:
        client = LossyClient(3, drop=0.05, duplicate=0.3, stale=0.2)
        await download(served, client, (tree[0] / "f1m").read_bytes(), 512, 1)
    assert [type(event) for event in served[2]] == [TransferSucceeded]
