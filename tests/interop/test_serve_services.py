"""``rackbus serve --config``: the TFTP and DHCP services started from the configuration file."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import sqlite3
import subprocess
import sys

import trio

from tests.peers import free_udp_port

from .netns import VethLink, require, veth_link
from .processes import close_process
from .test_dhcp_clients import bound_line, client, client_mac, hook

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Serving:
    """A ``rackbus serve`` process, stopped with SIGTERM; ``log`` is its stderr."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.log = b""

    async def __aenter__(self) -> Serving:
        self.proc = await trio.lowlevel.open_process(self.argv, stderr=subprocess.PIPE, env=ENV)
        assert self.proc.stderr is not None
        with trio.fail_after(60):
            while b"ready" not in self.log:
                chunk = await self.proc.stderr.receive_some()
                assert chunk, self.log.decode()
                self.log += chunk
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.proc.stderr is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            with trio.fail_after(30):
                code = await self.proc.wait()
                self.log += b"".join([chunk async for chunk in self.proc.stderr])
        finally:
            await close_process(self.proc)
        assert code == 0, self.text

    @property
    def text(self) -> str:
        return self.log.decode(errors="replace")


def serve_argv(config: pathlib.Path, *prefix: str) -> list[str]:
    return [*prefix, sys.executable, "-m", "actors.cli", "serve", "--config", str(config)]


async def test_serve_runs_tftp_from_the_config_file(tmp_path: pathlib.Path) -> None:
    require("tftp")
    root = tmp_path / "tftp"
    root.mkdir()
    (root / "monorail.ipxe").write_text("#!ipxe\nchain http://10.1.0.1:9080/profiles\n")
    port = free_udp_port()
    config = tmp_path / "rackbus.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n\n'
        f'[tftp]\naddress = "127.0.0.1"\nport = {port}\nroot = "{root}"\n'
    )
    async with Serving(serve_argv(config)) as serving:
        got = tmp_path / "got"
        await client(
            ["tftp", "127.0.0.1", str(port), "-m", "binary", "-c", "get", "monorail.ipxe", str(got)]
        )
        assert got.read_bytes() == (root / "monorail.ipxe").read_bytes()
    assert f"TFTP: serving {root} on 127.0.0.1:{port}" in serving.text


def dhcp_config(link: VethLink, tmp: pathlib.Path) -> pathlib.Path:
    config = tmp / "rackbus.toml"
    config.write_text(
        f"""state_dir = "{tmp / "state"}"

[nodes]
"{client_mac(link)}" = "node-9"

[dhcp]
address = "{link.server_ip}"
interface = "{link.server_if}"
proxy = true

[[dhcp.subnet]]
network = "10.64.0.0/16"
range = ["10.64.3.1", "10.64.3.200"]
routers = ["{link.server_ip}"]
"""
    )
    return config


async def test_serve_runs_dhcp_and_keeps_leases_across_restarts(tmp_path: pathlib.Path) -> None:
    require("busybox")
    with veth_link(prefix=16) as link:
        config = dhcp_config(link, tmp_path)
        script = hook(tmp_path)
        udhcpc = link.in_client(
            "busybox", "udhcpc", "-i", link.client_if, "-f", "-q", "-n",
            "-t", "5", "-T", "1", "-s", str(script),
        )  # fmt: skip
        async with Serving(serve_argv(config, *link.in_server())) as first:
            await client(udhcpc)
        assert "DHCP: serving" in first.text
        address = bound_line(tmp_path)["ip"]
        assert address.startswith("10.64.3.")

        with sqlite3.connect(tmp_path / "state" / "dhcp-leases.sqlite3") as db:
            stored = db.execute("SELECT mac, state FROM dhcp_leases").fetchall()
        assert stored == [(client_mac(link), "bound")]

        (tmp_path / "hook.log").unlink()
        async with Serving(serve_argv(config, *link.in_server())):
            await client(udhcpc)
        assert bound_line(tmp_path)["ip"] == address  # the restarted server kept the lease


async def test_serve_reads_broker_credentials_from_the_config_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "amqp-password").write_text("guest\n")
    config = tmp_path / "rackbus.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n\n[amqp]\nurl = "amqp://127.0.0.1:5672/"\n'
        f'user = "guest"\npassword_file = "{tmp_path / "amqp-password"}"\n'
    )
    async with Serving(serve_argv(config)) as serving:
        pass
    assert "started on RabbitMQ at AmqpBus('amqp://guest:***@127.0.0.1:5672/'" in serving.text
    assert "guest:guest" not in serving.text


def test_a_bad_amqp_section_is_refused_by_name(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "rackbus.toml"
    config.write_text(
        '[amqp]\nurl = "amqp://127.0.0.1:5672/"\npassword = "x"\npassword_file = "/y"\n'
    )
    done = subprocess.run(
        serve_argv(config), capture_output=True, text=True, timeout=60, env=ENV, check=False
    )
    assert done.returncode == 2
    assert "password" in done.stderr and "password_file" in done.stderr


def test_a_tftp_port_in_use_is_named_and_nothing_else_starts(tmp_path: pathlib.Path) -> None:
    port = free_udp_port()
    config = tmp_path / "rackbus.toml"
    (tmp_path / "tftp").mkdir()
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n\n'
        f'[tftp]\naddress = "127.0.0.1"\nport = {port}\nroot = "{tmp_path / "tftp"}"\n'
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        done = subprocess.run(
            serve_argv(config), capture_output=True, text=True, timeout=60, env=ENV, check=False
        )
    assert done.returncode == 2
    assert f"TFTP cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "ready; stop with" not in done.stderr
