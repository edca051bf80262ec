"""Hypothesis strategies shared by the tests (JSON values, addresses, attrs payloads)."""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs
from hypothesis import strategies as st

from runtime import IpAddress, MacAddress


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value orjson writes and reads back unchanged."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=10,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects with JSON values."""
    return st.dictionaries(st.text(max_size=8), json_values(), max_size=4)


ipv4_texts = st.ip_addresses(v=4).map(str)


@st.composite
def mac_texts(draw: st.DrawFn) -> str:
    """Colon-separated MAC addresses, in either case."""
    octets = draw(st.lists(st.integers(0, 255), min_size=6, max_size=6))
    upper = draw(st.booleans())
    text = ":".join(f"{octet:02x}" for octet in octets)
    return text.upper() if upper else text


SPECIAL: dict[Any, st.SearchStrategy[Any]] = {
    IpAddress: ipv4_texts.map(IpAddress),
    MacAddress: mac_texts().map(MacAddress),
}


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values of a type annotation: JSON for ``Any``/``dict``, attrs classes field by field."""
    if tp in SPECIAL:
        return SPECIAL[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is dict or tp is object:
        return json_values()
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(arg) for arg in args])
    if tp is type(None):
        return st.none()
    if origin is list or (origin is tuple and args[-1:] == (Ellipsis,)):
        built = st.lists(for_type(args[0]), max_size=3)
        return built if origin is list else built.map(tuple)
    if origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=3)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if tp is str:
        return st.text(max_size=12)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**53), 2**53)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: for_type(hints[f.name]) for f in attrs.fields(tp) if f.init}
        return st.fixed_dictionaries(fields).map(lambda kw: tp(**kw))
    raise NotImplementedError(f"no strategy for {tp!r}")
