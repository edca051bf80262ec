"""Topic-exchange matching of routing keys against binding patterns, as RabbitMQ does it.

A key or pattern is split on ``"."`` into words: ``""`` has no words at all and empty words
are legal (``"a..b"`` has three, ``"a."`` two).  In a pattern the word ``"*"`` matches exactly
one word and ``"#"`` zero or more; any other word, ``"a*"`` included, matches only itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from .errors import InvalidRoutingKey

T = TypeVar("T")

MAX_KEY_BYTES = 255
"""The longest routing key or pattern, in UTF-8 bytes (an AMQP ``shortstr``)."""


def split_key(key: str) -> tuple[str, ...]:
    """Split a routing key or pattern into its words; ``""`` has none."""
    return tuple(key.split(".")) if key else ()


def is_wildcard(pattern: str) -> bool:
    """Whether some word of ``pattern`` is ``"*"`` or ``"#"``."""
    if "*" not in pattern and "#" not in pattern:
        return False
    return any(word == "*" or word == "#" for word in pattern.split("."))


def _check(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidRoutingKey(f"{what} must be a str, not {type(text).__name__}")
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidRoutingKey(f"{what} {text[:40]!r} is not valid UTF-8: {exc.reason}") from None
    if size > MAX_KEY_BYTES:
        raise InvalidRoutingKey(
            f"{what} {text[:40]!r}... is {size} bytes in UTF-8; the limit is {MAX_KEY_BYTES}"
        )
    return text


def check_key(key: str) -> str:
    """Return ``key``; raise :class:`InvalidRoutingKey` unless it is a str of <= 255 bytes."""
    return _check(key, "routing key")


def check_pattern(pattern: str) -> str:
    """Return ``pattern``; raise :class:`InvalidRoutingKey` under the same limits as keys."""
    return _check(pattern, "binding pattern")


def topic_matches(pattern: str, key: str) -> bool:
    """Whether ``pattern`` matches ``key``: the plain definition, tabulated over positions."""
    pw, kw = split_key(pattern), split_key(key)
    m, n = len(pw), len(kw)
    ok = [[False] * (n + 1) for _ in range(m + 1)]  # ok[i][j]: pw[i:] matches kw[j:]
    ok[m][n] = True
    for i in range(m - 1, -1, -1):
        for j in range(n, -1, -1):
            if pw[i] == "#":  # "#" matches no word, or eats kw[j] and stays
                ok[i][j] = ok[i + 1][j] or (j < n and ok[i][j + 1])
            else:
                ok[i][j] = j < n and pw[i] in ("*", kw[j]) and ok[i + 1][j + 1]
    return ok[0][0]


class _Node(Generic[T]):
    """A trie node: children by literal word, the ``*`` and ``#`` children, bound values."""

    __slots__ = ("deep", "frozen", "hash", "is_hash", "star", "values", "words")

    def __init__(self, is_hash: bool, deep: bool) -> None:
        self.words: dict[str, _Node[T]] = {}
        self.star: _Node[T] | None = None
        self.hash: _Node[T] | None = None
        self.is_hash = is_hash  # reached by a "#" word, so it may eat further key words
        self.deep = deep  # at or below a "#", so several routes may reach it
        self.values: dict[T, None] = {}
        self.frozen: tuple[T, ...] | None = None  # tuple(values), cached until they change

    def child(self, word: str) -> _Node[T] | None:
        """The child reached by pattern word ``word``, if any."""
        return self.star if word == "*" else self.hash if word == "#" else self.words.get(word)

    def set_child(self, word: str, child: _Node[T] | None) -> None:
        """Attach ``child`` under pattern word ``word``, or detach it if None."""
        if word == "*":
            self.star = child
        elif word == "#":
            self.hash = child
        elif child is None:
            del self.words[word]
        else:
            self.words[word] = child

    def children(self) -> Iterator[tuple[str, _Node[T]]]:
        """Every child with the pattern word leading to it."""
        yield from self.words.items()
        yield from (("*", self.star),) if self.star is not None else ()
        yield from (("#", self.hash),) if self.hash is not None else ()


class TopicIndex(Generic[T]):
    """Bindings of values under patterns; match(key) returns every value whose pattern matches.

    Exact patterns live in a dict, so they cost a match nothing however many there are;
    wildcard patterns live in a trie, walked only along the paths the key can follow.
    """

    def __init__(self) -> None:
        self._exact: dict[str, dict[T, None]] = {}
        self._frozen: dict[str, tuple[T, ...]] = {}  # tuple(self._exact[p]), built on demand
        self._root: _Node[T] = _Node(False, False)
        self._wild = 0  # (pattern, value) pairs held in the trie
        self._size = 0

    def _nodes(self, words: list[str], create: bool) -> list[_Node[T]]:
        """The trie nodes along ``words``, root first; cut short at a gap unless ``create``."""
        nodes = [self._root]
        for word in words:
            child = nodes[-1].child(word)
            if child is None:
                if not create:
                    break
                hashed = word == "#"
                nodes[-1].set_child(word, child := _Node(hashed, hashed or nodes[-1].deep))
            nodes.append(child)
        return nodes

    def add(self, pattern: str, value: T) -> None:
        """Bind ``value`` under ``pattern``; binding the same pair again changes nothing."""
        wild = is_wildcard(check_pattern(pattern))
        node = self._nodes(pattern.split("."), create=True)[-1] if wild else None
        members = self._exact.setdefault(pattern, {}) if node is None else node.values
        if value in members:
            return
        members[value] = None
        if node is None:
            self._frozen.pop(pattern, None)
        else:
            node.frozen = None
        self._size += 1
        self._wild += wild

    def remove(self, pattern: str, value: T) -> bool:
        """Unbind ``value`` from ``pattern``; return False if it was not bound there."""
        if not is_wildcard(check_pattern(pattern)):
            members = self._exact.get(pattern)
            if members is None or value not in members:
                return False
            del members[value]
            self._frozen.pop(pattern, None)
            if not members:
                del self._exact[pattern]
            self._size -= 1
            return True
        words = pattern.split(".")
        nodes = self._nodes(words, create=False)
        if len(nodes) <= len(words) or value not in nodes[-1].values:
            return False
        del nodes[-1].values[value]
        nodes[-1].frozen = None
        self._size -= 1
        self._wild -= 1
        for i in range(len(words), 0, -1):  # prune the nodes left holding nothing
            node = nodes[i]
            if node.values or node.words or node.star or node.hash:
                break
            nodes[i - 1].set_child(words[i - 1], None)
        return True

    def match(self, key: str) -> Sequence[T]:
        """Every value bound under a pattern matching ``key``, once each, exact bindings first.

        The result may be shared with the index, so treat it as read-only.  ``key`` is not
        validated here (see :func:`check_key`).
        """
        exact = self._frozen.get(key)
        if exact is None:
            members = self._exact.get(key)
            exact = () if members is None else self._frozen.setdefault(key, tuple(members))
        if not self._wild:
            return exact
        found = self._walk(key, first=False)
        if not found:
            return exact
        if not exact and len(found) == 1:
            node = found[0]
            if node.frozen is None:
                node.frozen = tuple(node.values)
            return node.frozen
        merged = dict.fromkeys(exact)
        for node in found:
            merged.update(node.values)
        return tuple(merged)

    def has_match(self, key: str) -> bool:
        """Whether any value is bound under a pattern matching ``key``."""
        return key in self._exact or (self._wild > 0 and bool(self._walk(key, first=True)))

    def __len__(self) -> int:
        """The number of bound (pattern, value) pairs."""
        return self._size

    def patterns(self) -> list[str]:
        """Every pattern with at least one value bound, sorted."""
        found = list(self._exact)
        todo: list[tuple[_Node[T], tuple[str, ...]]] = [(self._root, ())]
        while todo:
            node, words = todo.pop()
            if node.values:
                found.append(".".join(words))
            todo.extend((child, (*words, word)) for word, child in node.children())
        return sorted(found)

    def _walk(self, key: str, first: bool) -> list[_Node[T]]:
        """The nodes with values whose pattern matches ``key`` (at most one if ``first``).

        A state (node, position) below a ``#`` is expanded once, so runs of ``#`` stay linear in
        the key; other nodes have a single route and are reached once anyway.
        """
        words = key.split(".") if key else []
        end = len(words)
        found: list[_Node[T]] = []
        seen: set[tuple[_Node[T], int]] = set()
        todo: list[tuple[_Node[T], int]] = [(self._root, 0)]
        push, pop = todo.append, todo.pop
        while todo:
            state = pop()
            node, i = state
            if node.deep:
                if state in seen:
                    continue
                seen.add(state)
            if node.hash is not None:
                push((node.hash, i))  # "#" matching no word
            if i == end:
                if node.values:
                    found.append(node)
                    if first:
                        break
                continue
            if node.is_hash:
                push((node, i + 1))  # "#" eating one more word
            if node.star is not None:
                push((node.star, i + 1))
            child = node.words.get(words[i])
            if child is not None:
                push((child, i + 1))
        return found
