"""The RackHD messenger's envelopes, each registered under its AMQP ``type`` name.

RackHD's messenger wraps what it sends in a few standard envelopes and names each
in the AMQP ``type`` property: ``Result`` for replies, ``ErrorEvent`` for errors,
``IpAddress`` and ``MacAddress`` for addresses and ``LogEvent`` for log events.
Every :class:`~runtime.codec.Codec` registers them under those names.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import traceback
from collections.abc import Mapping
from typing import Any, Final, Self

import attrs

from .errors import RemoteError
from .message import _type_label, message

__all__ = [
    "ErrorEvent",
    "IpAddress",
    "LogEvent",
    "MacAddress",
    "Result",
]


class _FieldError(ValueError):
    """A validator failure, shaped like attrs' own: ``args == (message, attribute, value)``."""

    def __str__(self) -> str:
        return str(self.args[0])


class _FieldTypeError(TypeError):
    """A validator type failure, shaped like attrs' own."""

    def __str__(self) -> str:
        return str(self.args[0])


@functools.lru_cache(maxsize=4096)
def _is_ipv4(text: str) -> bool:
    """Whether *text* is a dotted-quad IPv4 address (cached: fleets repeat addresses)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _check_ipv4(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise _FieldTypeError(
            f"{attribute.name} must be a str, got {_type_label(value)}", attribute, value
        )
    if not _is_ipv4(value):
        raise _FieldError(
            f"{attribute.name} must be a dotted IPv4 address, got {value!r}", attribute, value
        )


_MAC_RE: Final = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _lower(value: str) -> str:
    return value.lower() if isinstance(value, str) else value


def _check_mac(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise _FieldTypeError(
            f"{attribute.name} must be a str, got {_type_label(value)}", attribute, value
        )
    if _MAC_RE.fullmatch(value) is None:
        raise _FieldError(
            f"{attribute.name} must be six colon-separated hex pairs, got {value!r}",
            attribute,
            value,
        )


@message("Result")
@attrs.frozen
class Result:
    """RackHD's generic reply envelope: ``{"value": ...}``."""

    value: Any = None


@message("ErrorEvent")
@attrs.frozen
class ErrorEvent:
    """RackHD's error reply; ``status`` is left out of the JSON when it is ``None``."""

    name: str
    message: str
    stack: str = ""
    context: dict[str, Any] = attrs.Factory(dict)
    status: int | None = None

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> Self:
        """Describe *exc*: its class name, its text and its formatted traceback."""
        return cls(
            name=type(exc).__name__,
            message=str(exc),
            stack="".join(traceback.format_exception(exc)),
            context=dict(context) if context is not None else {},
            status=status,
        )

    def to_error(self) -> RemoteError:
        """The :class:`RemoteError` to raise in the caller for this event."""
        return RemoteError(self.name, self.message, self.stack, self.context, self.status)


@message("IpAddress")
@attrs.frozen
class IpAddress:
    """A dotted-quad IPv4 address: ``{"value": "10.1.1.3"}``."""

    value: str = attrs.field(validator=_check_ipv4)


@message("MacAddress")
@attrs.frozen
class MacAddress:
    """A MAC address as six colon-separated hex pairs, kept in lower case."""

    value: str = attrs.field(converter=_lower, validator=_check_mac)


@message("LogEvent")
@attrs.frozen
class LogEvent:
    """RackHD's log event; ``timestamp`` is an ISO 8601 string."""

    level: str
    message: str
    timestamp: str
    caller: str
    subject: str = "Server"
    name: str = ""
    host: str = ""
    module: str = ""
    context: dict[str, Any] = attrs.Factory(dict)


_ENVELOPES: Final[tuple[type, ...]] = (Result, ErrorEvent, IpAddress, MacAddress, LogEvent)
