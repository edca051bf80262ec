"""Running the real TFTP clients (curl, tftp-hpa, atftp) and a raw UDP probe."""

from __future__ import annotations

import pathlib
import subprocess

import trio

from protocols.tftp import MAX_DATAGRAM, Packet, decode
from tests.peers import require


def binary(name: str) -> str:
    """The path of a TFTP peer; a missing peer fails the test loudly, it is never skipped."""
    return require(name)


async def run(argv: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(timeout):
        return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


async def curl_get(port: int, name: str, out: pathlib.Path, blksize: int | None = None) -> str:
    argv = [binary("curl"), "-sS", "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"]
    if blksize is not None:
        argv[1:1] = ["--tftp-blksize", str(blksize)]
    result = await run(argv)
    return result.stderr.decode(errors="replace") if result.returncode else ""


async def hpa_get(port: int, name: str, out: pathlib.Path, mode: str = "binary") -> str:
    argv = [binary("tftp"), "127.0.0.1", str(port), "-m", mode, "-c", "get", name, str(out)]
    result = await run(argv)
    text = (result.stdout + result.stderr).decode(errors="replace")
    return text if result.returncode or "Error" in text else ""


async def hpa_put(port: int, local: pathlib.Path, name: str) -> str:
    argv = [binary("tftp"), "127.0.0.1", str(port), "-m", "binary", "-c", "put", str(local), name]
    result = await run(argv)
    text = (result.stdout + result.stderr).decode(errors="replace")
    return text if result.returncode or "Error" in text else ""


async def atftp_get(
    port: int, name: str, out: pathlib.Path, *, blksize: int = 1468, windowsize: int = 8
) -> str:
    argv = [binary("atftp"), "--option", f"blksize {blksize}"]
    if windowsize > 1:
        argv += ["--option", f"windowsize {windowsize}"]
    argv += ["-g", "-r", name, "-l", str(out), "127.0.0.1", str(port)]
    result = await run(argv)
    return result.stderr.decode(errors="replace") if result.returncode else ""


async def probe(port: int, request: bytes, *, blksize: int = 512) -> list[Packet]:
    """Send a raw request and follow the answer to its end: each DATA is ACKed, an ERROR or the
    last block ends it. An answer that never comes fails the test."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock, trio.fail_after(5):
        await sock.bind(("127.0.0.1", 0))
        await sock.sendto(request, ("127.0.0.1", port))
        answers: list[Packet] = []
        while True:
            data, remote = await sock.recvfrom(MAX_DATAGRAM)
            answers.append(decode(data))
            if data[:2] != b"\0\3":
                return answers
            await sock.sendto(b"\0\4" + data[2:4], remote)
            if len(data) - 4 < blksize:
                return answers
