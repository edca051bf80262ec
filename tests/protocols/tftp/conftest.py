"""A Trio TFTP server on 127.0.0.1 (ephemeral port) serving a root with a secret file beside it."""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from protocols.tftp import DirectoryRoot, TftpServer, TransferEvent, WritableRoot

SECRET = b"TOP-SECRET-never-served-" * 4
SIZES = {"empty": 0, "f511": 511, "f512": 512, "f513": 513, "f1m": 1 << 20}
#: more than 65535 blocks of 512 octets, so the block number wraps
ROLLOVER_SIZE = 512 * 65_600 + 100


@attrs.define
class Served:
    port: int
    root: pathlib.Path
    outside: pathlib.Path
    events: list[TransferEvent]
    server: TftpServer


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    base = tmp_path_factory.mktemp("tftp")
    root = base / "root"
    outside = base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (base / "secret.txt").write_bytes(SECRET)
    for name, size in SIZES.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "rollover").write_bytes(os.urandom(ROLLOVER_SIZE))
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "link_in").symlink_to(root / "f513")
    (root / "dev_null").symlink_to("/dev/null")
    os.mkfifo(root / "fifo")
    return root, outside


@pytest.fixture
async def served(
    tree: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> AsyncIterator[Served]:
    root, outside = tree
    events: list[TransferEvent] = []
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    server = TftpServer(
        DirectoryRoot(root),
        host="127.0.0.1",
        port=0,
        writable=WritableRoot(uploads, max_size=1 << 20),
        on_event=events.append,
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield Served(port, root, outside, events, server)
        nursery.cancel_scope.cancel()
