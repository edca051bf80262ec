"""``Registry``: the actors of one runtime by key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ActorExists

T = TypeVar("T")


class Registry(Generic[T]):
    """A key -> entry map that refuses duplicates; one per ``Runtime``."""

    def __init__(self) -> None:
        self._entries: dict[str, T] = {}

    def add(self, key: str, entry: T) -> None:
        """Register ``entry`` under ``key``; ``ActorExists`` if the key is taken."""
        if key in self._entries:
            raise ActorExists(f"an actor with key {key!r} already exists")
        self._entries[key] = entry

    def discard(self, key: str, entry: T) -> None:
        """Forget ``key`` if it still maps to ``entry``."""
        if self._entries.get(key) is entry:
            del self._entries[key]

    def get(self, key: str) -> T | None:
        """The entry under ``key``, or ``None``."""
        return self._entries.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))
