"""Real clients (curl, tftp-hpa, atftp) against the Trio server, byte-exact; hostile names."""

from __future__ import annotations

import pathlib

import pytest
import trio

from protocols.tftp import (
    Data,
    DirectoryRoot,
    Error,
    ErrorCode,
    GeneratedContent,
    TftpServer,
    TransferFailed,
    TransferSucceeded,
)

from .conftest import ROLLOVER_SIZE, SECRET, SIZES, Served
from .peers import atftp_get, curl_get, hpa_get, hpa_put, probe

NAMES = list(SIZES)


def same(served: Served, name: str, out: pathlib.Path) -> None:
    assert out.read_bytes() == (served.root / name).read_bytes()


#: curl 7.88 reports this after any transfer that ends with the first packet (an empty file, an
#: error), against tftpd-hpa too: it calls getpeername() on its unconnected UDP socket.
CURL_FIRST_PACKET_BUG = "getpeername() failed"


async def test_curl(served: Served, tmp_path: pathlib.Path) -> None:
    curl_bug_hits = 0
    for name in NAMES:
        for blksize in (None, 1468, 8):
            out = tmp_path / f"{name}-{blksize}"
            error = await curl_get(served.port, name, out, blksize)
            if name == "empty" and CURL_FIRST_PACKET_BUG in error:
                assert not out.exists() or out.read_bytes() == b""
                curl_bug_hits += 1
                continue
            assert error == ""
            same(served, name, out)
    # curl never ACKs the empty file's only block when it hits its bug: those time out
    expected = 3 * len(NAMES) - curl_bug_hits
    succeeded = await succeeded_events(served, expected)
    assert len(succeeded) == expected
    assert {e.size for e in succeeded} >= set(SIZES.values()) - {0}
    assert all(e.remote_address == "127.0.0.1" and e.duration >= 0 for e in succeeded)


async def succeeded_events(served: Served, count: int) -> list[TransferSucceeded]:
    """The success events, once ``count`` arrived (or after a second): an event follows the
    client's last ACK, so it can come after the client exited."""
    with trio.move_on_after(1.0):
        while sum(isinstance(e, TransferSucceeded) for e in served.events) < count:
            await trio.sleep(0.01)
    return [e for e in served.events if isinstance(e, TransferSucceeded)]


async def test_tftp_hpa(served: Served, tmp_path: pathlib.Path) -> None:
    # tftp-hpa's client sends no options: 512-octet blocks, lock-step
    for name in NAMES:
        out = tmp_path / name
        assert await hpa_get(served.port, name, out) == ""
        same(served, name, out)


async def test_atftp_windowsize(served: Served, tmp_path: pathlib.Path) -> None:
    for name in NAMES:
        for blksize, windowsize in ((1468, 8), (512, 1), (8, 4)):
            out = tmp_path / f"{name}-{blksize}-{windowsize}"
            error = await atftp_get(served.port, name, out, blksize=blksize, windowsize=windowsize)
            assert error == ""
            same(served, name, out)


@pytest.mark.parametrize("client", ["curl", "tftp-hpa", "atftp"])
async def test_rollover(served: Served, tmp_path: pathlib.Path, client: str) -> None:
    out = tmp_path / "rollover"
    if client == "curl":
        error = await curl_get(served.port, "rollover", out, 512)
    elif client == "tftp-hpa":
        error = await hpa_get(served.port, "rollover", out)
    else:
        error = await atftp_get(served.port, "rollover", out, blksize=512, windowsize=8)
    assert error == ""
    assert out.stat().st_size == ROLLOVER_SIZE
    same(served, "rollover", out)


async def test_symlink_inside_root_is_served(served: Served, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "x"
    assert await curl_get(served.port, "link_in", out) == ""
    assert out.read_bytes() == (served.root / "f513").read_bytes()
    assert await curl_get(served.port, "/sub/inner.txt", out) == ""
    assert out.read_bytes() == b"inner"


def rrq(name: bytes) -> bytes:
    return b"\0\1" + name + b"\0octet\0"


HOSTILE = [
    b"../secret.txt",
    b"../outside/secret.txt",
    b"../../../../../../etc/passwd",
    b"/etc/passwd",
    b"sub/../../secret.txt",
    b"./../secret.txt",
    b"..",
    b"..\\secret.txt",
    b"sub\\..\\..\\secret.txt",
    b"link_out",
    b"link_dir/secret.txt",
    b"dev_null",
    b"fifo",
    b"sub",
    b"/",
    b"a" * 300,
    b"../" * 100 + b"secret.txt",
    b"\xff\xfe../secret.txt",
    b"\xc0\xae\xc0\xae/secret.txt",  # overlong UTF-8 for '..'
    b"%2e%2e/secret.txt",
    b"sub/\x01../secret.txt",
    b"secret.txt\0../x",  # a NUL inside the name
    b"\xe2\x80\xa5/secret.txt",
    b"missing",
]


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:40])
async def test_hostile_names_refused(served: Served, tmp_path: pathlib.Path, name: bytes) -> None:
    outside = served.outside / "secret.txt"
    before = outside.stat().st_atime_ns
    answers = await probe(served.port, rrq(name))
    assert len(answers) == 1, answers
    (answer,) = answers
    assert isinstance(answer, Error)
    assert answer.code in (
        ErrorCode.FILE_NOT_FOUND,
        ErrorCode.ACCESS_VIOLATION,
        ErrorCode.ILLEGAL_OPERATION,
    )
    assert not any(isinstance(a, Data) and SECRET[:8] in a.data for a in answers)
    assert outside.stat().st_atime_ns == before
    await trio.sleep(0)


async def test_hostile_name_via_curl(served: Served, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "x"
    error = await curl_get(served.port, "..%2fsecret.txt", out)
    assert error
    assert not out.exists() or SECRET not in out.read_bytes()


async def test_netascii_refused(served: Served, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "x"
    error = await hpa_get(served.port, "f513", out, mode="netascii")
    assert "Error code 4" in error
    failed = [e for e in served.events if isinstance(e, TransferFailed)]
    assert failed and failed[-1].error_code == ErrorCode.ILLEGAL_OPERATION


async def test_upload_opt_in(served: Served, tmp_path: pathlib.Path) -> None:
    local = tmp_path / "local"
    local.write_bytes(b"up" * 5000)
    assert await hpa_put(served.port, local, "uploaded") == ""
    uploads = served.server.writable
    assert uploads is not None
    assert (pathlib.Path(uploads.path) / "uploaded").read_bytes() == local.read_bytes()
    assert "Error code 6" in await hpa_put(served.port, local, "uploaded")  # no overwrite
    assert "Error code 2" in await hpa_put(served.port, local, "../escape")


async def test_upload_refused_by_default(
    tree: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    root, _ = tree
    server = TftpServer(DirectoryRoot(root), host="127.0.0.1", port=0)
    local = tmp_path / "local"
    local.write_bytes(b"x")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        assert "Error code 2" in await hpa_put(port, local, "new")
        nursery.cancel_scope.cancel()
    assert not (root / "new").exists()


async def test_generated_content(
    tree: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    root, _ = tree
    content = GeneratedContent(
        {
            "boot.ipxe": "#!ipxe\nchain http://$apiServerAddress:9080/api/current/profiles\n",
            "who": lambda name, remote: f"{name} for {remote[0]}",
        },
        values={"apiServerAddress": "10.1.0.1"},
        fallback=DirectoryRoot(root),
    )
    events: list[object] = []
    server = TftpServer(content, host="127.0.0.1", port=0, on_event=events.append)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        out = tmp_path / "x"
        assert await curl_get(port, "boot.ipxe", out, 1468) == ""
        assert out.read_bytes() == b"#!ipxe\nchain http://10.1.0.1:9080/api/current/profiles\n"
        assert await atftp_get(port, "who", out) == ""
        assert out.read_bytes() == b"who for 127.0.0.1"
        assert await curl_get(port, "f513", out) == ""
        assert out.read_bytes() == (root / "f513").read_bytes()
        with trio.move_on_after(1.0):  # the last event can follow curl's exit
            while server.statistics().active:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(events) == 3


async def test_busy_server_refuses(tree: tuple[pathlib.Path, pathlib.Path]) -> None:
    from protocols.tftp import ServerConfig

    root, _ = tree
    server = TftpServer(
        DirectoryRoot(root),
        host="127.0.0.1",
        port=0,
        config=ServerConfig(max_sessions=1, max_sessions_per_client=1, timeout=1.0, retries=0),
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        await sock.sendto(rrq(b"f1m"), ("127.0.0.1", port))
        first, _ = await sock.recvfrom(2048)
        assert first[:2] == b"\0\3"  # the first transfer holds the only session
        answers = await probe(port, rrq(b"f513"))
        assert isinstance(answers[0], Error) and "busy" in answers[0].message
        with trio.fail_after(5):
            while server.statistics().active:  # no ACK: it times out and frees the session
                await trio.sleep(0.05)
        sock.close()
        nursery.cancel_scope.cancel()
    assert server.statistics().refused == 1
    assert server.statistics().failed == 1
