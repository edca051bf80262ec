"""Real IPMI peers for the tests: OpenIPMI's ipmi_sim, ipmitool, and free loopback ports."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import time

import trio

from tests.peers import free_udp_port, require, stop, udp_bound

HOST = "127.0.0.1"
USER, PASSWORD = "admin", "password"


def free_udp_ports(count: int) -> int:
    """The first of ``count`` consecutive free UDP ports."""
    for _ in range(100):
        first = free_udp_port()
        if first + count > 65535:
            continue
        try:
            socks = []
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((HOST, port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no run of free UDP ports")


def wait_bound(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not udp_bound(port):
        if process.poll() is not None:
            raise RuntimeError(f"peer exited with status {process.returncode} before binding")
        if time.monotonic() > deadline:
            raise RuntimeError(f"peer did not bind 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.02)


async def ipmitool(port: int, *command: str, password: str = PASSWORD) -> str:
    """Run ``ipmitool -I lanplus -C 3`` against 127.0.0.1:``port``; its stdout."""
    binary = require("ipmitool", "ipmitool")
    args = [binary, "-I", "lanplus", "-C", "3", "-H", HOST, "-p", str(port)]
    args += ["-U", USER, "-P", password, *command]
    done = await trio.run_process(args, capture_stdout=True, capture_stderr=True)
    return done.stdout.decode()


CHASSIS_SCRIPT = """#!/bin/sh
# ipmi_sim chassis_control: "prog MC get power" prints power:N; "prog MC set power N" stores N.
STATE="$(dirname "$0")/power"
[ -f "$STATE" ] || echo 0 > "$STATE"
if [ "$2" = "get" ]; then
  shift 2
  for p in "$@"; do
    case "$p" in power) echo "power:$(cat "$STATE")";; boot) echo "boot:none";; esac
  done
elif [ "$2" = "set" ]; then
  shift 2
  while [ $# -gt 1 ]; do
    case "$1" in power) echo "$2" > "$STATE";; esac
    shift 2
  done
fi
"""

LAN_CONF = """name "rbsim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{chassis} 0x20"
  user 2 true "{user}" "{password}" admin 10 none md2 md5 straight
"""


def _full_sensor_record(record_id: int, number: int, entity: int, name: str) -> str:
    """A full sensor SDR (type 0x01): a temperature in degrees C, M=1, readable thresholds."""
    body = [0x20, 0x00, number, entity, 0x01, 0x7F, 0x68, 0x01, 0x01]
    body += [0x00, 0x00, 0x00, 0x00, 0x3F, 0x00]  # event masks; all six thresholds readable
    body += [0x00, 0x01, 0x00, 0x00]  # unsigned, degrees C, no modifier, linear
    body += [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]  # M=1, B=0, exponents 0
    body += [0x00, 0x00, 0x00, 0x00, 0xFF, 0x00]  # flags, nominal, normal max/min, range
    body += [0x64, 0x5A, 0x50, 0x05, 0x0A, 0x0F]  # UNR, UC, UNC, LNR, LC, LNC
    body += [0x00, 0x00, 0x00, 0x00, 0x00]  # hysteresis, reserved, OEM
    body += [0xC0 | len(name), *name.encode()]
    record = [record_id & 0xFF, record_id >> 8, 0x51, 0x01, len(body), *body]
    return " ".join(f"0x{b:02x}" for b in record)


#: Sensor 1 "MB Temp" reads 48 (ok); sensor 2 "CPU Temp" reads 85 (above upper non-critical 80).
SENSOR_VALUES = {1: ("MB Temp", 0x07, 48), 2: ("CPU Temp", 0x03, 85)}
THRESHOLDS = (15.0, 10.0, 5.0, 80.0, 90.0, 100.0)  # LNC, LC, LNR, UNC, UC, UNR
#: Three SEL records: a temperature assertion, a power supply failure, the deassertion.
SEL_RECORDS = (
    "0x00 0x10 0x5e 0x5f 0x20 0x00 0x04 0x01 0x02 0x01 0x59 0x5b 0x5a",
    "0x10 0x10 0x5e 0x5f 0x20 0x00 0x04 0x08 0x03 0x6f 0x01 0xff 0xff",
    "0x20 0x10 0x5e 0x5f 0x20 0x00 0x04 0x01 0x02 0x81 0x59 0x50 0x5a",
)


def emu_script() -> str:
    lines = [
        "mc_setbmc 0x20",
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02",
        "sel_enable 0x20 1000 0x0a",
    ]
    mask = "000111111000000"
    for number, (name, entity, _) in SENSOR_VALUES.items():
        lines += [
            f"sensor_add 0x20 0 {number} 0x01 0x01",
            f"sensor_set_threshold 0x20 0 {number} readable 111111 0x64 0x5a 0x50 0x05 0x0a 0x0f",
            f"sensor_set_event_support 0x20 0 {number} enable scanning per-state"
            f" {mask} {mask} {mask} {mask}",
            f"main_sdr_add 0x20 {_full_sensor_record(number - 1, number, entity, name)}",
        ]
    lines += [f"sel_add 0x20 0x02 {record}" for record in SEL_RECORDS]
    lines += [f"sensor_set_value 0x20 0 {n} {v} 0" for n, (_, _, v) in SENSOR_VALUES.items()]
    lines.append("mc_enable 0x20")
    return "\n".join(lines) + "\n"


def start_ipmi_sim(directory: pathlib.Path, port: int) -> subprocess.Popen[bytes]:
    """Write the configuration into ``directory`` and start ipmi_sim on 127.0.0.1:``port``."""
    binary = require("ipmi_sim", "openipmi")
    chassis = directory / "chassis.sh"
    chassis.write_text(CHASSIS_SCRIPT)
    chassis.chmod(0o755)
    (directory / "lan.conf").write_text(
        LAN_CONF.format(port=port, chassis=chassis, user=USER, password=PASSWORD)
    )
    (directory / "sim.emu").write_text(emu_script())
    state = directory / "state"
    state.mkdir()
    log = (directory / "ipmi_sim.log").open("wb")
    args = [binary, "-c", str(directory / "lan.conf"), "-f", str(directory / "sim.emu")]
    args += ["-s", str(state), "-n"]
    with log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_bound(port, process)
    except BaseException:
        stop(process)
        raise
    return process
