"""Message naming: the wire type names of attrs message classes and of plain JSON values.

:func:`message` tags an attrs class with the name it travels under (RackHD puts it
in the AMQP ``type`` property); :func:`wire_type_name` gives the name of any
encodable value, ``"Object"`` for plain JSON values as defined in :mod:`runtime.codec`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import Final, TypeVar

import attrs

from .errors import EncodeError

__all__ = [
    "OBJECT_TYPE",
    "TYPE_ATTR",
    "message",
    "wire_type_name",
]

T = TypeVar("T")

TYPE_ATTR: Final = "__rackbus_type__"
"""Class attribute holding a message class's wire type name."""

OBJECT_TYPE: Final = "Object"
"""Wire type name of plain JSON values."""

_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})

_WIRE_NAMES: dict[type, str] = {}
"""Cache for :func:`wire_type_name`, per class."""


# ----------------------------------------------------------------------------- naming


def message(type_name: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator recording the wire type name of an attrs message class.

    The name defaults to the class ``__name__``.  Put it above ``@attrs.frozen``::

        @message("Result")
        @attrs.frozen
        class Result: ...
    """
    if type_name is not None and (not isinstance(type_name, str) or not type_name):
        raise TypeError(
            f"message() takes a non-empty wire type name, got {type_name!r}"
            " (write @message() or @message('Name'), not @message)"
        )

    def decorate(cls: type[T]) -> type[T]:
        setattr(cls, TYPE_ATTR, type_name if type_name is not None else cls.__name__)
        _WIRE_NAMES.pop(cls, None)
        return cls

    return decorate


def _declared_name(cls: type) -> str | None:
    """The wire name given to *cls* itself by :func:`message` (not inherited)."""
    name = cls.__dict__.get(TYPE_ATTR)
    return name if isinstance(name, str) else None


def _is_plain_class(cls: type) -> bool:
    """Whether instances of *cls* are JSON values (see the :mod:`runtime.codec` docstring)."""
    return (
        cls in _SCALARS
        or cls is tuple
        or issubclass(cls, (dict, list, str, int, float, enum.Enum, uuid.UUID))
    )


def wire_type_name(obj: object) -> str:
    """The wire type name of *obj*: its message name, or ``"Object"`` for plain JSON values.

    An attrs instance whose class was not given a name by :func:`message` goes by its
    class ``__name__``.  Raises :class:`EncodeError` for anything that cannot be encoded.
    """
    cls = obj.__class__
    name = _WIRE_NAMES.get(cls)
    if name is None:
        if attrs.has(cls):
            name = _declared_name(cls) or cls.__name__
        elif _is_plain_class(cls):
            name = OBJECT_TYPE
        else:
            raise EncodeError(_unencodable(obj))
        _WIRE_NAMES[cls] = name
    return name


def _type_label(obj: object) -> str:
    cls = obj.__class__
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _unencodable(obj: object) -> str:
    return (
        f"cannot encode a value of type {_type_label(obj)}:"
        " it is neither an attrs message nor a JSON value"
    )
