"""Pollers against the tools an operator would script, measured in the same run.

IPMI: simulated BMCs (pyghmi fake BMCs, one UDP port each, in a child process). Ours: one
power poller per BMC, created through ``start_pollers`` + ``PollerClient`` in a ``Runtime``;
every round is started by resuming all pollers and ends when every BMC's
``ipmi.command.power.result`` event is on the bus. The first round includes the logins, the
next ones run on open sessions. Baseline: ``ipmitool -I lanplus -C 3 ... power status`` for
each BMC, 16 at a time.

SNMP: 200 simulated devices (snmpsim, one community each, on one port). Ours: a bulk walk of
ifTable of every device at once through ``SnmpClient.walk``. Baseline: ``snmpbulkwalk -v2c``
of the same table for each device, 16 at a time.

Run with ``python -m benchmarks.bench_pollers [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from actors.exchanges import task as conv
from actors.pollers.credentials import CredentialStore
from actors.pollers.definitions import PollerDefinition
from actors.pollers.service import PollerClient, start_pollers
from actors.services.config_store import MemoryConfigStore
from protocols import ipmi
from protocols.ipmi.fakebmc import open_fake_bmcs
from protocols.snmp import CommunityAuth, SnmpClient, SnmpTarget
from runtime import Runtime
from tests.peers import stop

HOST = "127.0.0.1"
USER, PASSWORD = "admin", "password"
PARALLEL = 16  # what an operator's script runs at once (xargs -P16)
IF_TABLE = "1.3.6.1.2.1.2.2"
STALL_LIMIT = 300.0  # seconds the IPMI part may take before it is declared stuck


def report(name: str, value: float, unit: str) -> None:
    print(f"  {name:<52} {value:>12,.3f} {unit}")


def ratio(name: str, value: float, op: str, target: float) -> None:
    ok = value >= target if op == ">=" else value <= target
    print(f"ratio {name} = {value:.2f} (target {op} {target}){'' if ok else '  MISSED'}")


def free_port_range(count: int, first: int = 20000, last: int = 32000) -> int:
    """The first port of ``count`` consecutive UDP ports on HOST that are free right now."""
    base = first
    while base + count <= last:
        taken = None
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                try:
                    sock.bind((HOST, port))
                except OSError:
                    taken = port
                    break
        finally:
            for sock in sockets:
                sock.close()
        if taken is None:
            return base
        base = taken + 1
    raise RuntimeError(f"no {count} consecutive free UDP ports in {first}-{last}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def run_parallel(
    argvs: list[list[str]], parallel: int, ok: Callable[[int, bytes], bool]
) -> tuple[float, int]:
    """Seconds to run every command with at most ``parallel`` at once, and how many failed."""
    failures = 0
    limiter = trio.CapacityLimiter(parallel)

    async def one(argv: list[str]) -> None:
        nonlocal failures
        async with limiter:
            done = await trio.run_process(
                argv, capture_stdout=True, capture_stderr=True, check=False
            )
        if not ok(done.returncode, done.stdout):
            failures += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for argv in argvs:
            nursery.start_soon(one, argv)
    return time.perf_counter() - start, failures


# -- IPMI -------------------------------------------------------------------------


class ResultCounter:
    """A bus consumer counting ``IpmiCommandResult`` events (and errors) for the current round."""

    def __init__(self) -> None:
        self.expected = 0
        self.seen = 0
        self.errors: list[str] = []
        self.done = trio.Event()

    def start_round(self, expected: int) -> None:
        self.expected, self.seen, self.errors = expected, 0, []
        self.done = trio.Event()

    async def deliver(self, delivery: Any, deadline: float) -> None:
        payload = delivery.payload
        if isinstance(payload, conv.IpmiCommandResult):
            self.seen += 1
            if payload.error is not None:
                self.errors.append(payload.error)
            if self.seen >= self.expected:
                self.done.set()
        delivery.settle()


def power_ok(code: int, out: bytes) -> bool:
    return code == 0 and out.strip() in (b"Chassis Power is off", b"Chassis Power is on")


async def ipmitool_round(ports: list[int]) -> tuple[float, int]:
    argvs = [
        ["ipmitool", "-I", "lanplus", "-C", "3", "-H", HOST, "-p", str(port),
         "-U", USER, "-P", PASSWORD, "power", "status"]
        for port in ports
    ]  # fmt: skip
    return await run_parallel(argvs, PARALLEL, power_ok)


async def pollers_rounds(
    ports: list[int], steady_rounds: int, threads: int, timeout: float
) -> tuple[float, list[float], list[float], int, list[int]]:
    """(first round s, steady round s each, resume-issuing s each, errors, logins per round)."""
    ipmi.thread_limiter().total_tokens = threads
    counter = ResultCounter()
    credentials = CredentialStore({"bmc": ipmi.Credentials(USER, PASSWORD)})
    async with Runtime() as rt:
        await rt.bus.bind(conv.NAME, "ipmi.command.power.result.#", counter)
        tools = await start_pollers(rt, MemoryConfigStore(), credentials, timeout=timeout)
        assert tools.ipmi is not None
        pollers = PollerClient(rt, timeout=60.0)
        ids = [f"bmc-{port}-power" for port in ports]
        for poller_id, port in zip(ids, ports, strict=True):
            await pollers.create(
                PollerDefinition(
                    id=poller_id, type="ipmi", command="power", nodeId=f"node-{port}",
                    host=HOST, port=port, credentialsRef="bmc", interval=3600.0, paused=True,
                )
            )  # fmt: skip

        async def round_() -> tuple[float, float, int, int]:
            counter.start_round(len(ids))
            logins = tools.ipmi.statistics().logins if tools.ipmi else 0
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for poller_id in ids:
                    nursery.start_soon(pollers.resume, poller_id)
            issued = time.perf_counter() - start
            with trio.fail_after(timeout * 4 + 60):
                await counter.done.wait()
            elapsed = time.perf_counter() - start
            logged_in = (tools.ipmi.statistics().logins if tools.ipmi else 0) - logins
            return elapsed, issued, len(counter.errors), logged_in

        errors = 0
        first, _, failed, logins = await round_()
        errors += failed
        messages = list(counter.errors)
        steady: list[float] = []
        issuing: list[float] = []
        login_counts = [logins]
        for _ in range(steady_rounds):
            elapsed, issued, failed, logins = await round_()
            steady.append(elapsed)
            issuing.append(issued)
            login_counts.append(logins)
            errors += failed
            messages += counter.errors
        for message in sorted(set(messages))[:5]:
            print(f"  error: {message}")
    return first, steady, issuing, errors, login_counts


async def bench_ipmi(count: int, steady_rounds: int, threads: int, timeout: float) -> None:
    print(f"IPMI: power status of {count:,} pyghmi fake BMCs (one process, one port each)")
    first_port = free_port_range(count)
    ports = list(range(first_port, first_port + count))
    async with open_fake_bmcs(first_port, count, address=HOST, startup_timeout=120):
        base_time, base_errors = await ipmitool_round(ports)
        report(f"ipmitool lanplus power status, {PARALLEL} in parallel", base_time, "s")
        report("ipmitool errors", base_errors, "")
        first, steady, issuing, errors, logins = await pollers_rounds(
            ports, steady_rounds, threads, timeout
        )
    report(f"pollers: first round (logins included, {logins[0]} logins)", first, "s")
    for i, (elapsed, issued) in enumerate(zip(steady, issuing, strict=True), 1):
        report(f"pollers: steady round {i} ({logins[i]} logins)", elapsed, "s")
        report(f"  {count:,} PollerClient.resume calls all returned after", issued, "s")
    report("pollers errors (all rounds)", errors, "")
    ours = statistics.median(steady)
    report("pollers: steady round, median", ours, "s")
    report("pollers: steady polls per second", count / ours, "/s")
    report("ipmitool: polls per second", count / base_time, "/s")
    ratio("ipmi_first_round_vs_ipmitool", base_time / first, ">=", 1.0)
    ratio("ipmi_power_round_vs_ipmitool", base_time / ours, ">=", 3.0)
    ratio("ipmi_errors", errors + base_errors, "<=", 0)


# -- SNMP -------------------------------------------------------------------------

_TAGS = {
    "int": 2, "str": 4, "hex": "4x", "oid": 6, "counter": 65, "gauge": 66, "ticks": 67, "c64": 70,
}  # fmt: skip


def if_table_records(interfaces: int) -> list[tuple[str, Any, Any]]:
    """ifNumber and ifTable rows (all 22 columns) of a device with ``interfaces`` ports."""
    rows: list[tuple[str, Any, Any]] = [("1.3.6.1.2.1.2.1.0", "int", interfaces)]
    for i in range(1, interfaces + 1):
        columns: dict[int, tuple[str, Any]] = {
            1: ("int", i),
            2: ("str", "lo" if i == 1 else f"eth{i - 2}"),
            3: ("int", 24 if i == 1 else 6),
            4: ("int", 65536 if i == 1 else 1500),
            5: ("gauge", 10_000_000 if i == 1 else 1_000_000_000),
            6: ("hex", "" if i == 1 else f"0250560000{i:02x}"),
            7: ("int", 1),
            8: ("int", 1 if i % 4 else 2),
            9: ("ticks", 1000 + i),
            10: ("counter", 123_456 * i),
            11: ("counter", 1_000 * i),
            12: ("counter", 10 * i),
            13: ("counter", 0),
            14: ("counter", i % 3),
            15: ("counter", 0),
            16: ("counter", 654_321 * i),
            17: ("counter", 2_000 * i),
            18: ("counter", 20 * i),
            19: ("counter", 0),
            20: ("counter", 0),
            21: ("gauge", 0),
            22: ("oid", "0.0"),
        }
        rows += [(f"{IF_TABLE}.1.{c}.{i}", kind, value) for c, (kind, value) in columns.items()]
        # ifXTable, which get_interfaces reads too; it also keeps ifTable off the end of the view
        x_columns: dict[int, tuple[str, Any]] = {
            1: ("str", "lo" if i == 1 else f"eth{i - 2}"),
            6: ("c64", 123_456 * i),
            10: ("c64", 654_321 * i),
            15: ("gauge", 10 if i == 1 else 1000),
            18: ("str", f"port {i}"),
        }
        rows += [(f"1.3.6.1.2.1.31.1.1.1.{c}.{i}", k, v) for c, (k, v) in x_columns.items()]
    return rows


def snmprec(interfaces: int) -> str:
    """A small device recording: the system group and the interfaces group, in OID order."""
    records: list[tuple[str, Any, Any]] = [
        ("1.3.6.1.2.1.1.1.0", "str", "rackbus benchmark switch"),
        ("1.3.6.1.2.1.1.2.0", "oid", "1.3.6.1.4.1.8072.3.2.10"),
        ("1.3.6.1.2.1.1.3.0", "ticks", 123456),
        ("1.3.6.1.2.1.1.5.0", "str", "bench-switch"),
    ]
    records += if_table_records(interfaces)
    records.sort(key=lambda r: tuple(int(arc) for arc in r[0].split(".")))
    return "".join(f"{oid}|{_TAGS[kind]}|{value}\n" for oid, kind, value in records)


# snmpsim keeps at most 31 device files open and closes the oldest to open another, which
# re-reads its whole index: requests interleaved over more devices than that cost it several
# times more (and a real agent has no such cache). Keep every device open.
SNMPSIM = """
import sys
from snmpsim import datafile
from snmpsim.commands import responder
datafile.DataFile.max_queue_entries = int(sys.argv.pop(1))
sys.exit(responder.main())
"""


def snmpsim_command(devices: int) -> list[str]:
    try:
        import snmpsim.datafile  # noqa: F401
    except ImportError:
        raise SystemExit("bench_pollers needs snmpsim (pip install snmpsim==1.2.2 pysmi)") from None
    return [sys.executable, "-c", SNMPSIM, str(devices + 16)]


@contextlib.contextmanager
def running_snmpsim(work: Path, devices: int, interfaces: int) -> Iterator[tuple[int, list[str]]]:
    """snmpsim serving ``devices`` copies of one recording, one community each."""
    data, cache = work / "data", work / "cache"
    data.mkdir()
    cache.mkdir()
    recording = snmprec(interfaces)
    communities = [f"dev{i:04d}" for i in range(1, devices + 1)]
    for community in communities:
        (data / f"{community}.snmprec").write_text(recording)
    port = free_port()
    argv = [
        *snmpsim_command(devices),
        f"--data-dir={data}", f"--cache-dir={cache}", f"--agent-udpv4-endpoint={HOST}:{port}",
        f"--logging-method=file:{work / 'snmpsim.log'}", "--log-level=error",
    ]  # fmt: skip
    # As root, snmpsim insists on dropping to another user unless told not to.
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        probe = ["snmpget", "-v2c", "-c", communities[-1], "-t", "0.5", "-r", "0", f"{HOST}:{port}",
                 "1.3.6.1.2.1.1.5.0"]  # fmt: skip
        deadline = time.monotonic() + 120
        while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"snmpsim did not answer: {err[-2000:]}")
            time.sleep(0.2)
        yield port, communities
    finally:
        stop(process)


async def snmpbulkwalk_round(port: int, communities: list[str], expected: int) -> tuple[float, int]:
    argvs = [
        ["snmpbulkwalk", "-v2c", "-c", community, f"{HOST}:{port}", IF_TABLE]
        for community in communities
    ]

    def ok(code: int, out: bytes) -> bool:
        return code == 0 and len(out.splitlines()) == expected

    return await run_parallel(argvs, PARALLEL, ok)


async def client_round(
    client: SnmpClient, targets: list[SnmpTarget], expected: int, errors: set[str]
) -> tuple[float, int]:
    failures = 0

    async def one(target: SnmpTarget) -> None:
        nonlocal failures
        try:
            rows = await client.walk(target, IF_TABLE)
        except Exception as exc:
            failures += 1
            errors.add(f"{type(exc).__name__}: {exc}")
            return
        if len(rows) != expected:
            failures += 1
            errors.add(f"{len(rows)} varbinds, not {expected}")

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for target in targets:
            nursery.start_soon(one, target)
    return time.perf_counter() - start, failures


async def interfaces_round(client: SnmpClient, targets: list[SnmpTarget], count: int) -> float:
    async def one(target: SnmpTarget) -> None:
        found = await client.get_interfaces(target)
        if len(found) != count:
            raise RuntimeError(f"{len(found)} interfaces, not {count}")

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for target in targets:
            nursery.start_soon(one, target)
    return time.perf_counter() - start


async def bench_snmp(devices: int, interfaces: int, rounds: int) -> None:
    for tool in ("snmpbulkwalk", "snmpget"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_pollers needs {tool} (apt-get install snmp)")
    expected = interfaces * 22
    print(
        f"SNMP: bulk walk of ifTable ({interfaces} interfaces, {expected} varbinds) "
        f"from {devices} snmpsim devices"
    )
    with tempfile.TemporaryDirectory(prefix="bench-pollers-") as tmp:
        started = time.perf_counter()
        with running_snmpsim(Path(tmp), devices, interfaces) as (port, communities):
            report("snmpsim up after", time.perf_counter() - started, "s")
            # snmpsim opens a device's data file on its first request: do that for every one
            warm, _ = await snmpbulkwalk_round(port, communities, expected)
            report("snmpsim warm-up pass (snmpbulkwalk, not counted)", warm, "s")
            base: list[float] = []
            base_errors = 0
            for _ in range(rounds):
                elapsed, failed = await snmpbulkwalk_round(port, communities, expected)
                base.append(elapsed)
                base_errors += failed
            targets = [SnmpTarget(HOST, CommunityAuth(c), port) for c in communities]
            ours: list[float] = []
            errors = 0
            messages: set[str] = set()
            # net-snmp's defaults (1 s, 5 retries), as snmpbulkwalk runs with them
            async with SnmpClient(timeout=1.0, retries=5) as client:
                cold, failed = await client_round(client, targets, expected, messages)
                errors += failed
                for _ in range(rounds):
                    elapsed, failed = await client_round(client, targets, expected, messages)
                    ours.append(elapsed)
                    errors += failed
                both = await interfaces_round(client, targets, interfaces)
    for i, elapsed in enumerate(base, 1):
        report(f"snmpbulkwalk, {PARALLEL} in parallel, round {i}", elapsed, "s")
    report("snmpbulkwalk errors", base_errors, "")
    report("SnmpClient.walk, all at once, first (cold client)", cold, "s")
    for i, elapsed in enumerate(ours, 1):
        report(f"SnmpClient.walk, all at once, round {i}", elapsed, "s")
    report("SnmpClient.walk errors", errors, "")
    for message in sorted(messages)[:5]:
        print(f"  error: {message}")
    report("SnmpClient.get_interfaces (ifTable + ifXTable walks)", both, "s")
    base_median, ours_median = statistics.median(base), statistics.median(ours)
    report("snmpbulkwalk: devices per second (median round)", devices / base_median, "/s")
    report("SnmpClient.walk: devices per second (median round)", devices / ours_median, "/s")
    ratio("snmp_iftable_walk_cold_vs_snmpbulkwalk", base_median / cold, ">=", 1.0)
    ratio("snmp_iftable_walk_vs_snmpbulkwalk", base_median / ours_median, ">=", 1.0)
    ratio("snmp_errors", errors + base_errors, "<=", 0)


# -- main -------------------------------------------------------------------------


async def bench(quick: bool, threads: int, only: str | None) -> None:
    if only in (None, "ipmi"):
        if shutil.which("ipmitool") is None:
            raise SystemExit("bench_pollers needs ipmitool")
        # pyghmi takes its locks in two orders (a retransmit under WAITING_SESSIONS wants
        # KEEPALIVE_SESSIONS, a send under KEEPALIVE_SESSIONS wants WAITING_SESSIONS), and a
        # timed-out call retires its session from the event loop under KEEPALIVE_SESSIONS:
        # should that ever deadlock, print every thread's stack and exit instead of hanging.
        faulthandler.dump_traceback_later(STALL_LIMIT, exit=True)
        try:
            await bench_ipmi(200 if quick else 1000, 2 if quick else 3, threads, timeout=30.0)
        finally:
            faulthandler.cancel_dump_traceback_later()
    if only in (None, "snmp"):
        await bench_snmp(50 if quick else 200, 8, 1 if quick else 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--threads", type=int, default=ipmi.DEFAULT_THREAD_LIMIT, help="IPMI worker threads"
    )
    parser.add_argument("--only", choices=("ipmi", "snmp"), help="run one part only")
    args = parser.parse_args()
    if args.only is not None:
        trio.run(bench, args.quick, args.threads, args.only)
        return
    # Each part in its own process: pyghmi's IO thread, its keepalives and any worker thread
    # it never releases would otherwise go on competing with the SNMP part.
    for part in ("ipmi", "snmp"):
        argv = [sys.executable, "-m", "benchmarks.bench_pollers", "--only", part]
        argv += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        subprocess.run(argv, check=False)


if __name__ == "__main__":
    main()
