"""Message encoding: attrs messages and plain JSON values to and from RackHD's wire format.

Messages are frozen, slotted attrs classes tagged with a wire type name by
:func:`message`.  A :class:`Codec` keeps a registry of those names and a cattrs
converter (the orjson preset) that turns messages into JSON-compatible data and
structures untrusted input back into them.  orjson does the actual JSON work.

The wire type name travels beside the body (RackHD puts it in the AMQP ``type``
property); plain JSON values travel as ``"Object"``, as RackHD sends them.

What counts as a JSON value here is what orjson writes: ``dict`` (with ``str``
keys), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``,
subclasses of ``dict``, ``list``, ``str``, ``int`` and ``float``, enum members
(as their value) and UUIDs (as strings).  Attrs instances may appear anywhere
inside one.  Anything else (bytes, sets, datetimes, dataclasses, arbitrary
objects) is refused with :class:`~runtime.errors.EncodeError`.  Integers must
fit in 64 bits when encoded, and non-finite floats are written as ``null``, as
JavaScript's ``JSON.stringify`` does.

:func:`message` and :func:`wire_type_name` live in :mod:`runtime.message` and
RackHD's envelopes in :mod:`runtime.envelopes`; both are re-exported here.
Decoding is strict about JSON types (:mod:`runtime.structuring`) and reports each
bad field (:mod:`runtime.decode_errors`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence as AbcSequence
from datetime import date, datetime
from typing import Any, Final, TypeVar, overload

import attrs
import orjson
from attrs.exceptions import NotAnAttrsClassError
from cattrs.errors import StructureHandlerNotFoundError
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter

from .decode_errors import decode_error
from .envelopes import _ENVELOPES, ErrorEvent, IpAddress, LogEvent, MacAddress, Result
from .errors import DecodeError, EncodeError
from .message import (
    _SCALARS,
    OBJECT_TYPE,
    TYPE_ATTR,
    _declared_name,
    _is_plain_class,
    _type_label,
    _unencodable,
    message,
    wire_type_name,
)
from .structuring import register_strict_hooks

__all__ = [
    "OBJECT_TYPE",
    "TYPE_ATTR",
    "Codec",
    "ErrorEvent",
    "IpAddress",
    "LogEvent",
    "MacAddress",
    "Result",
    "message",
    "wire_type_name",
]

T = TypeVar("T")

_ORJSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

# What a Codec does with instances of a class (cached per class).
_SCALAR: Final = 0  # str, int, float, bool, None: immutable JSON values
_FROZEN: Final = 1  # frozen attrs classes: immutable messages
_ATTRS: Final = 2  # attrs classes that are not frozen
_PLAIN: Final = 3  # other JSON values (containers, subclasses, enums, UUIDs)
_INVALID: Final = 4  # not encodable


def _class_label(cls: Any) -> str:
    if isinstance(cls, type):
        return f"{cls.__module__}.{cls.__qualname__}"
    return repr(cls)


class Codec:
    """Encodes messages for the wire and decodes them back, with a registry of wire names."""

    def __init__(self) -> None:
        """Build the converter and register RackHD's envelopes."""
        self._by_name: dict[str, type] = {}
        self._kinds: dict[type, int] = dict.fromkeys(_SCALARS, _SCALAR)
        conv = make_converter(unstruct_collection_overrides={AbcSequence: list})
        self._converter = conv

        # Unstructuring: everything comes out as plain JSON data.
        conv.register_unstructure_hook_func(lambda tp: tp is Any, self._plain)
        conv.register_unstructure_hook_factory(
            lambda tp: isinstance(tp, type) and issubclass(tp, enum.Enum),
            lambda _: self._enum_value,
        )
        conv.register_unstructure_hook(datetime, datetime.isoformat)
        conv.register_unstructure_hook(date, date.isoformat)

        # Structuring: strict about JSON types, never coercing.
        register_strict_hooks(conv)

        conv.register_unstructure_hook(
            ErrorEvent,
            make_dict_unstructure_fn(ErrorEvent, conv, status=override(omit_if_default=True)),
        )
        for cls in _ENVELOPES:
            self.register(cls)

    # -- registry --------------------------------------------------------------

    def register(self, cls: type) -> type:
        """Register an attrs class tagged by :func:`message` under its wire name.

        Registering a class again is a no-op.  Raises :class:`TypeError` if *cls* is not
        an attrs class with a wire name (or if its fields cannot be structured), and
        :class:`ValueError` if the name belongs to another class or is ``"Object"``.
        Returns *cls*, so it can be used as a decorator.
        """
        if not isinstance(cls, type) or not attrs.has(cls):
            raise TypeError(f"{cls!r} is not an attrs class")
        name = _declared_name(cls)
        if name is None:
            raise TypeError(
                f"{_class_label(cls)} has no wire type name: decorate it with @message(...)"
            )
        if name == OBJECT_TYPE:
            raise ValueError(
                f"cannot register {_class_label(cls)}: the wire type name {OBJECT_TYPE!r}"
                " is reserved for plain JSON values"
            )
        existing = self._by_name.get(name)
        if existing is cls:
            return cls
        if existing is not None:
            raise ValueError(
                f"wire type name {name!r} is already registered to {_class_label(existing)};"
                f" cannot register it again for {_class_label(cls)}"
            )
        try:
            self._converter.get_structure_hook(cls)
            self._converter.get_unstructure_hook(cls)
        except (StructureHandlerNotFoundError, TypeError, NameError) as exc:
            raise TypeError(f"cannot register {_class_label(cls)}: {exc}") from exc
        self._by_name[name] = cls
        return cls

    def lookup(self, type_name: str) -> type | None:
        """The class registered under *type_name*, or ``None``."""
        return self._by_name.get(type_name)

    # -- encoding --------------------------------------------------------------

    def _kind(self, cls: type) -> int:
        kind = self._kinds.get(cls)
        if kind is None:
            kind = self._kinds[cls] = self._classify(cls)
        return kind

    @staticmethod
    def _classify(cls: type) -> int:
        if attrs.has(cls):
            try:
                frozen = attrs.inspect(cls).is_frozen
            except NotAnAttrsClassError:  # an undecorated subclass of an attrs class
                frozen = False
            return _FROZEN if frozen else _ATTRS
        return _PLAIN if _is_plain_class(cls) else _INVALID

    def _enum_value(self, member: enum.Enum) -> Any:
        return self._plain(member.value)

    def _plain(self, value: Any) -> Any:
        """Copy a JSON value into plain dicts, lists and scalars, unstructuring attrs inside."""
        cls = value.__class__
        if cls in _SCALARS:
            return value
        if cls is dict:
            return self._plain_dict(value)
        if cls is list or cls is tuple:
            return [item if item.__class__ in _SCALARS else self._plain(item) for item in value]
        return self._plain_other(value)

    def _plain_dict(self, value: dict[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.__class__ is not str:
                raise EncodeError(
                    f"cannot encode a dict with a key of type {_type_label(key)}"
                    f" ({key!r}): JSON object keys must be str"
                )
            out[key] = item if item.__class__ in _SCALARS else self._plain(item)
        return out

    def _plain_other(self, value: Any) -> Any:
        if self._kind(value.__class__) in (_FROZEN, _ATTRS):
            return self._converter.unstructure(value)
        if isinstance(value, enum.Enum):
            return self._plain(value.value)
        if isinstance(value, dict):
            return self._plain_dict(value)
        if isinstance(value, list):
            return [self._plain(item) for item in value]
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            return int.__int__(value)
        if isinstance(value, float):
            return float.__float__(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        raise EncodeError(_unencodable(value))

    def to_wire(self, obj: object) -> Any:
        """Unstructure *obj* into JSON-compatible Python data (dicts, lists, scalars).

        Attrs instances of any class are unstructured; plain JSON values are copied
        through.  Raises :class:`EncodeError` naming the type of anything else.
        """
        try:
            if self._kind(obj.__class__) in (_FROZEN, _ATTRS):
                return self._converter.unstructure(obj)
            return self._plain(obj)
        except RecursionError as exc:
            raise EncodeError(
                f"cannot encode {_type_label(obj)}: nested too deeply (or circular)"
            ) from exc

    def _default(self, obj: Any) -> Any:
        """orjson's fallback: unstructure attrs instances, refuse everything else."""
        if self._kind(obj.__class__) in (_FROZEN, _ATTRS):
            return self._converter.unstructure(obj)
        raise EncodeError(_unencodable(obj))

    def _dumps(self, data: Any, obj: object) -> bytes:
        try:
            return orjson.dumps(data, default=self._default, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError as exc:
            cause = exc.__cause__
            if isinstance(cause, EncodeError):
                raise EncodeError(str(cause)) from exc
            self.to_wire(obj)  # names the offending key or value more precisely, if it can
            raise EncodeError(f"cannot encode {_type_label(obj)}: {exc}") from exc

    def encode(self, obj: object) -> tuple[str, bytes]:
        """Return ``(wire type name, JSON body)`` for *obj*; :class:`EncodeError` if it can't be."""
        kind = self._kind(obj.__class__)
        if kind in (_SCALAR, _PLAIN):
            return OBJECT_TYPE, self._dumps(obj, obj)
        if kind == _INVALID:
            raise EncodeError(_unencodable(obj))
        return wire_type_name(obj), self._dumps(self.to_wire(obj), obj)

    # -- decoding --------------------------------------------------------------

    def _structure(self, data: Any, into: Any) -> Any:
        try:
            return self._converter.structure(data, into)
        except StructureHandlerNotFoundError:
            raise
        except Exception as exc:
            raise decode_error(exc, into) from exc

    def decode(self, type_name: str | None, body: bytes, into: type[T] | None = None) -> Any:
        """Parse *body* and structure it into *into*, or into the class registered as *type_name*.

        Without either, the parsed JSON is returned as is.  Raises :class:`DecodeError`
        naming each bad field for input that does not fit (path ``$`` for invalid JSON).
        Unknown keys in JSON objects are ignored.  A target type that cannot be
        structured at all is a programming error, reported by cattrs'
        ``StructureHandlerNotFoundError``.
        """
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON: {exc}", (("$", str(exc)),)) from exc
        target: Any = into
        if target is None and type_name is not None:
            target = self._by_name.get(type_name)
        if target is None:
            return data
        return self._structure(data, target)

    @overload
    def convert(self, value: object, into: type[T]) -> T: ...

    @overload
    def convert(self, value: object, into: Any) -> Any: ...

    def convert(self, value: object, into: Any) -> Any:
        """Turn *value* into *into* as a trip over the wire would, without the JSON text.

        *value* is returned unchanged if it already is an instance of *into*.  *into* may
        also be a type expression such as ``int``, ``list[int]``, ``dict[str, Any]`` or
        ``Any``.  Raises :class:`EncodeError` or :class:`DecodeError` like the trip would.
        """
        if (
            isinstance(into, type)
            and into is not Any
            and isinstance(value, into)
            and (value.__class__ is not bool or into is bool)
        ):
            return value
        return self._structure(self.to_wire(value), into)

    def copy(self, value: object) -> object:
        """Detach *value* for in-process delivery to another actor.

        Instances of frozen attrs classes and plain scalars are shared as they are (a
        frozen message is only shallowly immutable: mutable values inside it are shared
        too).  Other JSON values are copied through orjson and come back as plain dicts,
        lists and scalars; instances of non-frozen attrs classes come back as a new
        instance of the same class.  Raises :class:`EncodeError` if *value* cannot be
        encoded.
        """
        cls = value.__class__
        kind = self._kinds.get(cls)
        if kind is None:
            kind = self._kind(cls)
        if kind <= _FROZEN:
            return value
        if kind == _PLAIN:
            return orjson.loads(self._dumps(value, value))
        if kind == _ATTRS:
            data = orjson.loads(self._dumps(self.to_wire(value), value))
            try:
                return self._structure(data, cls)
            except DecodeError as exc:
                raise EncodeError(
                    f"cannot copy {_type_label(value)}: its JSON form does not decode back ({exc})"
                ) from exc
        raise EncodeError(_unencodable(value))
