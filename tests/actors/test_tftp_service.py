"""The TFTP service against tftp-hpa's client: transfers are reported on ``on.events``."""

from __future__ import annotations

import ipaddress
import pathlib

import pytest
import trio

from actors.config_file import TftpSection
from actors.exchanges import events
from actors.exchanges.events import TftpFailure, TftpSuccess
from actors.services.nodes import NodeDirectory
from actors.services.tftp import start_tftp
from runtime import Runtime
from runtime.testing import Inbox
from tests.protocols.tftp.peers import hpa_get

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def section(root: pathlib.Path) -> TftpSection:
    return TftpSection(address=LOOPBACK, root=root, port=0)


async def test_transfers_are_published_with_the_node_id(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "undionly.kpxe").write_bytes(bytes(range(256)) * 300)
    nodes = NodeDirectory({"52:54:00:00:00:01": "node-1"})
    nodes.learn_address("127.0.0.1", "52:54:00:00:00:01")
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, events.NAME, "tftp.#")
        service = await start_tftp(rt, section(root), nodes)
        assert service.port > 0

        assert await hpa_get(service.port, "undionly.kpxe", tmp_path / "got") == ""
        assert (tmp_path / "got").read_bytes() == (root / "undionly.kpxe").read_bytes()
        error = await hpa_get(service.port, "missing.efi", tmp_path / "missing")
        assert "not found" in error.lower()

        success, failure = await inbox.wait_for(2, timeout=10)
    assert success.routing_key == "tftp.success.node-1"
    assert isinstance(success.payload, TftpSuccess)
    assert success.payload.file == "undionly.kpxe"
    assert success.payload.size == 256 * 300
    assert success.payload.remoteAddress == "127.0.0.1"
    assert float(success.payload.time) >= 0
    assert failure.routing_key == "tftp.failure.node-1"
    assert isinstance(failure.payload, TftpFailure)
    assert failure.payload.file == "missing.efi"
    assert failure.payload.errorCode == 1


async def test_unknown_clients_are_external(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10)
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, events.NAME, "tftp.#")
        service = await start_tftp(rt, section(tmp_path), NodeDirectory())
        assert await hpa_get(service.port, "f", tmp_path / "got") == ""
        (delivery,) = await inbox.wait_for(1, timeout=10)
    assert delivery.routing_key == "tftp.success.external"


async def test_a_port_in_use_fails_start_up(tmp_path: pathlib.Path) -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as taken:
        await taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        async with Runtime() as rt:
            busy = TftpSection(address=LOOPBACK, root=tmp_path, port=port)
            with pytest.raises(OSError, match="in use"):
                await start_tftp(rt, busy, NodeDirectory())


async def test_a_missing_root_is_refused(tmp_path: pathlib.Path) -> None:
    async with Runtime() as rt:
        with pytest.raises(ValueError, match="not a directory"):
            await start_tftp(rt, section(tmp_path / "nope"), NodeDirectory())
