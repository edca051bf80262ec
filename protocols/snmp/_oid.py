"""Numeric object identifiers: parsed once, compared as tuples, no MIB needed."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import attrs

_MAX_ARC = 2**32 - 1
#: RFC 2578: at most 128 sub-identifiers.
MAX_OID_LENGTH = 128


def _to_arcs(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_arcs(
    instance: object, attribute: attrs.Attribute[tuple[int, ...]], arcs: tuple[int, ...]
) -> None:
    if not 1 <= len(arcs) <= MAX_OID_LENGTH:
        raise ValueError(f"an OID has 1 to {MAX_OID_LENGTH} sub-identifiers, not {len(arcs)}")
    for arc in arcs:
        if not isinstance(arc, int) or isinstance(arc, bool) or not 0 <= arc <= _MAX_ARC:
            raise ValueError(f"OID sub-identifier {arc!r} is not an integer in 0..2**32-1")


@functools.total_ordering
@attrs.frozen(order=False)
class Oid:
    """An object identifier such as ``1.3.6.1.2.1.1.1.0``; ordered as SNMP orders them."""

    arcs: tuple[int, ...] = attrs.field(converter=_to_arcs, validator=_check_arcs)

    @classmethod
    def parse(cls, text: str | Oid | tuple[int, ...]) -> Oid:
        """An OID from dotted text (a leading dot is allowed), a tuple or an ``Oid``."""
        if isinstance(text, Oid):
            return text
        if isinstance(text, tuple):
            return cls(text)
        stripped = text.strip().lstrip(".")
        try:
            return cls(tuple(int(part) for part in stripped.split(".")))
        except ValueError:
            raise ValueError(f"{text!r} is not a numeric OID") from None

    def __str__(self) -> str:
        return ".".join(map(str, self.arcs))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Oid):
            return NotImplemented
        return self.arcs < other.arcs

    def __len__(self) -> int:
        return len(self.arcs)

    def child(self, *arcs: int) -> Oid:
        """This OID extended by ``arcs`` (a column and row index, for example)."""
        return Oid((*self.arcs, *arcs))

    def is_within(self, root: Oid) -> bool:
        """Whether this OID lies strictly under ``root`` (in its subtree, not ``root`` itself)."""
        return len(self.arcs) > len(root.arcs) and self.arcs[: len(root.arcs)] == root.arcs

    def suffix(self, root: Oid) -> tuple[int, ...]:
        """The arcs after ``root`` (the row index in a table column)."""
        if not self.is_within(root):
            raise ValueError(f"{self} is not under {root}")
        return self.arcs[len(root.arcs) :]
