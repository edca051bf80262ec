"""Typed SNMP values (RFC 2578/3416), independent of pysnmp's classes.

Each SMI type is its own frozen record, so a ``Counter32`` is never mistaken for a ``Gauge32``;
the exception markers (``NoSuchObject``, ``NoSuchInstance``, ``EndOfMibView``) and ``Null`` are
explicit values rather than ``None``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import attrs

from ._oid import Oid


def _bounded(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{type(instance).__name__} must be an integer in {low}..{high}")

    return check


@attrs.frozen
class Integer:
    """INTEGER / Integer32."""

    value: int = attrs.field(validator=_bounded(-(2**31), 2**31 - 1))


@attrs.frozen
class Counter32:
    """A wrapping 32-bit counter."""

    value: int = attrs.field(validator=_bounded(0, 2**32 - 1))


@attrs.frozen
class Counter64:
    """A wrapping 64-bit counter (the ifXTable HC counters)."""

    value: int = attrs.field(validator=_bounded(0, 2**64 - 1))


@attrs.frozen
class Gauge32:
    """Gauge32 / Unsigned32."""

    value: int = attrs.field(validator=_bounded(0, 2**32 - 1))


@attrs.frozen
class TimeTicks:
    """Hundredths of a second."""

    value: int = attrs.field(validator=_bounded(0, 2**32 - 1))

    @property
    def seconds(self) -> float:
        """The value in seconds."""
        return self.value / 100


def printable(data: bytes) -> str | None:
    """``data`` as text when it is printable UTF-8 (tabs and line breaks allowed), else ``None``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return text
    return None


@attrs.frozen
class OctetString:
    """An OCTET STRING: the bytes, and ``text`` when they are printable."""

    value: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))

    @property
    def text(self) -> str | None:
        """The bytes as text, or ``None`` when they are not printable UTF-8."""
        return printable(self.value)

    def __str__(self) -> str:
        text = self.text
        return text if text is not None else self.value.hex(":")


@attrs.frozen
class ObjectIdentifier:
    """An OBJECT IDENTIFIER value (for example sysObjectID)."""

    value: Oid = attrs.field(validator=attrs.validators.instance_of(Oid))


@attrs.frozen
class IpAddress:
    """An IpAddress (always IPv4 in SMIv2)."""

    value: ipaddress.IPv4Address = attrs.field(
        validator=attrs.validators.instance_of(ipaddress.IPv4Address)
    )


@attrs.frozen
class Opaque:
    """Opaque: BER-wrapped bytes, kept as they came."""

    value: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))


@attrs.frozen
class Null:
    """The NULL value."""


@attrs.frozen
class NoSuchObject:
    """Marker: the agent implements no such object."""


@attrs.frozen
class NoSuchInstance:
    """Marker: the object exists but not that instance."""


@attrs.frozen
class EndOfMibView:
    """Marker: nothing follows this OID in the agent's MIB view."""


SnmpValue = (
    Integer
    | Counter32
    | Counter64
    | Gauge32
    | TimeTicks
    | OctetString
    | ObjectIdentifier
    | IpAddress
    | Opaque
    | Null
    | NoSuchObject
    | NoSuchInstance
    | EndOfMibView
)

#: The markers that say "no value here".
EXCEPTION_VALUES = (NoSuchObject, NoSuchInstance, EndOfMibView)


@attrs.frozen
class VarBind:
    """One variable binding: an OID and its value."""

    oid: Oid
    value: SnmpValue

    @property
    def is_exception(self) -> bool:
        """Whether the value is one of the no-value markers."""
        return isinstance(self.value, EXCEPTION_VALUES)
