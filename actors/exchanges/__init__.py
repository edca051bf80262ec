"""The nine exchanges of the conventions, one module each, in the order the conventions list them.

Every exchange is a durable topic exchange named ``on.<name>``. Each module
holds the exchange's routing keys (``KeyDef``), payload classes and client.
"""

from ..convention import ExchangeDef
from . import (
    configuration,
    dhcp,
    events,
    http,
    logging,
    scheduler,
    task,
    task_graph_runner,
    tftp,
)

ALL: tuple[ExchangeDef, ...] = (
    configuration.EXCHANGE,
    events.EXCHANGE,
    http.EXCHANGE,
    dhcp.EXCHANGE,
    tftp.EXCHANGE,
    logging.EXCHANGE,
    task_graph_runner.EXCHANGE,
    scheduler.EXCHANGE,
    task.EXCHANGE,
)
"""The nine exchanges."""

BY_NAME = {exchange.name: exchange for exchange in ALL}
"""The exchanges by AMQP name."""

__all__ = [
    "ALL",
    "BY_NAME",
    "configuration",
    "dhcp",
    "events",
    "http",
    "logging",
    "scheduler",
    "task",
    "task_graph_runner",
    "tftp",
]
