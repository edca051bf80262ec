"""Strict structuring: cattrs hooks that accept only the JSON type a field declares.

Untrusted input is never coerced: ``"1"`` is not an ``int``, ``1`` is not a ``bool``
and a dict is not a list.  The one widening is ``int`` to ``float``, as JSON has a
single number type.  :func:`register_strict_hooks` installs the hooks on a converter.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet
from collections.abc import Sequence as AbcSequence
from collections.abc import Set as AbcSet
from typing import Any, Final, Union, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory
from cattrs.gen import mapping_structure_factory

from .decode_errors import target_label
from .message import _SCALARS, _type_label

__all__ = ["register_strict_hooks"]

_LIST_ORIGINS: Final = frozenset({list, MutableSequence})
_TUPLE_ORIGINS: Final = frozenset({tuple, AbcSequence})
_SET_ORIGINS: Final = frozenset({set, frozenset, AbcSet, MutableSet})
_DICT_ORIGINS: Final = frozenset({dict, Mapping, MutableMapping})


def register_strict_hooks(converter: Converter) -> None:
    """Make *converter* structure JSON data strictly: scalars, unions, arrays, objects, attrs."""
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook_factory(_is_primitive_union, _primitive_union_factory)
    converter.register_structure_hook_factory(_is_array_type, _array_factory)
    converter.register_structure_hook_factory(_is_object_type, _mapping_factory)
    converter.register_structure_hook_factory(attrs.has, _attrs_factory)


def _got(value: object) -> str:
    return "None" if value is None else _type_label(value)


# ----------------------------------------------------------------------------- scalars

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


# ----------------------------------------------------------------------------- containers


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


def _array_factory(tp: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    origin = _origin(tp)
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


def _mapping_factory(tp: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    origin = _origin(tp)
    structure_to = dict if origin is Mapping or origin is MutableMapping else origin
    inner = mapping_structure_factory(tp, conv, structure_to)

    def structure_mapping(value: Any, tp_: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected dict, got {_got(value)}")
        return inner(value, tp_)

    return structure_mapping


def _attrs_factory(tp: Any, conv: Converter) -> Callable[[Any, Any], Any]:
    inner = conv.gen_structure_attrs_fromdict(tp)
    label = target_label(tp)

    def structure_attrs(value: Any, tp_: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected dict for {label}, got {_got(value)}")
        return inner(value, tp_)

    return structure_attrs
