"""Real DHCP clients get leases from our server across a veth pair between two namespaces.

The server runs in this process, its sockets made inside the server namespace;
busybox ``udhcpc``, ``dhclient`` and ``perfdhcp`` run in the client namespace.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
import socket
import stat
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from actors.config_file import DhcpSection, SubnetSection
from actors.exchanges import events
from actors.exchanges.dhcp import DhcpClient
from actors.exchanges.events import DhcpBindSuccess
from actors.services.dhcp import DhcpRunning, start_dhcp
from actors.services.nodes import NodeDirectory
from protocols import dhcp
from runtime import Runtime
from runtime.testing import Inbox

from .netns import VethLink, add_client_address, in_namespace, require, run, veth_link

NODE = "node-7"
HOOK = """#!/bin/sh
echo "reason=${1:-$reason} ip=${ip:-$new_ip_address} mask=${subnet:-$new_subnet_mask} \
lease=${lease:-$new_dhcp_lease_time} server=${serverid:-$new_dhcp_server_identifier} \
router=${router:-$new_routers}" >> "$(dirname "$0")/hook.log"
"""


@attrs.frozen
class Served:
    link: VethLink
    runtime: Runtime
    dhcp: DhcpRunning
    inbox: Inbox
    client_mac: str
    tmp: pathlib.Path


def section(link: VethLink, **changes: object) -> DhcpSection:
    server_ip = ipaddress.IPv4Address(link.server_ip)
    subnet = SubnetSection(
        network=ipaddress.IPv4Network(f"{link.server_ip}/{link.prefix}", strict=False),
        range=(ipaddress.IPv4Address("10.64.1.1"), ipaddress.IPv4Address("10.64.200.254")),
        routers=(server_ip,),
        lease_time=3600,
    )
    return attrs.evolve(
        DhcpSection(address=server_ip, subnet=(subnet,), interface=link.server_if), **changes
    )


def socket_factory(link: VethLink):  # type: ignore[no-untyped-def]
    def open_socket(address: ipaddress.IPv4Address, port: int) -> socket.socket:
        return in_namespace(
            link.server_ns, lambda: dhcp.open_udp_socket(address, port, interface=link.server_if)
        )

    return open_socket


def hook(tmp: pathlib.Path) -> pathlib.Path:
    script = tmp / "hook.sh"
    script.write_text(HOOK)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def client_mac(link: VethLink) -> str:
    shown = run("ip", "-n", link.client_ns, "-o", "link", "show", link.client_if).stdout
    match = re.search(r"link/ether ([0-9a-f:]{17})", shown)
    assert match, shown
    return match.group(1)


@pytest.fixture
async def served(tmp_path: pathlib.Path) -> AsyncIterator[Served]:
    with veth_link(prefix=16) as link:
        mac = client_mac(link)
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, events.NAME, "dhcp.#")
            running = await start_dhcp(
                rt,
                section(link),
                NodeDirectory({mac: NODE}),
                tmp_path / "state",
                open_socket=socket_factory(link),
            )
            yield Served(link, rt, running, inbox, mac, tmp_path)


async def client(argv: list[str], timeout: float = 30) -> str:
    with trio.fail_after(timeout):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    return output


def bound_line(tmp: pathlib.Path) -> dict[str, str]:
    lines = (tmp / "hook.log").read_text().splitlines()
    bound = [line for line in lines if line.split()[0] in ("reason=bound", "reason=BOUND")]
    assert bound, lines
    return dict(field.split("=", 1) for field in bound[-1].split())


async def check_lease(served: Served, got: dict[str, str]) -> None:
    ip = ipaddress.IPv4Address(got["ip"])
    assert ip in ipaddress.IPv4Network("10.64.0.0/16")
    assert got["server"] == served.link.server_ip
    assert got["router"] == served.link.server_ip
    lease = served.dhcp.table.by_mac(served.client_mac)
    assert lease is not None and lease.ip == ip and lease.state is dhcp.LeaseState.BOUND
    (delivery,) = await served.inbox.wait_for(1, timeout=10)
    assert delivery.routing_key == f"dhcp.bind.success.{NODE}"
    assert isinstance(delivery.payload, DhcpBindSuccess)
    assert delivery.payload.mac == served.client_mac and delivery.payload.ip == str(ip)
    assert await DhcpClient(served.runtime).lookup_ip_lease(str(ip)) == served.client_mac


async def test_udhcpc_gets_a_lease(served: Served) -> None:
    require("busybox")
    script = hook(served.tmp)
    await client(
        served.link.in_client(
            "busybox", "udhcpc", "-i", served.link.client_if, "-f", "-q", "-n",
            "-t", "5", "-T", "1", "-s", str(script), "-x", "hostname:pxe-7",
        )
    )  # fmt: skip
    got = bound_line(served.tmp)
    assert got["mask"] == "255.255.0.0" and got["lease"] == "3600"
    await check_lease(served, got)
    lease = served.dhcp.table.by_mac(served.client_mac)
    assert lease is not None and lease.hostname == "pxe-7"


async def test_dhclient_gets_a_lease(served: Served) -> None:
    require("dhclient")
    script = hook(served.tmp)
    pidfile = served.tmp / "dhclient.pid"
    await client(
        served.link.in_client(
            "dhclient", "-1", "-v", "-sf", str(script), "-lf", str(served.tmp / "leases"),
            "-pf", str(pidfile), served.link.client_if,
        )
    )  # fmt: skip
    try:
        await check_lease(served, bound_line(served.tmp))
    finally:
        if pidfile.exists():
            run("kill", pidfile.read_text().strip(), check=False)


async def test_leases_survive_a_restart(served: Served, tmp_path: pathlib.Path) -> None:
    require("busybox")
    script = hook(served.tmp)
    await client(
        served.link.in_client(
            "busybox", "udhcpc", "-i", served.link.client_if, "-f", "-q", "-n",
            "-t", "5", "-T", "1", "-s", str(script),
        )
    )  # fmt: skip
    before = served.dhcp.table.by_mac(served.client_mac)
    assert before is not None
    reopened = dhcp.LeaseTable(served.dhcp.table.subnets, store=served.dhcp.store)
    assert reopened.by_mac(served.client_mac) == before


async def test_perfdhcp_relay_gets_every_lease(served: Served) -> None:
    require("perfdhcp")
    add_client_address(served.link)
    output = await client(
        served.link.in_client(
            "perfdhcp", "-4", "-r", "100", "-p", "5", "-R", "400",
            "-l", served.link.client_ip, served.link.server_ip,
        ),
        timeout=60,
    )  # fmt: skip
    sent = [int(n) for n in re.findall(r"sent packets: (\d+)", output)]
    received = [int(n) for n in re.findall(r"received packets: (\d+)", output)]
    drops = [int(n) for n in re.findall(r"drops: (\d+)", output)]
    assert len(sent) == 2 and sent[0] >= 400, output  # DISCOVER-OFFER, REQUEST-ACK
    assert drops == [0, 0] and received == sent, output
    assert len(served.dhcp.table) >= 400


@pytest.fixture
async def served_with_proxy(tmp_path: pathlib.Path) -> AsyncIterator[Served]:
    with veth_link(prefix=16) as link:
        add_client_address(link)
        async with Runtime() as rt:
            running = await start_dhcp(
                rt,
                section(link, proxy=True, api_address="10.64.0.1"),
                NodeDirectory(),
                tmp_path / "state",
                open_socket=socket_factory(link),
            )
            yield Served(link, rt, running, Inbox(), client_mac(link), tmp_path)


async def test_proxydhcp_answers_a_pxe_request_on_4011(served_with_proxy: Served) -> None:
    link = served_with_proxy.link
    request = dhcp.Packet(
        xid=7,
        chaddr=bytes.fromhex(served_with_proxy.client_mac.replace(":", "")),
        ciaddr=ipaddress.IPv4Address(link.client_ip),
        options=[
            dhcp.Option(dhcp.OptionCode.MESSAGE_TYPE, dhcp.MessageType.REQUEST),
            dhcp.Option(dhcp.OptionCode.VENDOR_CLASS_ID, "PXEClient:Arch:00007:UNDI:003016"),
            dhcp.Option(dhcp.OptionCode.CLIENT_ARCH, (7,)),
        ],
    )

    def pxe_socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((link.client_ip, 4011))
        return sock

    sock = trio.socket.from_stdlib_socket(in_namespace(link.client_ns, pxe_socket))
    with sock:
        await sock.sendto(b"\x00garbage", (link.server_ip, 4011))  # dropped, server goes on
        await sock.sendto(request.encode(), (link.server_ip, 4011))
        with trio.fail_after(10):
            data, source = await sock.recvfrom(2048)
    reply = dhcp.Packet.parse(data)
    assert source == (link.server_ip, 4011)
    assert reply.xid == 7 and reply.message_type is dhcp.MessageType.ACK
    assert reply.file == b"monorail-efi64-snponly.efi"
    assert reply.siaddr == ipaddress.IPv4Address(link.server_ip)
