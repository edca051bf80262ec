#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them.
# Installs system packages (when missing), starts RabbitMQ (when down),
# creates .venv, installs rackbus with its test extra, lints, and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# RabbitMQ, and the real protocol peers the tests drive: DHCP clients
# (busybox udhcpc, dhclient, perfdhcp from kea-admin) in network namespaces
# (iproute2), TFTP clients (curl, tftp-hpa, atftp), IPMI (ipmitool, OpenIPMI's
# ipmi_sim) and SNMP (net-snmp's snmpd and tools); the benchmarks' baselines
# (kea-dhcp4-server, tftpd-hpa) come along so that `python -m benchmarks` runs;
# gcc and the Python headers build the TFTP server's compiled sender, which a test requires.
SYSTEM_PACKAGES=(
    gcc python3-dev rabbitmq-server iproute2 busybox isc-dhcp-client kea-admin curl tftp-hpa atftp
    ipmitool openipmi snmpd snmp kea-dhcp4-server tftpd-hpa
)
AMQP_PORT=5672

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! python3 -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    missing+=(python3 python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}"
fi

amqp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }
if ! amqp_up; then
    echo "starting RabbitMQ"
    as_root rabbitmq-server -detached
    for _ in $(seq 1 120); do amqp_up && break; sleep 0.5; done
    amqp_up || { echo "RabbitMQ did not come up on 127.0.0.1:$AMQP_PORT" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check .
.venv/bin/mypy
if [ -f ../shared/tools/check_layers.py ]; then
    .venv/bin/python ../shared/tools/check_layers.py
fi

# pytest exits 5 when it collected nothing: that is a failure here too.
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "no test ran" >&2
fi
exit "$status"
