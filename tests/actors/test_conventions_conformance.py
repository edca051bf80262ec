"""Conformance with the conventions: every seed key is defined once, with a way to use it.

Reads ``docs/amqp-conventions.rst``, the conventions as the project ships them.
"""

from __future__ import annotations

import pathlib
import re
import sys
import typing
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.convention import KeyDef, Kind
from actors.exchanges import ALL
from runtime import Codec
from tests.strategies import SPECIAL, for_type

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = ROOT / "docs" / "amqp-conventions.rst"

EXCHANGE_NAMES = {
    "Configuration": "on.configuration",
    "Events": "on.events",
    "HTTP": "on.http",
    "DHCP": "on.dhcp",
    "TFTP": "on.tftp",
    "Logging": "on.logging",
    "task-graph-runner": "on.task-graph-runner",
    "Scheduler": "on.scheduler",
    "Task": "on.task",
}


def parse_seed(text: str) -> dict[str, list[str]]:
    """Section title -> the routing keys in its code block(s), notes stripped."""
    sections: dict[str, list[str]] = {}
    lines = text.splitlines()
    current: str | None = None
    in_block = False
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"~{3,}", lines[i + 1].strip()) and line.strip():
            current = line.strip().strip("`")
            sections[current] = []
            in_block = False
        elif line.startswith(".. code-block::"):
            in_block = True
        elif in_block and line.startswith("    ") and line.strip() and current:
            sections[current].append(line.split("(")[0].strip())
        elif in_block and line.strip() and not line.startswith(" "):
            in_block = False
    return sections


def shape(key: str) -> str:
    return re.sub(r"\[[^\]]+\]|\{[^}]+\}", "<>", key)


SEED_KEYS = parse_seed(SEED.read_text())
BY_TITLE = {exchange.title: exchange for exchange in ALL}


def test_the_seed_parses_into_nine_sections_with_keys() -> None:
    assert set(SEED_KEYS) == set(EXCHANGE_NAMES)
    assert sum(len(keys) for keys in SEED_KEYS.values()) == 54
    assert SEED_KEYS["TFTP"] == []
    assert "methods.requestProfile.[id]" in SEED_KEYS["Task"]


def test_nine_exchanges_with_their_amqp_names() -> None:
    assert len(ALL) == 9
    assert {exchange.title: exchange.name for exchange in ALL} == EXCHANGE_NAMES


@pytest.mark.parametrize("title", sorted(EXCHANGE_NAMES))
def test_every_seed_key_has_exactly_one_definition(title: str) -> None:
    exchange = BY_TITLE[title]
    for seed_key in SEED_KEYS[title]:
        matches = [key for key in exchange.keys if shape(key.template) == shape(seed_key)]
        assert len(matches) == 1, f"{title}: {seed_key} has {len(matches)} definitions"
        assert matches[0].seed == seed_key
        assert matches[0].exchange == exchange.name


@pytest.mark.parametrize("title", sorted(EXCHANGE_NAMES))
def test_every_definition_is_in_the_seed_or_a_documented_addition(title: str) -> None:
    exchange = BY_TITLE[title]
    module = sys.modules[exchange.client.__module__] if exchange.client else None
    for key in exchange.keys:
        if key.seed is not None:
            assert key.seed in SEED_KEYS[title], f"{key.template} claims seed {key.seed!r}"
        else:
            assert key.doc.startswith("addition:"), key.template
            assert module is not None and module.__doc__ is not None
            literal = key.template.split("{")[0].rstrip(".")
            assert literal in module.__doc__, f"{key.template} is not in the module docstring"


def all_keys() -> list[KeyDef]:
    return [key for exchange in ALL for key in exchange.keys]


@pytest.mark.parametrize("key", all_keys(), ids=lambda k: f"{k.exchange}/{k.template}")
def test_every_key_has_a_client_stub_or_an_event_type(key: KeyDef) -> None:
    exchange = next(e for e in ALL if e.name == key.exchange)
    if key.stub is not None:
        assert exchange.client is not None
        assert callable(getattr(exchange.client, key.stub, None)), f"no {key.stub} stub"
    else:
        assert key.kind is Kind.EVENT and attrs.has(key.request), key.template


@pytest.mark.parametrize("key", all_keys(), ids=lambda k: f"{k.exchange}/{k.template}")
def test_keys_build_and_parse(key: KeyDef) -> None:
    params = {name: f"id-{n}" for n, name in enumerate(key.params)}
    concrete = key.key(**params)
    assert key.parse(concrete) == params
    assert "*" not in concrete and "#" not in concrete
    from runtime import topic_matches

    assert topic_matches(key.pattern(), concrete)
    for hostile in ("a.b", "*", "#", "", "x" * 129, "a b"):
        for name in key.params:
            with pytest.raises(ValueError):
                key.key(**{**params, name: hostile})


# -- payload classes ---------------------------------------------------------------


def payload_classes() -> list[type]:
    seen: dict[str, type] = {}
    for key in all_keys():
        for cls in (key.request, key.reply):
            if cls is not None and attrs.has(cls):
                seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return sorted(seen.values(), key=lambda c: c.__qualname__)


ID_WORDS = st.from_regex(r"[A-Za-z0-9_\-:@]{1,40}", fullmatch=True)


def _builds(cls: type, kw: dict[str, Any]) -> bool:
    try:
        cls(**kw)
    except ValueError:
        return False
    return True


def payloads(cls: type) -> st.SearchStrategy[Any]:
    """Instances of a payload class: id fields (``ID_FIELD``) get routing-key words, bounded
    numbers values within bounds, the others values of their type; values the class's
    validators refuse are left out."""
    if cls in SPECIAL or not any(field.validator for field in attrs.fields(cls)):
        return for_type(cls)
    hints = typing.get_type_hints(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        hint = hints[field.name]
        optional = type(None) in typing.get_args(hint)
        if field.metadata.get("id"):
            fields[field.name] = st.none() | ID_WORDS if optional else ID_WORDS
        elif field.validator and int in (hint, *typing.get_args(hint)):
            # the bounds of the payloads: 16-bit words, counts, HTTP statuses
            numbers = st.integers(100, 599) | st.integers(0, 0xFFFF)
            fields[field.name] = st.none() | numbers if optional else numbers
        else:
            fields[field.name] = for_type(hint)
    return (
        st.fixed_dictionaries(fields).filter(lambda kw: _builds(cls, kw)).map(lambda kw: cls(**kw))
    )


@pytest.mark.parametrize("cls", payload_classes(), ids=lambda c: c.__qualname__)
@settings(max_examples=25)
@given(data=st.data())
def test_payload_round_trip_and_wire_shape(cls: type, data: st.DataObject) -> None:
    codec = Codec()
    if codec.lookup(getattr(cls, "__rackbus_type__", "")) is None:
        codec.register(cls)
    value = data.draw(payloads(cls))
    type_name, body = codec.encode(value)
    assert type_name == cls.__rackbus_type__  # type: ignore[attr-defined]
    assert codec.decode(type_name, body) == value
    wire = orjson.loads(body)
    names = {f.alias or f.name for f in attrs.fields(cls)}
    assert set(wire) <= names
    assert set(wire) >= {n for n in names if getattr(value, n, None) is not None}


def test_wire_type_names_are_unique_across_exchanges() -> None:
    codec = Codec()
    for cls in payload_classes():
        if codec.lookup(cls.__rackbus_type__) is not cls:  # type: ignore[attr-defined]
            codec.register(cls)  # raises on a name taken by another class


def test_rackbus_exchanges_prints_every_key_from_the_definitions() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "actors.cli", "exchanges"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    lines = done.stdout.splitlines()
    for exchange in ALL:
        assert any(line.startswith(f"{exchange.name}  ({exchange.title})") for line in lines)
        for key in exchange.keys:
            assert any(line.split()[:1] == [key.template] for line in lines), key.template
    assert sum(
        1 for line in lines if line.startswith("    ") and "(no routing keys)" not in line
    ) == (sum(len(exchange.keys) for exchange in ALL))
