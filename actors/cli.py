"""The ``rackbus`` command: ``rackbus serve`` runs the services on the embedded bus."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import trio

from runtime import MemoryBus, Runtime

log = logging.getLogger("rackbus.serve")

SERVICES: tuple[str, ...] = ()
"""Names of the services ``serve`` starts; each later service adds itself here."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="rackbus",
        description="Bare-metal provisioning services on the RackHD message-bus conventions.",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="console log level (default: info)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the services on the embedded in-memory bus until SIGINT/SIGTERM",
        description="Start a runtime on the embedded in-memory bus with every available "
        "service, log what started, and run until SIGINT or SIGTERM.",
    )
    serve.set_defaults(func=serve_command)
    return parser


async def serve(ready: trio.Event | None = None) -> None:
    """Run the runtime and its services until SIGINT or SIGTERM arrives."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Runtime(MemoryBus(), name="rackbus") as runtime:
            log.info("runtime %r started on the in-memory bus", runtime.name)
            log.info("services: %s", ", ".join(SERVICES) if SERVICES else "none yet")
            log.info("ready; stop with SIGINT or SIGTERM")
            if ready is not None:
                ready.set()
            async for signum in signals:
                log.info("received %s, stopping", signal.Signals(signum).name)
                break
        log.info("stopped; %d actors left", len(runtime.registry))


def serve_command(args: argparse.Namespace) -> int:
    """``rackbus serve``."""
    trio.run(serve)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rackbus`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
