"""Poll results as plain JSON data (for the bus and the poller cache)."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import attrs


def to_json(value: Any) -> Any:
    """``value`` (attrs records, enums, bytes, dates, collections) as JSON-ready data;
    any other value (an IP address, say) as its text."""
    if attrs.has(type(value)):
        return {f.name: to_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(to_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    # Anything else (an IP address, an OID, ...) as text: a result must cross any bus.
    return str(value)
