"""``on.logging``: every log line as a ``LogEvent``, on the routing key of its level.

The eight levels are the conventions' (``emerg alert error warning notice info
debug silly``), ranked as RackHD ranked them before 2016: ``silly`` 0 up to
``emerg`` 8 (RackHD's ``crit`` at 6 has no key of its own). The payload is
the RackHD ``LogEvent`` envelope ``{name, host, module, level, message,
context, timestamp, caller, subject}``; secrets are redacted before anything
is published (see ``actors.redaction``).
"""

from __future__ import annotations

from runtime import LogEvent

from ..convention import Client, ExchangeDef, KeyDef, Kind

NAME = "on.logging"

LEVELS = ("emerg", "alert", "error", "warning", "notice", "info", "debug", "silly")
"""The levels, most severe first."""

RANK = {
    "emerg": 8,
    "alert": 7,
    "error": 5,
    "warning": 4,
    "notice": 3,
    "info": 2,
    "debug": 1,
    "silly": 0,
}
"""Numeric rank of each level (higher is more severe)."""

KEYS = {
    level: KeyDef(NAME, level, Kind.EVENT, LogEvent, stub="log", seed=level, doc=f"{level} lines")
    for level in LEVELS
}


def check_level(level: object) -> str:
    """Return ``level`` if it is one of the eight, else raise ``ValueError`` naming them."""
    if not isinstance(level, str) or level not in RANK:
        raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(LEVELS)}")
    return str(level)


class LoggingClient(Client):
    """Publishes log events: ``await LoggingClient(rt).log(event)``."""

    async def log(self, event: LogEvent) -> None:
        """Publish ``event`` on the key of its level."""
        await self._publish(KEYS[check_level(event.level)], event)


EXCHANGE = ExchangeDef(NAME, "Logging", "log lines by level", tuple(KEYS.values()), LoggingClient)
