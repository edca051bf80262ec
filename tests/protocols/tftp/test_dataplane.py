"""The data plane's worker thread against raw UDP clients that misbehave: ACKs dropped,
duplicated and stale, a client that vanishes, a server stopped mid-transfer."""

from __future__ import annotations

import contextlib
import pathlib
import random
from collections.abc import AsyncIterator

import pytest
import trio

from protocols.tftp import (
    DirectoryRoot,
    ServerConfig,
    TftpServer,
    TransferEvent,
    TransferFailed,
    TransferSucceeded,
)

#: a short retransmission timeout, so a test with lost ACKs takes a second, not minutes
TIMEOUT = 0.05


@contextlib.asynccontextmanager
async def serving(
    root: pathlib.Path, timeout: float
) -> AsyncIterator[tuple[int, TftpServer, list[TransferEvent]]]:
    events: list[TransferEvent] = []
    config = ServerConfig(timeout=timeout, retries=20)
    server = TftpServer(
        DirectoryRoot(root), host="127.0.0.1", port=0, config=config, on_event=events.append
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield port, server, events
        nursery.cancel_scope.cancel()


@pytest.fixture
async def fast_server(
    tree: tuple[pathlib.Path, pathlib.Path],
) -> AsyncIterator[tuple[int, TftpServer, list[TransferEvent]]]:
    async with serving(tree[0], TIMEOUT) as served:
        yield served


def rrq(name: str, **options: int) -> bytes:
    fields = [name, "octet"] + [f"{key}\0{value}" for key, value in options.items()]
    return b"\0\1" + "\0".join(fields).encode() + b"\0"


class LossyClient:
    """Downloads a file, ACKing like a real client but dropping, duplicating and adding stale
    ACKs at random; counts the DATA it gets, to check duplicated ACKs never double the traffic."""

    def __init__(self, seed: int, *, drop: float, duplicate: float, stale: float) -> None:
        self.random = random.Random(seed)
        self.drop = drop
        self.duplicate = duplicate
        self.stale = stale
        self.data_received = 0
        self.dropped = 0
        self.acks_sent: list[int] = []

    async def get(self, port: int, name: str, *, blksize: int, windowsize: int) -> bytes:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind(("127.0.0.1", 0))
            options = {"blksize": blksize} | ({"windowsize": windowsize} if windowsize > 1 else {})
            await sock.sendto(rrq(name, **options), ("127.0.0.1", port))
            chunks: list[bytes] = []
            remote = None
            received = 0  # blocks received in order
            while True:
                with trio.move_on_after(1.0) as idle:
                    packet, remote = await sock.recvfrom(65536)
                if idle.cancelled_caught:
                    assert remote is not None, "no answer to the request"
                    await sock.sendto(self._ack(received), remote)
                    continue
                opcode = packet[1]
                if opcode == 6:  # OACK: ACK 0 starts the data
                    await sock.sendto(self._ack(0), remote)
                    continue
                assert opcode == 3, packet
                self.data_received += 1
                block = int.from_bytes(packet[2:4], "big")
                last = len(packet) - 4 < blksize
                if block == (received + 1) & 0xFFFF:
                    chunks.append(packet[4:])
                    received += 1
                    if not last and received % windowsize:
                        continue  # inside a window: no ACK yet
                    await self._answer(sock, remote, received)
                    if last:
                        return b"".join(chunks)
                else:
                    await sock.sendto(self._ack(received), remote)  # a resent or skipped block

    def _ack(self, block: int) -> bytes:
        return b"\0\4" + (block & 0xFFFF).to_bytes(2, "big")

    async def _answer(self, sock: trio.socket.SocketType, remote: object, block: int) -> None:
        if self.random.random() < self.stale and len(self.acks_sent) > 2:
            # an ACK the server already had (not the last one: that may have been dropped)
            old = self.random.choice(self.acks_sent[-50:-1])
            await sock.sendto(self._ack(old), remote)
        if self.random.random() < self.drop:
            self.dropped += 1
            return
        self.acks_sent.append(block)
        await sock.sendto(self._ack(block), remote)
        if self.random.random() < self.duplicate:
            await sock.sendto(self._ack(block), remote)


CASES = [(4096, 1), (1468, 4), (512, 1)]


async def download(
    served: tuple[int, TftpServer, list[TransferEvent]],
    client: LossyClient,
    expected: bytes,
    blksize: int,
    windowsize: int,
) -> None:
    port, server, _ = served
    with trio.fail_after(60):
        data = await client.get(port, "f1m", blksize=blksize, windowsize=windowsize)
        while server.statistics().active:
            await trio.sleep(0.01)
    assert data == expected


@pytest.mark.parametrize(("blksize", "windowsize"), CASES)
@pytest.mark.parametrize("seed", [1, 2])
async def test_lost_duplicated_and_stale_acks(
    fast_server: tuple[int, TftpServer, list[TransferEvent]],
    tree: tuple[pathlib.Path, pathlib.Path],
    blksize: int,
    windowsize: int,
    seed: int,
) -> None:
    client = LossyClient(seed, drop=0.05, duplicate=0.3, stale=0.2)
    await download(fast_server, client, (tree[0] / "f1m").read_bytes(), blksize, windowsize)
    events = fast_server[2]
    assert client.dropped
    assert [type(e) for e in events] == [TransferSucceeded]
    assert events[0].size == 1 << 20


@pytest.mark.parametrize(("blksize", "windowsize"), CASES)
async def test_duplicated_acks_send_nothing(
    tree: tuple[pathlib.Path, pathlib.Path], blksize: int, windowsize: int
) -> None:
    """No Sorcerer's Apprentice: with a whole second before any resend, every DATA beyond one
    per block would be an answer to a duplicated or stale ACK (about a third of the ACKs)."""
    async with serving(tree[0], 1.0) as served:
        client = LossyClient(7, drop=0.0, duplicate=0.3, stale=0.2)
        await download(served, client, (tree[0] / "f1m").read_bytes(), blksize, windowsize)
    blocks = (1 << 20) // blksize + 1
    assert client.data_received <= blocks + 2 * windowsize  # a slack for one very late ACK


async def test_vanished_client_fails_the_transfer(
    fast_server: tuple[int, TftpServer, list[TransferEvent]],
) -> None:
    port, server, events = fast_server
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    await sock.sendto(rrq("f1m"), ("127.0.0.1", port))
    first, _ = await sock.recvfrom(2048)
    assert first[:4] == b"\0\3\0\1"
    sock.close()  # the next DATA meets a closed port
    with trio.fail_after(10):
        while not events:
            await trio.sleep(0.01)
    (event,) = events
    assert isinstance(event, TransferFailed)
    assert server.statistics().active == 0


async def test_stopping_mid_transfer(tree: tuple[pathlib.Path, pathlib.Path]) -> None:
    root, _ = tree
    server = TftpServer(DirectoryRoot(root), host="127.0.0.1", port=0)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            for _ in range(3):  # sessions in every phase the worker may be in
                await sock.sendto(rrq("f1m"), ("127.0.0.1", port))
                await sock.recvfrom(2048)
                sock.close()
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                await sock.bind(("127.0.0.1", 0))
            assert server.statistics().active == 3
            nursery.cancel_scope.cancel()
    sock.close()
    assert server.statistics().active == 0
    # and the server can serve again
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        await sock_probe(port)
        nursery.cancel_scope.cancel()


async def sock_probe(port: int) -> None:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock, trio.fail_after(5):
        await sock.bind(("127.0.0.1", 0))
        await sock.sendto(rrq("f511"), ("127.0.0.1", port))
        data, remote = await sock.recvfrom(2048)
        assert data[:4] == b"\0\3\0\1" and len(data) == 4 + 511
        await sock.sendto(b"\0\4\0\1", remote)
