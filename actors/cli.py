"""The ``rackbus`` command.

* ``rackbus serve [--config FILE] [--amqp URL]``: a runtime on the embedded
  in-memory bus (or on RabbitMQ) with the configuration and logging services,
  and the TFTP, DHCP and poller services when the configuration file has
  their sections (see ``actors.config_file``), until SIGINT or SIGTERM;
* ``rackbus exchanges``: the nine exchanges and their routing keys, from the
  definitions in ``actors.exchanges``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Sequence

import attrs
import trio

from runtime import ActorStartError, AmqpBus, Bus, BusUnavailable, MemoryBus, Restart, Runtime
from runtime.amqp_url import AmqpAddress

from .config_file import ConfigError, ServeConfig, load_config
from .exchanges import ALL
from .pollers.credentials import credentials_from_config
from .pollers.service import start_pollers
from .services.config_store import SqliteConfigStore
from .services.configuration import SERVICE_KEY, ConfigurationService
from .services.dhcp import start_dhcp
from .services.logging import ConsoleFormatter, LogPublisher, WhileBusDown, start_logging
from .services.nodes import NodeDirectory
from .services.tftp import start_tftp

log = logging.getLogger("rackbus.serve")


def default_state_dir() -> pathlib.Path:
    """``$RACKBUS_STATE_DIR``, else ``$XDG_STATE_HOME/rackbus``, else ``~/.local/state/rackbus``."""
    if "RACKBUS_STATE_DIR" in os.environ:
        return pathlib.Path(os.environ["RACKBUS_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return pathlib.Path(base) / "rackbus"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="rackbus",
        description="Bare-metal provisioning services on the RackHD message-bus conventions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the services on the embedded in-memory bus until SIGINT/SIGTERM",
        description="Start a runtime on the embedded in-memory bus with the configuration "
        "and logging services, print its log, and run until SIGINT or SIGTERM.",
    )
    serve.add_argument(
        "--config",
        type=pathlib.Path,
        default=os.environ.get("RACKBUS_CONFIG"),
        metavar="FILE",
        help="TOML configuration file: [amqp], [nodes], [dhcp], [tftp] (default: "
        "$RACKBUS_CONFIG; without one, only the configuration and logging services run)",
    )
    serve.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=None,
        help="where settings and leases persist (default: the file's state_dir, else "
        "$RACKBUS_STATE_DIR, else ~/.local/state/rackbus)",
    )
    serve.add_argument(
        "--amqp",
        metavar="URL",
        default=None,
        help="run on RabbitMQ at URL (amqp:// or amqps://; credentials may also come from "
        "RACKBUS_AMQP_USER and RACKBUS_AMQP_PASSWORD) instead of the in-memory bus",
    )
    serve.set_defaults(func=serve_command)
    exchanges = commands.add_parser(
        "exchanges", help="print the nine exchanges and their routing keys"
    )
    exchanges.set_defaults(func=exchanges_command)
    return parser


async def serve(
    state_dir: pathlib.Path,
    amqp: str | AmqpAddress | None = None,
    config: ServeConfig | None = None,
) -> None:
    """Run the services until SIGINT or SIGTERM arrives."""
    config = config or ServeConfig()
    bus: Bus = MemoryBus() if amqp is None else AmqpBus(amqp, name="rackbus")
    where = "the in-memory bus" if amqp is None else f"RabbitMQ at {bus}"
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Runtime(bus, name="rackbus") as runtime:
            for exchange in ALL:  # as RackHD's services did, so any may bind first
                await bus.declare(exchange.name)
            store = SqliteConfigStore(state_dir / "config.sqlite3")
            await runtime.spawn(
                ConfigurationService, store, key=SERVICE_KEY, restart=Restart.PERMANENT
            )
            publisher = await start_logging(runtime)
            _console_only_while_bus_down(publisher)
            log.info("runtime %r started on %s", runtime.name, where)
            log.info("configuration service: settings in %s", store.path)
            log.info("logging service: publishing on on.logging")
            nodes = NodeDirectory(config.nodes)
            if config.tftp is not None:
                await start_tftp(runtime, config.tftp, nodes)
            if config.dhcp is not None:
                await start_dhcp(runtime, config.dhcp, nodes, state_dir)
            if config.pollers is not None:
                await start_pollers(
                    runtime,
                    SqliteConfigStore(state_dir / "pollers.sqlite3", table="pollers"),
                    credentials_from_config(config.credentials),
                    graph_id=config.pollers.graph_id,
                    timeout=config.pollers.timeout,
                    snmp_enabled=config.pollers.snmp,
                )
                log.info("poller service: definitions in %s", state_dir / "pollers.sqlite3")
            log.info("ready; stop with SIGINT or SIGTERM")
            async for signum in signals:
                log.info("received %s, stopping", signal.Signals(signum).name)
                break
        log.info("stopped; %d actors left", len(runtime.registry))


def _console_only_while_bus_down(publisher: LogPublisher) -> None:
    """While the bus publishes logs its console printer prints them; before and after, stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.addFilter(WhileBusDown(publisher))


def _use_console_logging() -> None:
    """Print INFO and above straight to stderr (before the bus is up and after it is gone).

    The root logger passes everything on, so the bus handler alone decides by
    the live ``logging.level`` setting.
    """
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    console.setFormatter(ConsoleFormatter())
    logging.basicConfig(level=1, handlers=[console], force=True)


def amqp_address(url: str | None, config: ServeConfig) -> AmqpAddress | None:
    """Where the broker is: ``--amqp`` beats the environment, which beats ``[amqp]``."""
    if url is None and config.amqp is None:
        return None
    settings = {} if config.amqp is None else attrs.asdict(config.amqp)
    given = {key: str(value) for key, value in settings.items() if value is not None}
    return AmqpAddress.from_config(given, url=url)


def serve_command(args: argparse.Namespace) -> int:
    """``rackbus serve``."""
    try:
        config = load_config(args.config) if args.config else ServeConfig()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    state_dir = args.state_dir or config.state_dir or default_state_dir()
    problem = _unusable_state_dir(state_dir)
    if problem is not None:
        log.error("%s", problem)
        return 2
    try:
        amqp = amqp_address(args.amqp, config)
        trio.run(serve, state_dir, amqp, config)
    except (BusUnavailable, OSError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except ActorStartError as exc:
        # A service could not start (its store cannot be opened...): name it and the cause.
        cause = exc.__cause__
        log.error("%s", exc if cause is None else f"{exc}: {cause}")
        return 2
    return 0


def _unusable_state_dir(state_dir: pathlib.Path) -> str | None:
    """Why ``state_dir`` cannot hold the state (after creating it if missing), or None."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"state directory {state_dir} is not a directory"
    except OSError as exc:
        return f"cannot create state directory {state_dir}: {exc.strerror or exc}"
    return None


def exchanges_command(args: argparse.Namespace) -> int:
    """``rackbus exchanges``."""
    for exchange in ALL:
        print(f"{exchange.name}  ({exchange.title}): {exchange.summary}")
        if not exchange.keys:
            print("    (no routing keys)")
        for key in exchange.keys:
            note = "" if key.seed is not None else "  [addition]"
            print(f"    {key.template:<44} {key.kind.value:<8}{note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rackbus`` console script."""
    args = build_parser().parse_args(argv)
    _use_console_logging()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
