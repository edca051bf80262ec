"""Tests of runtime.topic: topic-exchange matching against a plain reference model."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvalidRoutingKey
from runtime.topic import (
    MAX_KEY_BYTES,
    TopicIndex,
    check_key,
    check_pattern,
    is_wildcard,
    split_key,
    topic_matches,
)

# --- reference model ------------------------------------------------------------------------


def words_of(text: str) -> tuple[str, ...]:
    """The words of a key or pattern: "" has none, every "." separates two words."""
    return tuple(text.split(".")) if text else ()


@functools.cache
def model_words(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """The definition, word by word."""
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # "#" matches no word, or eats one word and stays.
        return model_words(rest, key) or (bool(key) and model_words(pattern, key[1:]))
    if not key:
        return False
    return (head == "*" or head == key[0]) and model_words(rest, key[1:])


def model_matches(pattern: str, key: str) -> bool:
    return model_words(words_of(pattern), words_of(key))


# Literal words, including the empty word and a literal that merely contains "*".
LITERALS = ["a", "b", "", "a*"]
# Keys may carry "*" and "#" as plain words; only patterns treat them as wildcards.
keys = st.lists(st.sampled_from([*LITERALS, "*", "#"]), max_size=10).map(".".join)
patterns = st.lists(st.sampled_from([*LITERALS, "*", "#"]), max_size=7).map(".".join)
values = st.integers(min_value=0, max_value=5)


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=400)
@given(patterns, keys)
def test_topic_matches_agrees_with_model(pattern: str, key: str) -> None:
    assert topic_matches(pattern, key) == model_matches(pattern, key)


@settings(max_examples=200)
@given(st.lists(st.tuples(patterns, values), max_size=12), st.lists(keys, min_size=1, max_size=5))
def test_index_match_agrees_with_model(bindings: list[tuple[str, int]], probes: list[str]) -> None:
    index: TopicIndex[int] = TopicIndex()
    for pattern, value in bindings:
        index.add(pattern, value)
    for key in probes:
        got = index.match(key)
        assert len(got) == len(set(got)), "a value was returned more than once"
        assert set(got) == {v for p, v in bindings if model_matches(p, key)}
        assert index.has_match(key) == bool(got)
        assert list(index.match(key)) == list(got), "order must be deterministic"


POOL = ["a", "a.b", "", "*", "#", "a.#", "#.b", "*.b.#"]
operations = st.lists(st.tuples(st.booleans(), st.sampled_from(POOL), values), max_size=40)


def trie_nodes(index: TopicIndex[int]) -> int:
    todo, count = [index._root], 0
    while todo:
        node = todo.pop()
        count += 1
        todo.extend(child for _, child in node.children())
    return count


@settings(max_examples=200)
@given(operations, st.lists(keys, max_size=5))
def test_add_remove_agrees_with_set_model(
    ops: list[tuple[bool, str, int]], probes: list[str]
) -> None:
    index: TopicIndex[int] = TopicIndex()
    model: set[tuple[str, int]] = set()
    for adding, pattern, value in ops:
        if adding:
            index.add(pattern, value)
            model.add((pattern, value))
        else:
            assert index.remove(pattern, value) == ((pattern, value) in model)
            model.discard((pattern, value))
        assert len(index) == len(model)
    assert index.patterns() == sorted({p for p, _ in model})
    for key in [*probes, "a", "a.b", ""]:
        got = index.match(key)
        assert len(got) == len(set(got))
        assert set(got) == {v for p, v in model if model_matches(p, key)}
    # Empty trie nodes are pruned: what is left is exactly the prefixes of live wildcard patterns.
    live = [words_of(p) for p, _ in model if is_wildcard(p)]
    prefixes = {words[:n] for words in live for n in range(len(words) + 1)}
    assert trie_nodes(index) == max(len(prefixes), 1)


# --- examples -------------------------------------------------------------------------------

EXAMPLES = [
    # The RabbitMQ tutorial.
    ("*.orange.*", "quick.orange.rabbit", True),
    ("*.*.rabbit", "quick.orange.rabbit", True),
    ("*.orange.*", "lazy.orange.elephant", True),
    ("lazy.#", "lazy.orange.elephant", True),
    ("*.orange.*", "quick.brown.fox", False),
    ("*.orange.*", "orange", False),
    ("*.orange.*", "quick.orange.new.rabbit", False),
    ("lazy.#", "lazy.orange.new.rabbit", True),
    ("lazy.#", "lazy", True),
    ("lazy.#", "lazyx.a", False),
    # "#" and the empty key.
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", ".", True),
    ("#.#", "", True),
    ("", "", True),
    ("", "a", False),
    ("", ".", False),
    ("*", "", False),
    ("*", ".", False),
    ("*.*", ".", True),
    ("*.#", "", False),
    ("*.#", "a", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "a.", True),
    ("a.#", "b", False),
    ("a.#", "", False),
    ("#.a", "a", True),
    ("#.a", "b.c.a", True),
    ("#.a", ".a", True),
    ("#.a", "a.b", False),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.", True),
    ("a.*.#", "a.b.c.d", True),
    # Empty words are words.
    ("a..b", "a..b", True),
    ("a..b", "a.x.b", False),
    ("a.*.b", "a..b", True),
    ("a.*.b", "a.b", False),
    ("a.", "a", False),
    ("a.", "a.", True),
    ("*.", "a.", True),
    (".*", ".", True),
    # Only whole words are wildcards.
    ("a*", "a*", True),
    ("a*", "ab", False),
    ("#a", "xa", False),
    ("*", "*", True),
    ("*", "#", True),
    ("a.#", "a.#", True),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), EXAMPLES)
def test_examples(pattern: str, key: str, expected: bool) -> None:
    assert model_matches(pattern, key) == expected
    assert topic_matches(pattern, key) == expected
    index: TopicIndex[str] = TopicIndex()
    index.add(pattern, "q")
    assert list(index.match(key)) == (["q"] if expected else [])
    assert index.has_match(key) == expected


def test_tutorial_queues_get_one_copy() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("*.orange.*", "Q1")
    index.add("*.*.rabbit", "Q2")
    index.add("lazy.#", "Q2")
    assert sorted(index.match("quick.orange.rabbit")) == ["Q1", "Q2"]
    assert sorted(index.match("lazy.orange.elephant")) == ["Q1", "Q2"]
    assert list(index.match("quick.orange.fox")) == ["Q1"]
    assert list(index.match("lazy.brown.fox")) == ["Q2"]
    assert list(index.match("lazy.pink.rabbit")) == ["Q2"]
    assert list(index.match("quick.brown.fox")) == []
    assert list(index.match("quick.orange.male.rabbit")) == []
    assert list(index.match("lazy.orange.male.rabbit")) == ["Q2"]


def test_split_key_and_is_wildcard() -> None:
    assert split_key("") == ()
    assert split_key("a") == ("a",)
    assert split_key("a.") == ("a", "")
    assert split_key(".") == ("", "")
    assert split_key("a..b") == ("a", "", "b")
    assert is_wildcard("*") and is_wildcard("a.#") and is_wildcard("#.a.*")
    assert not is_wildcard("") and not is_wildcard("a*") and not is_wildcard("a.#b.*c")


def test_exact_and_wildcard_values_merge_in_order() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a.b", "x")
    index.add("a.b", "y")
    index.add("a.*", "y")
    index.add("#", "z")
    index.add("a.#", "x")
    got = index.match("a.b")
    assert list(got[:2]) == ["x", "y"], "exact bindings come first, in binding order"
    assert sorted(got) == ["x", "y", "z"]
    assert list(index.match("a.b")) == list(got)


def test_add_is_idempotent_and_remove_reports() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a.b", "q")
    index.add("a.b", "q")
    index.add("a.*", "q")
    index.add("a.*", "q")
    assert len(index) == 2
    assert index.patterns() == ["a.*", "a.b"]
    assert index.remove("a.*", "q") is True
    assert index.remove("a.*", "q") is False
    assert index.remove("a.#", "q") is False
    assert index.remove("x", "q") is False
    assert index.remove("a.b", "other") is False
    assert index.remove("a.b", "q") is True
    assert len(index) == 0 and index.patterns() == []
    assert list(index.match("a.b")) == [] and not index.has_match("a.b")


def test_exact_match_returns_stored_tuple_without_copying() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a.b", "x")
    index.add("a.b", "y")
    first = index.match("a.b")
    assert first == ("x", "y")
    assert index.match("a.b") is first
    index.add("c.#", "z")  # a wildcard binding that does not match leaves the exact result alone
    assert index.match("a.b") is first
    index.add("a.b", "w")
    assert first == ("x", "y"), "a result already handed out never changes"
    assert index.match("a.b") == ("x", "y", "w")


def test_many_hashes_are_not_exponential() -> None:
    pattern = ".".join(["#"] * 20 + ["a"])
    key = ".".join(["b"] * 120 + ["c"])
    assert not topic_matches(pattern, key)
    assert topic_matches(pattern, key[:-1] + "a")
    index: TopicIndex[int] = TopicIndex()
    index.add(pattern, 1)
    index.add(".".join(["#", "*"] * 10 + ["c"]), 2)
    assert list(index.match(key)) == [2]
    assert list(index.match(key[:-1] + "a")) == [1]


# --- validation -----------------------------------------------------------------------------


CHECKS = [(check_key, "routing key"), (check_pattern, "binding pattern")]


@pytest.mark.parametrize("check", [check_key, check_pattern])
def test_checks_accept_up_to_the_limit(check: Callable[[Any], str]) -> None:
    for text in ["", "a.b", "x" * MAX_KEY_BYTES, "é" * 127 + "a", "#.*"]:
        assert check(text) is text


@pytest.mark.parametrize(("check", "what"), CHECKS)
def test_checks_reject_long_text(check: Callable[[Any], str], what: str) -> None:
    message = rf"^{what} .* is 256 bytes in UTF-8; the limit is 255$"
    with pytest.raises(InvalidRoutingKey, match=message):
        check("x" * 256)
    with pytest.raises(InvalidRoutingKey, match="is 256 bytes"):
        check("é" * 128)  # 128 characters, 256 bytes


@pytest.mark.parametrize(("check", "what"), CHECKS)
@pytest.mark.parametrize(("bad", "type_name"), [(5, "int"), (b"a.b", "bytes"), (None, "NoneType")])
def test_checks_reject_non_str(
    check: Callable[[Any], str], what: str, bad: object, type_name: str
) -> None:
    with pytest.raises(InvalidRoutingKey, match=f"^{what} must be a str, not {type_name}$"):
        check(bad)


def test_checks_reject_unencodable_text_and_errors_are_value_errors() -> None:
    with pytest.raises(InvalidRoutingKey, match="not valid UTF-8"):
        check_key("a.\ud800")
    with pytest.raises(ValueError):
        check_key("x" * 300)


def test_index_validates_patterns() -> None:
    index: TopicIndex[str] = TopicIndex()
    with pytest.raises(InvalidRoutingKey):
        index.add("x" * 256, "q")
    with pytest.raises(InvalidRoutingKey):
        index.add(5, "q")  # type: ignore[arg-type]
    with pytest.raises(InvalidRoutingKey):
        index.remove("x" * 256, "q")
    assert len(index) == 0
