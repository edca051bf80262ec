"""An in-memory link between a client and a server engine that drops, duplicates and reorders
datagrams, driven by pure time values (no clock, no sockets)."""

from __future__ import annotations

import heapq
import io
import random

from protocols.tftp import (
    BytesSource,
    ClientTransfer,
    ReadRequest,
    ServerTransfer,
    WriteRequest,
    decode,
)


class Sink:
    """Collects a receiver's bytes."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: memoryview) -> None:
        self.buffer.write(data)

    def getvalue(self) -> bytes:
        return self.buffer.getvalue()


class FileBacked:
    """A source read through its descriptor only, as the compiled lock-step sender reads."""

    def __init__(self, fileno: int) -> None:
        self._fileno = fileno

    def fileno(self) -> int:
        return self._fileno

    def readinto(self, buffer: memoryview) -> int:
        raise AssertionError("a file-backed source is read through its descriptor")


class Link:
    """Delivers datagrams after a delay, dropping and duplicating some, so order varies."""

    def __init__(self, seed: int, *, drop: float, duplicate: float, jitter: float) -> None:
        self.random = random.Random(seed)
        self.drop = drop
        self.duplicate = duplicate
        self.jitter = jitter
        self.queue: list[tuple[float, int, str, bytes]] = []
        self.counter = 0
        self.sent = {"client": 0, "server": 0}

    def send(self, to: str, datagrams: list[bytes | memoryview], now: float) -> None:
        for datagram in datagrams:
            data = bytes(datagram)  # engines reuse their buffers
            self.sent["server" if to == "client" else "client"] += 1
            copies = 2 if self.random.random() < self.duplicate else 1
            for _ in range(copies):
                if self.random.random() < self.drop:
                    continue
                self.counter += 1
                at = now + 0.001 + self.random.random() * self.jitter
                heapq.heappush(self.queue, (at, self.counter, to, data))


def run_read(
    data: bytes,
    *,
    blksize: int | None,
    windowsize: int | None,
    seed: int = 0,
    drop: float = 0.0,
    duplicate: float = 0.0,
    jitter: float = 0.0,
    retries: int = 5,
    timeout: float = 1.0,
    give_up: float = 10_000.0,
    fileno: int | None = None,
) -> tuple[ClientTransfer, ServerTransfer | None, Sink, float]:
    """Download ``data`` through the link; returns both engines, the sink and the end time.
    With ``fileno`` (a file holding ``data``) the server reads the file, not the bytes."""
    link = Link(seed, drop=drop, duplicate=duplicate, jitter=jitter)
    options = {}
    if blksize is not None:
        options["blksize"] = str(blksize)
    if windowsize is not None:
        options["windowsize"] = str(windowsize)
    sink = Sink()
    client = ClientTransfer("file", sink=sink, options=options, timeout=timeout, retries=retries)
    now = 0.0
    out, client_deadline = client.start(now)
    link.send("server", out, now)
    server: ServerTransfer | None = None
    server_deadline: float | None = None
    while now < give_up:
        candidates = [t for t in (client_deadline, server_deadline) if t is not None]
        if link.queue:
            candidates.append(link.queue[0][0])
        if not candidates:
            break
        now = max(now, min(candidates))
        if link.queue and link.queue[0][0] <= now:
            _, _, to, datagram = heapq.heappop(link.queue)
            if to == "server":
                packet = decode(datagram)
                if isinstance(packet, ReadRequest | WriteRequest):
                    if server is None:  # later copies went to the well-known port: ignored
                        source = BytesSource(data) if fileno is None else FileBacked(fileno)
                        server = ServerTransfer(
                            packet, source=source, size=len(data), retries=retries
                        )
                        out, server_deadline = server.start(now)
                        link.send("client", out, now)
                    continue
                if server is not None:
                    out, server_deadline = server.receive(datagram, now)
                    link.send("client", out, now)
            else:
                out, client_deadline = client.receive(datagram, now)
                link.send("server", out, now)
            continue
        if client_deadline is not None and now >= client_deadline:
            out, client_deadline = client.timeout(now)
            link.send("server", out, now)
        if server is not None and server_deadline is not None and now >= server_deadline:
            out, server_deadline = server.timeout(now)
            link.send("client", out, now)
    return client, server, sink, now
