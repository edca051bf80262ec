"""Pure conversion between pysnmp's value objects and the typed values of :mod:`._values`.

Dispatch is on the ASN.1 tag, as on the wire: ``Unsigned32`` and ``Gauge32`` share a tag and
both become :class:`Gauge32`; ``Bits`` is an OCTET STRING on the wire and becomes one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from pyasn1.type import univ  # type: ignore[import-untyped, unused-ignore]
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped, unused-ignore]

from ._oid import Oid
from ._values import (
    Counter32,
    Counter64,
    EndOfMibView,
    Gauge32,
    Integer,
    IpAddress,
    NoSuchInstance,
    NoSuchObject,
    Null,
    ObjectIdentifier,
    OctetString,
    Opaque,
    SnmpValue,
    TimeTicks,
    VarBind,
)


class ConversionError(ValueError):
    """A pysnmp value of a type (or range) that SNMP does not define."""


_FROM: dict[Any, Callable[[Any], SnmpValue]] = {
    rfc1902.Integer32.tagSet: lambda v: Integer(int(v)),
    rfc1902.Counter32.tagSet: lambda v: Counter32(int(v)),
    rfc1902.Counter64.tagSet: lambda v: Counter64(int(v)),
    rfc1902.Gauge32.tagSet: lambda v: Gauge32(int(v)),
    rfc1902.TimeTicks.tagSet: lambda v: TimeTicks(int(v)),
    rfc1902.OctetString.tagSet: lambda v: OctetString(bytes(v)),
    rfc1902.IpAddress.tagSet: lambda v: IpAddress(ipaddress.IPv4Address(bytes(v))),
    rfc1902.Opaque.tagSet: lambda v: Opaque(bytes(v)),
    rfc1902.ObjectIdentifier.tagSet: lambda v: ObjectIdentifier(Oid(tuple(v))),
    univ.Null.tagSet: lambda v: Null(),
    rfc1905.NoSuchObject.tagSet: lambda v: NoSuchObject(),
    rfc1905.NoSuchInstance.tagSet: lambda v: NoSuchInstance(),
    rfc1905.EndOfMibView.tagSet: lambda v: EndOfMibView(),
}


def from_pysnmp(value: Any) -> SnmpValue:
    """The typed value of a pysnmp/pyasn1 value object."""
    convert = _FROM.get(getattr(value, "tagSet", None))
    if convert is None:
        raise ConversionError(f"unsupported SNMP value type {type(value).__name__}")
    try:
        return convert(value)
    except (ValueError, TypeError) as exc:
        raise ConversionError(f"bad {type(value).__name__} value: {exc}") from None


def to_pysnmp(value: SnmpValue) -> Any:
    """The pysnmp value object for a typed value (for requests, and for round-trip tests)."""
    match value:
        case Integer(v):
            return rfc1902.Integer32(v)
        case Counter32(v):
            return rfc1902.Counter32(v)
        case Counter64(v):
            return rfc1902.Counter64(v)
        case Gauge32(v):
            return rfc1902.Gauge32(v)
        case TimeTicks(v):
            return rfc1902.TimeTicks(v)
        case OctetString(v):
            return rfc1902.OctetString(v)
        case IpAddress(v):
            return rfc1902.IpAddress(v.packed)
        case Opaque(v):
            return rfc1902.Opaque(v)
        case ObjectIdentifier(v):
            return rfc1902.ObjectIdentifier(v.arcs)
        case Null():
            return univ.Null("")
        case NoSuchObject():
            return rfc1905.noSuchObject
        case NoSuchInstance():
            return rfc1905.noSuchInstance
        case EndOfMibView():
            return rfc1905.endOfMibView
    raise ConversionError(f"not an SNMP value: {value!r}")


def varbind_from_pysnmp(name: Any, value: Any) -> VarBind:
    """A :class:`VarBind` from pysnmp's (name, value) pair (``ObjectType`` unpacks to this)."""
    return VarBind(Oid(tuple(name)), from_pysnmp(value))
