"""The TFTP service: serves a directory and reports every transfer on ``on.events``.

Each transfer that ends publishes ``tftp.success.<node>`` (``TftpSuccess``) or
``tftp.failure.<node>`` (``TftpFailure``, refusals included), the node looked
up from the client's address (``external`` when it maps to no known node).
Reports go through a bounded queue so that a slow bus never stalls transfers:
when it is full, reports are dropped, counted and logged, and the files are
still served.
"""

from __future__ import annotations

import logging

import attrs
import trio

from protocols.tftp import (
    DirectoryRoot,
    ServerConfig,
    TftpServer,
    TransferEvent,
    TransferSucceeded,
)
from runtime import Runtime, TaskChild

from ..config_file import TftpSection
from ..exchanges.events import EventsClient, TftpFailure, TftpSuccess
from .nodes import NodeDirectory
from .reports import Reports

log = logging.getLogger("rackbus.tftp")


def elapsed_ms(seconds: float) -> str:
    """RackHD's ``time`` field: elapsed milliseconds with three decimals."""
    return f"{seconds * 1000:.3f}"


@attrs.define
class TftpService:
    """A running TFTP server and the queue of its transfer reports."""

    server: TftpServer
    reports: Reports[TransferEvent]
    port: int = 0


def event_for(event: TransferEvent) -> TftpSuccess | TftpFailure:
    """The ``on.events`` payload of a transfer report."""
    if isinstance(event, TransferSucceeded):
        return TftpSuccess(
            file=event.filename,
            remoteAddress=event.remote_address,
            remotePort=event.remote_port,
            size=event.size,
            time=elapsed_ms(event.duration),
        )
    return TftpFailure(
        file=event.filename,
        remoteAddress=event.remote_address,
        remotePort=event.remote_port,
        size=event.size,
        time=elapsed_ms(event.duration),
        errorCode=event.error_code,
        errorMessage=event.message,
    )


async def start_tftp(runtime: Runtime, section: TftpSection, nodes: NodeDirectory) -> TftpService:
    """Start the TFTP server of ``section`` under ``runtime``'s root supervisor.

    Returns once the socket is bound; a socket that cannot be bound (address
    in use, no permission for port 69) raises ``OSError`` here.
    """
    if not section.root.is_dir():
        raise ValueError(f"TFTP root {section.root} is not a directory")
    events = EventsClient(runtime)

    async def publish(event: TransferEvent) -> None:
        node = nodes.node_for_ip(event.remote_address)
        payload = event_for(event)
        if isinstance(payload, TftpSuccess):
            await events.tftp_success(node, payload)
        else:
            await events.tftp_failure(node, payload)

    reports = Reports[TransferEvent]("TFTP", publish, log=log)
    config = ServerConfig(
        max_sessions=section.max_sessions,
        max_sessions_per_client=section.max_sessions_per_client,
    )
    server = TftpServer(
        DirectoryRoot(section.root),
        host=str(section.address),
        port=section.port,
        config=config,
        on_event=reports.submit,
    )
    service = TftpService(server, reports)

    async def run(*, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            service.port = await nursery.start(server.serve)
            nursery.start_soon(reports.run)
            task_status.started()

    await runtime.root.start_child(TaskChild("tftp", run, wait_started=True))
    log.info("TFTP: serving %s on %s:%d", section.root, section.address, service.port)
    return service
