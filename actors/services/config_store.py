"""Where settings (and other small JSON records) persist: SQLite by default, in a worker
thread, or memory for tests. The poller service keeps its definitions in one too."""

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

    async def delete(self, key: str) -> None: ...


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

    async def delete(self, key: str) -> None:
        await trio.lowlevel.checkpoint()
        self.values.pop(key, None)


class SqliteConfigStore:
    """Records in one SQLite table ``<table>(key, value JSON, updated_at)``."""

    def __init__(self, path: str | pathlib.Path, table: str = "settings") -> None:
        if not table.isidentifier():
            raise ValueError(f"table name must be an identifier, not {table!r}")
        self.path = pathlib.Path(path)
        self.table = table

    def __repr__(self) -> str:
        return f"SqliteConfigStore({str(self.path)!r}, table={self.table!r})"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)"
        )
        return connection

    def _load(self) -> dict[str, Any]:
        with self._connect() as connection:
            rows = connection.execute(f"SELECT key, value FROM {self.table}").fetchall()
        connection.close()
        return {key: json.loads(value) for key, value in rows}

    def _save(self, key: str, value: Any) -> None:
        with self._connect() as connection:
            connection.execute(
                f"INSERT INTO {self.table} (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, json.dumps(value), time.time()),
            )
        connection.close()

    def _delete(self, key: str) -> None:
        with self._connect() as connection:
            connection.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))
        connection.close()

    async def load(self) -> dict[str, Any]:
        return await trio.to_thread.run_sync(self._load)

    async def save(self, key: str, value: Any) -> None:
        await trio.to_thread.run_sync(self._save, key, value)

    async def delete(self, key: str) -> None:
        await trio.to_thread.run_sync(self._delete, key)
