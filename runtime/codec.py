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
"""

from __future__ import annotations

import enum
import types
import uuid
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet
from collections.abc import Sequence as AbcSequence
from collections.abc import Set as AbcSet
from datetime import date, datetime
from typing import Any, Final, TypeVar, Union, get_args, get_origin, overload

import attrs
import orjson
from attrs.exceptions import NotAnAttrsClassError
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory
from cattrs.errors import (
    ClassValidationError,
    IterableValidationError,
    StructureHandlerNotFoundError,
)
from cattrs.gen import make_dict_unstructure_fn, mapping_structure_factory, override
from cattrs.preconf.orjson import make_converter

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


# ----------------------------------------------------------------------------- labels


def _class_label(cls: Any) -> str:
    if isinstance(cls, type):
        return f"{cls.__module__}.{cls.__qualname__}"
    return repr(cls)


def _target_label(into: Any) -> str:
    if isinstance(into, type):
        return _declared_name(into) or into.__qualname__
    return repr(into).removeprefix("typing.")


# ----------------------------------------------------------------------------- structuring


def _got(value: object) -> str:
    return "None" if value is None else _type_label(value)


# These are also dispatched to for subclasses (str and int enums among them): the JSON
# type is checked first, then the subclass is built from the value.


def _structure_str(value: object, cls: type[str]) -> str:
    if isinstance(value, str):
        return value if cls is str else cls(value)
    raise TypeError(f"expected str, got {_got(value)}")


def _structure_int(value: object, cls: type[int]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if cls is int else cls(value)
    raise TypeError(f"expected int, got {_got(value)}")


def _structure_float(value: object, cls: type[float]) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if cls is float else cls(value)
    raise TypeError(f"expected float, got {_got(value)}")


def _structure_bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected bool, got {_got(value)}")


def _is_primitive_union(tp: Any) -> bool:
    if get_origin(tp) not in (Union, types.UnionType):
        return False
    return all(arg in _SCALARS for arg in get_args(tp))


def _primitive_union_factory(tp: Any) -> Callable[[Any, Any], Any]:
    members = frozenset(get_args(tp))
    expected = " or ".join("None" if arg is type(None) else arg.__name__ for arg in get_args(tp))
    widen = float in members and int not in members

    def structure_union(value: Any, _: Any) -> Any:
        cls = value.__class__
        if cls in members:
            return value
        if widen and cls is int:
            return float(value)
        raise TypeError(f"expected {expected}, got {_got(value)}")

    return structure_union


_LIST_ORIGINS: Final = frozenset({list, MutableSequence})
_TUPLE_ORIGINS: Final = frozenset({tuple, AbcSequence})
_SET_ORIGINS: Final = frozenset({set, frozenset, AbcSet, MutableSet})
_DICT_ORIGINS: Final = frozenset({dict, Mapping, MutableMapping})


def _origin(tp: Any) -> Any:
    return get_origin(tp) or tp


def _is_array_type(tp: Any) -> bool:
    try:
        origin = _origin(tp)
        return origin in _LIST_ORIGINS or origin in _TUPLE_ORIGINS or origin in _SET_ORIGINS
    except TypeError:  # unhashable type expressions
        return False


def _is_object_type(tp: Any) -> bool:
    try:
        return _origin(tp) in _DICT_ORIGINS
    except TypeError:
        return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    args = exc.args
    if args and isinstance(args[0], str) and args[0]:
        return args[0]
    return str(exc) or type(exc).__name__


def _attribute_name(exc: BaseException) -> str | None:
    """The field an attrs-style validator error (``(msg, attribute, ...)``) is about."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[1], attrs.Attribute):
        return args[1].name
    return None


def _index(key: object) -> str:
    return f"[{key!r}]"


def _collect(exc: BaseException, path: str, out: list[tuple[str, str]]) -> None:
    """Flatten a cattrs validation error tree into ``(path, reason)`` pairs."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _collect(sub, f"{path}.{note.name}", out)
        for sub in without:
            # Raised while instantiating: an attrs validator or converter.
            name = _attribute_name(sub)
            _collect(sub, f"{path}.{name}" if name else path, out)
    elif isinstance(exc, IterableValidationError):
        with_notes_i, without_i = exc.group_exceptions()
        for sub, inote in with_notes_i:
            _collect(sub, path + _index(inote.index), out)
        for sub in without_i:
            _collect(sub, path, out)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            _collect(member, path, out)
    else:
        out.append((path, _reason(exc)))


def _decode_error(exc: BaseException, into: Any) -> DecodeError:
    fields: list[tuple[str, str]] = []
    _collect(exc, "$", fields)
    details = "; ".join(f"{path}: {reason}" for path, reason in fields)
    return DecodeError(f"cannot decode {_target_label(into)}: {details}", tuple(fields))


# ----------------------------------------------------------------------------- codec


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
        conv.register_structure_hook(str, _structure_str)
        conv.register_structure_hook(int, _structure_int)
        conv.register_structure_hook(float, _structure_float)
        conv.register_structure_hook(bool, _structure_bool)
        conv.register_structure_hook_factory(_is_primitive_union, _primitive_union_factory)
        conv.register_structure_hook_factory(_is_array_type, self._array_factory)
        conv.register_structure_hook_factory(_is_object_type, self._mapping_factory)
        conv.register_structure_hook_factory(attrs.has, self._attrs_factory)

        conv.register_unstructure_hook(
            ErrorEvent,
            make_dict_unstructure_fn(ErrorEvent, conv, status=override(omit_if_default=True)),
        )
        for cls in _ENVELOPES:
            self.register(cls)

    # -- hook factories --------------------------------------------------------

    def _array_factory(self, tp: Any) -> Callable[[Any, Any], Any]:
        origin = _origin(tp)
        conv = self._converter
        inner: Callable[[Any, Any], Any]
        if origin in _SET_ORIGINS:
            args = get_args(tp)
            as_list: Any = list[args[0]] if args else list  # type: ignore[valid-type]
            list_hook = conv.get_structure_hook(as_list)
            build: Callable[[Any], Any] = frozenset if origin is frozenset else set

            def inner(value: Any, _: Any) -> Any:
                return build(list_hook(value, as_list))

        elif origin is tuple and get_args(tp) and get_args(tp)[-1] is not Ellipsis:
            inner = conv.gen_structure_hetero_tuple(tp)
        elif origin in _TUPLE_ORIGINS:
            inner = homogenous_tuple_structure_factory(tp, conv)
        else:
            inner = list_structure_factory(tp, conv)

        def structure_array(value: Any, tp_: Any) -> Any:
            if value.__class__ is not list and value.__class__ is not tuple:
                raise TypeError(f"expected list, got {_got(value)}")
            return inner(value, tp_)

        return structure_array

    def _mapping_factory(self, tp: Any) -> Callable[[Any, Any], Any]:
        origin = _origin(tp)
        structure_to = dict if origin is Mapping or origin is MutableMapping else origin
        inner = mapping_structure_factory(tp, self._converter, structure_to)

        def structure_mapping(value: Any, tp_: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected dict, got {_got(value)}")
            return inner(value, tp_)

        return structure_mapping

    def _attrs_factory(self, tp: Any) -> Callable[[Any, Any], Any]:
        inner = self._converter.gen_structure_attrs_fromdict(tp)
        label = _target_label(tp)

        def structure_attrs(value: Any, tp_: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected dict for {label}, got {_got(value)}")
            return inner(value, tp_)

        return structure_attrs

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
            raise _decode_error(exc, into) from exc

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
