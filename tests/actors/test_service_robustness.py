"""The service layer against hostile or mistaken input: events and requests from anyone on
the bus, log calls that do not fit their format, and configuration files that cannot work."""

from __future__ import annotations

import io
import json
import logging
import math
import pathlib
import subprocess
import sys
from ipaddress import IPv4Address
from typing import Any

import attrs
import pytest
import trio

from actors.config_file import ConfigError, load_config, parse_config
from actors.exchanges import configuration as config_exchange
from actors.exchanges.dhcp import DhcpClient
from actors.pollers import service as poller_service
from actors.pollers.credentials import CredentialStore
from actors.pollers.definitions import PollerDefinition, PollerDefinitionError
from actors.pollers.poller import PollerActor, PollerTools
from actors.pollers.service import PollerClient, PollerService
from actors.services import dhcp as dhcp_service
from actors.services.config_store import MemoryConfigStore
from actors.services.configuration import SERVICE_KEY, ConfigurationService
from actors.services.logging import ConsoleFormatter, ConsolePrinter, LogPublisher, start_logging
from protocols import dhcp
from protocols.ipmi import Credentials
from runtime import LogEvent, RemoteError, Restart, Runtime
from runtime.testing import Inbox

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> logging.Logger:
    made = logging.getLogger(f"test.robustness.{request.node.name}")
    made.setLevel(1)
    made.propagate = False
    return made


# -- the logging service --------------------------------------------------------------------


async def test_a_bogus_logging_change_event_does_not_crash_the_level_watcher(
    autojump_clock: Any, logger: logging.Logger
) -> None:
    """Anyone on the bus may publish a ``changed.logging`` event, with any level in it;
    ``LogLevelWatcher`` ignores (and logs) one that is no level instead of crashing on it
    (a dozen crashes would exceed the root supervisor's restart intensity and take the
    whole runtime down), and still applies the next valid one.
    """
    bad = {"key": "logging.level", "value": "loud", "previous": "info"}
    with trio.fail_after(60):
        async with Runtime() as rt:
            publisher = await start_logging(rt, console=False, logger=logger)
            watcher = rt.lookup("logging.level-watcher")
            assert watcher is not None
            for _ in range(12):
                await rt.publish(config_exchange.NAME, "changed.logging", bad)
                await trio.sleep(0.01)
            await trio.sleep(1)
            assert watcher.statistics().crashes == 0
            good = {"key": "logging.level", "value": "debug", "previous": "info"}
            await rt.publish(config_exchange.NAME, "changed.logging", good)
            await trio.sleep(1)
            assert publisher.min_level == "debug"


@pytest.mark.parametrize(
    ("fmt", "arg"),
    [
        ("login with %r", {"password": b"Zq8-secret"}),
        ("request body %s", json.dumps({"password": 'Zq8"-secret'})),
        ("login with %r", {"password": 'it\'s "Zq8-secret"'}),
    ],
    ids=["bytes-repr", "json-escaped-quote", "repr-both-quotes"],
)
async def test_quoted_secrets_are_redacted_whole(
    autojump_clock: Any, logger: logging.Logger, fmt: str, arg: object
) -> None:
    """Secrets are redacted before anything is published, including ``name: value`` pairs
    in free text, and a quoted value is hidden whole: a bytes password in a ``repr()``
    (``b'...'``), and a JSON or ``repr()`` string with an escaped quote inside."""
    with trio.fail_after(30):
        async with Runtime() as rt:
            inbox = Inbox()
            await inbox.bind(rt.bus, "on.logging", "#")
            await start_logging(rt, console=False, logger=logger)
            logger.warning(fmt, arg)
            [delivery] = await inbox.wait_for(1)
    assert "REDACTED" in delivery.payload.message
    assert "secret" not in delivery.payload.message, delivery.payload.message


async def test_the_console_printer_prints_one_line_per_event(autojump_clock: Any) -> None:
    """``ConsolePrinter`` prints every ``LogEvent`` on ``on.logging`` as one line, and any
    process on the bus may publish there: control characters (a newline, terminal escape
    sequences) are escaped, so that no peer (nor a client string that reaches a log
    message) can forge log lines on ``rackbus serve``'s console or drive the terminal."""
    out = io.StringIO()
    forged = "hi\n2026-01-01T00:00:00+00:00 info    rackbus.serve: ready\x1b[2J"
    event = LogEvent(level="info", message=forged, timestamp="t", caller="c")
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(ConsolePrinter, out, key="logging.console")
            await rt.publish("on.logging", "info", event)
            await trio.sleep(1)
    assert out.getvalue().count("\n") == 1, out.getvalue()
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("where", ["bus-handler", "console-formatter"])
def test_a_malformed_log_call_does_not_dump_its_secret_arguments(
    capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """A log call whose arguments do not fit its format (an everyday slip) makes
    ``to_event`` raise in ``record.getMessage()``. ``BusLogHandler`` and
    ``ConsoleFormatter`` then emit a notice without the arguments rather than leave it to
    ``logging.Handler.handleError``, which prints the record's raw arguments to stderr:
    nothing the logging service emits may carry a secret."""
    record = logging.LogRecord(
        "rackbus.test", logging.ERROR, __file__, 1,
        "login password=%s failed after %d tries", ("Zq8-secret", "three"), None,
    )  # fmt: skip
    if where == "bus-handler":
        handler: logging.Handler = LogPublisher().handler
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConsoleFormatter())
    handler.handle(record)
    captured = capsys.readouterr()
    assert "Zq8-secret" not in captured.err + captured.out


# -- the configuration service --------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf])
async def test_rpc_timeout_refuses_nan_and_infinity(autojump_clock: Any, value: float) -> None:
    """``rpc.timeout`` is "seconds a service's own calls wait" and must be a finite number
    greater than 0: NaN is no number of seconds (``nan <= 0`` is False, too) and infinity
    means "wait forever", which the runtime promises never to do. Both are refused (400)."""
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(ConfigurationService, MemoryConfigStore(), key=SERVICE_KEY)
            config = config_exchange.ConfigurationClient(rt)
            with pytest.raises(RemoteError) as caught:
                await config.set("rpc.timeout", value)
            assert caught.value.status == 400
            assert await config.get("rpc.timeout") == 5.0


# -- the configuration file and ``rackbus serve --config`` ---------------------------------


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: pathlib.Path) -> None:
    """TOML must be UTF-8; a file that is not is "not valid TOML" (``ConfigError`` naming
    the file), not a ``UnicodeDecodeError`` escaping ``load_config`` (``tomllib.load``
    decodes before it parses)."""
    path = tmp_path / "rackbus.toml"
    path.write_bytes(b'state_dir = "/tmp/\xff\xfe"\n')
    with pytest.raises(ConfigError, match=r"rackbus\.toml"):
        load_config(path)


def _subnet(state: pathlib.Path, **dhcp: object) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in dhcp.items())
    return (
        f'state_dir = "{state}"\n[dhcp]\naddress = "127.0.0.1"\n{extra}'
        '[[dhcp.subnet]]\nnetwork = "127.0.0.0/24"\nrange = ["127.0.0.100", "127.0.0.199"]\n'
    )


SERVE_CASES = {
    "not-utf8": lambda tmp: b'[nodes]\n"52:54:00:12:34:56" = "n\xff"\n',
    "tftp-port-out-of-range": lambda tmp: (
        f'state_dir = "{tmp / "state"}"\n[tftp]\naddress = "127.0.0.1"\nport = 70000\n'
        f'root = "{tmp}"\n'
    ).encode(),
    "dhcp-port-out-of-range": lambda tmp: _subnet(tmp / "state", port=70000).encode(),
    "state-dir-is-a-file": lambda tmp: f'state_dir = "{tmp / "rackbus.toml"}"\n'.encode(),
    "lease-file-in-a-missing-directory": lambda tmp: _subnet(
        tmp / "state", port=0, lease_file='"no/such/dir/leases.sqlite3"'
    ).encode(),
    "lease-file-not-a-database": lambda tmp: _subnet(
        tmp / "state", port=0, lease_file=f'"{tmp / "rackbus.toml"}"'
    ).encode(),
}


@pytest.mark.parametrize("case", sorted(SERVE_CASES))
def test_serve_refuses_a_bad_config_with_status_2_and_no_traceback(
    tmp_path: pathlib.Path, case: str
) -> None:
    """``rackbus serve --config`` names what is wrong in one line and exits with status 2
    (as it does for a port in use), with no Python traceback, for a file that is not
    UTF-8, a port outside 0-65535 (which would crash ``bind()``), a ``state_dir`` that
    is a file, and a DHCP ``lease_file`` that cannot be opened or is no SQLite database."""
    config = tmp_path / "rackbus.toml"
    config.write_bytes(SERVE_CASES[case](tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "actors.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"tftp": {"address": "127.0.0.1", "root": "/srv", "port": 70000}}, "config.tftp.port"),
        ({"dhcp": {"address": "10.1.0.1", "subnet": [], "port": -1}}, "config.dhcp.port"),
        (
            {"dhcp": {"address": "10.1.0.1", "subnet": [], "proxy_port": 65536}},
            "config.dhcp.proxy_port",
        ),
        (
            {
                "dhcp": {
                    "address": "10.1.0.1",
                    "subnet": [
                        {
                            "network": "10.1.0.0/24",
                            "range": ["10.1.0.100", "10.1.0.199"],
                            "lease_time": -5,
                        }
                    ],
                }
            },
            "lease_time",
        ),
        ({"pollers": {"timeout": math.nan}}, "config.pollers.timeout"),
        ({"pollers": {"timeout": -1.0}}, "config.pollers.timeout"),
        ({"pollers": {"graph_id": "pollers.#"}}, "config.pollers.graph_id"),
    ],
    ids=["tftp-port", "dhcp-port", "proxy-port", "lease-time", "nan-timeout", "neg-timeout",
         "graph-id"],
)  # fmt: skip
def test_values_that_cannot_work_are_refused_by_name(data: dict[str, Any], named: str) -> None:
    """``parse_config`` refuses values that cannot work with a ``ConfigError`` naming the
    key, before anything starts: ports outside 0-65535 (they crash ``bind()``); a
    ``lease_time`` that does not fit DHCP's 32 bits (every reply to a client would be
    dropped); a poll timeout that is NaN (every poll would fail) or not greater than 0;
    and a ``graph_id`` that is no routing-key word (``pollers.#``: every poller would
    crash on its first publish, ``check_id`` in ``KeyDef.key``)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert named in str(caught.value)


# -- the poller service ----------------------------------------------------------------------


def _tools() -> PollerTools:
    return PollerTools(CredentialStore({"bmc": Credentials("admin", "Zq8-pw")}), "pollers")


async def test_a_definition_with_a_bad_alert_rule_is_refused_and_never_stored(
    autojump_clock: Any,
) -> None:
    """Alert rules are compiled (``AlertRule.from_config``) when a definition is made, so
    a rule with a bad regex (or severity) is refused with a ``PollerDefinitionError``
    naming it: at once in Python, and with a 400 when the definition arrives as JSON,
    with nothing stored. A definition with such a rule already in the store is skipped
    (and logged) when the service starts, so the service and the other pollers still
    start."""
    fields: dict[str, Any] = {
        "id": "p1", "type": "ipmi", "command": "sel", "nodeId": "node-1", "host": "10.1.0.7",
        "credentialsRef": "bmc", "alerts": [{"event": "/(/"}],
    }  # fmt: skip
    with pytest.raises(PollerDefinitionError, match=r"alerts\[0\]"):
        PollerDefinition(**fields)
    store = MemoryConfigStore()
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(PollerService, store, _tools(), key=poller_service.SERVICE_KEY)
            address = rt.own_address(poller_service.SERVICE_KEY)
            with pytest.raises(RemoteError) as caught:
                await rt.call(address, {"definition": fields})
            assert caught.value.status == 400
            assert "alert" in caught.value.message
            assert store.values == {}
        good = {**fields, "id": "p2", "alerts": []}
        store.values.update({"p1": fields, "p2": good})  # "p1" as stored before the check
        async with Runtime() as rt:
            await rt.spawn(
                PollerService, store, _tools(), key=poller_service.SERVICE_KEY,
                restart=Restart.PERMANENT,
            )  # fmt: skip
            assert [d.id for d in await PollerClient(rt).list()] == ["p2"]


async def test_a_stored_poller_that_cannot_start_does_not_stop_the_others(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller service starts every stored poller when it starts; one that fails to
    start is skipped (and logged) instead of failing the service, and the others run."""

    class Failing(PollerActor):
        async def on_start(self) -> None:
            if self.definition.id == "broken":
                raise RuntimeError("cannot start")
            await super().on_start()

    monkeypatch.setattr(poller_service, "PollerActor", Failing)
    store = MemoryConfigStore()
    for poller_id in ("broken", "fine"):
        definition = PollerDefinition(
            id=poller_id, type="ipmi", command="power", nodeId="node-1", host="10.1.0.7",
            credentialsRef="bmc", paused=True,
        )  # fmt: skip
        store.values[poller_id] = json.loads(json.dumps(attrs.asdict(definition)))
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(PollerService, store, _tools(), key=poller_service.SERVICE_KEY)
            assert [d.id for d in await PollerClient(rt).list()] == ["fine"]
            assert rt.lookup(poller_service.poller_key("fine")) is not None


# -- the DHCP service ------------------------------------------------------------------------

ROUTER = IPv4Address("10.1.0.1")
SERVER = IPv4Address("10.1.0.2")
SUBNET = dhcp.Subnet(
    "10.1.0.0/24", ((IPv4Address("10.1.0.10"), IPv4Address("10.1.0.99")),), router=(ROUTER,)
)


@pytest.mark.parametrize("ip", ["10.1.0.255", "10.1.0.0", "10.1.0.1", "10.1.0.2"])
async def test_pin_ip_refuses_addresses_that_are_never_handed_out(
    autojump_clock: Any, ip: str
) -> None:
    """``Subnet``: "the network and broadcast addresses and the routers are never handed
    out", and neither is the server's own address. ``methods.pinIp`` refuses them with a
    400 naming the IP rather than pin a client to 10.1.0.255 (broadcast), 10.1.0.0
    (network), the router's address or the server's."""
    table = dhcp.LeaseTable([SUBNET], store=dhcp.MemoryLeaseStore())
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(
                dhcp_service.DhcpService, table, lambda: 1_700_000_000.0, (SERVER,),
                key=dhcp_service.SERVICE_KEY,
            )  # fmt: skip
            with pytest.raises(RemoteError) as caught:
                await DhcpClient(rt).pin_ip("52:54:00:00:00:07", ip)
            assert caught.value.status == 400
            assert ip in caught.value.message
            assert table.by_ip(IPv4Address(ip)) is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"interval": 0.5}, "interval"), ({"port": 70000}, "port"), ({"id": "a.b"}, "poller id")],
)
async def test_a_bad_create_request_over_the_bus_is_refused_not_answered_with_the_list(
    autojump_clock: Any, changes: dict[str, Any], named: str
) -> None:
    """A create request whose definition is invalid gets a 400 naming the field. The
    service's own address serves three handlers, and ``ListPollers`` has no fields, so
    an untyped JSON request that does not decode into ``CreatePoller`` (or
    ``PollerRequest``) would decode into ``ListPollers``; the service refuses it instead
    of answering with the poller list, as if the create had worked."""
    definition = {
        "id": "p1", "type": "ipmi", "command": "power", "nodeId": "node-1",
        "host": "10.1.0.7", "credentialsRef": "bmc", **changes,
    }  # fmt: skip
    with trio.fail_after(30):
        async with Runtime() as rt:
            await rt.spawn(PollerService, MemoryConfigStore(), _tools(), key="pollers")
            address = rt.own_address(poller_service.SERVICE_KEY)
            with pytest.raises(RemoteError) as caught:
                await rt.call(address, {"definition": definition})
            assert caught.value.status == 400
            assert named in caught.value.message
