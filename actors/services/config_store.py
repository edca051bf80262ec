"""Where settings persist: SQLite by default (in a worker thread), or memory for tests."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import time
from typing import Any, Protocol

import trio

BUSY_TIMEOUT = 5.0
"""Seconds SQLite waits for a lock held by another process before failing."""


class ConfigStore(Protocol):
    """Loads every stored setting and saves one at a time."""

    async def load(self) -> dict[str, Any]: ...

    async def save(self, key: str, value: Any) -> None: ...


class MemoryConfigStore:
    """Settings kept in a dict: they live as long as the object."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def load(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return dict(self.values)

    async def save(self, key: str, value: Any) -> None:
        await trio.lowlevel.checkpoint()
        self.values[key] = value


class SqliteConfigStore:
    """Settings in one SQLite table ``settings(key, value JSON, updated_at)``."""

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)

    def __repr__(self) -> str:
        return f"SqliteConfigStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS settings "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)"
        )
        return connection

    def _load(self) -> dict[str, Any]:
        with self._connect() as connection:
            rows = connection.execute("SELECT key, value FROM settings").fetchall()
        connection.close()
        return {key: json.loads(value) for key, value in rows}

    def _save(self, key: str, value: Any) -> None:
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, json.dumps(value), time.time()),
            )
        connection.close()

    async def load(self) -> dict[str, Any]:
        return await trio.to_thread.run_sync(self._load)

    async def save(self, key: str, value: Any) -> None:
        await trio.to_thread.run_sync(self._save, key, value)
