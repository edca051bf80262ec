"""A second RabbitMQ node on loopback that speaks AMQP only over TLS and wants client certificates.

It runs from a temporary directory (its own data, logs, Erlang cookie and ports) beside the
machine's broker, which it leaves alone. ``trustme`` makes the certificate authority; the broker's
certificate names ``localhost`` only, so ``amqps://localhost:PORT`` verifies and
``amqps://127.0.0.1:PORT`` does not.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator

import attrs
import pytest
import trustme

from tests.peers import LOOPBACK, stop

# the scripts themselves: Debian's wrappers in /usr/sbin switch to the rabbitmq user and its cookie
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
START_TIMEOUT = 120.0


@attrs.frozen
class TlsBroker:
    """Where the node listens, and the files a client needs to reach it."""

    port: int
    cafile: pathlib.Path
    certfile: pathlib.Path
    keyfile: pathlib.Path
    #: a certificate from another authority, which the broker refuses
    stranger_certfile: pathlib.Path
    stranger_keyfile: pathlib.Path
    node: str
    work: pathlib.Path

    def url(self, host: str = "localhost", password: str = "guest") -> str:
        return f"amqps://guest:{password}@{host}:{self.port}/"

    def rabbitmqctl(self, *args: str) -> None:
        """Run ``rabbitmqctl`` against this node (with its cookie); fail the test if it fails."""
        done = subprocess.run(
            [CTL, "-n", self.node, *args],
            env={**os.environ, "HOME": str(self.work)},
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _certificates(work: pathlib.Path) -> dict[str, pathlib.Path]:
    ca, stranger_ca = trustme.CA(), trustme.CA()
    names = ("ca", "server", "server-key", "client", "client-key", "stranger", "stranger-key")
    files = {name: work / f"{name}.pem" for name in names}
    ca.cert_pem.write_to_path(files["ca"])
    server = ca.issue_cert("localhost")
    server.cert_chain_pems[0].write_to_path(files["server"])
    server.private_key_pem.write_to_path(files["server-key"])
    client = ca.issue_cert("rackbus-client")
    client.cert_chain_pems[0].write_to_path(files["client"])
    client.private_key_pem.write_to_path(files["client-key"])
    stranger = stranger_ca.issue_cert("rackbus-client")
    stranger.cert_chain_pems[0].write_to_path(files["stranger"])
    stranger.private_key_pem.write_to_path(files["stranger-key"])
    return files


@contextlib.contextmanager
def tls_broker(work: pathlib.Path) -> Iterator[TlsBroker]:
    """Start the node in ``work``; stop it on exit. A node that does not come up fails the test
    with the end of its log."""
    if not os.path.exists(SERVER):
        pytest.fail(f"{SERVER} is missing (apt-get install rabbitmq-server); this test needs it")
    files = _certificates(work)
    port, dist_port = _free_tcp_port(), _free_tcp_port()
    config = work / "rabbitmq.conf"
    config.write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = {LOOPBACK}:{port}\n"
        f"ssl_options.cacertfile = {files['ca']}\n"
        f"ssl_options.certfile = {files['server']}\n"
        f"ssl_options.keyfile = {files['server-key']}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )
    (work / "enabled_plugins").write_text("[].\n")
    node = f"rackbus-tls-{os.getpid()}-{port}@localhost"
    env = {
        **os.environ,
        "HOME": str(work),  # the node's own Erlang cookie
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
        "RABBITMQ_LOG_BASE": str(work / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
        "RABBITMQ_DIST_PORT": str(dist_port),
    }
    log = work / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [SERVER], env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"the TLS RabbitMQ node did not come up on port {port}:\n{tail}")
            time.sleep(0.25)
        yield TlsBroker(
            port,
            files["ca"],
            files["client"],
            files["client-key"],
            files["stranger"],
            files["stranger-key"],
            node,
            work,
        )
    finally:
        stop(process, grace=30.0)
