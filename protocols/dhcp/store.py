"""Lease persistence: the :class:`LeaseStore` interface, an in-memory store and a SQLite one.

The lease table writes every change through (``save`` an upsert keyed by IP, ``delete``
by IP) and reads everything back with ``load_all`` when it is built, so a table rebuilt
on the same store has every lease it had. Calls are short; a Trio adapter may make them
directly or from a worker thread (one thread at a time).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from os import PathLike
from typing import Protocol

from .leases import Lease, LeaseState


class LeaseStore(Protocol):
    """Where lease records live between restarts (one record per IP)."""

    def load_all(self) -> Iterable[Lease]:
        """Every stored record."""
        ...

    def save(self, lease: Lease) -> None:
        """Insert or replace the record of ``lease.ip``."""
        ...

    def delete(self, ip: IPv4Address) -> None:
        """Forget the record of ``ip`` (no error if there is none)."""
        ...


class MemoryLeaseStore:
    """A store in a dict: survives a rebuilt table, not a restarted process."""

    def __init__(self) -> None:
        self.records: dict[IPv4Address, Lease] = {}

    def load_all(self) -> list[Lease]:
        """Every stored record."""
        return list(self.records.values())

    def save(self, lease: Lease) -> None:
        """Insert or replace the record of ``lease.ip``."""
        self.records[lease.ip] = lease

    def delete(self, ip: IPv4Address) -> None:
        """Forget the record of ``ip``."""
        self.records.pop(ip, None)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dhcp_leases (
    ip INTEGER PRIMARY KEY,
    mac TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    reserved_until REAL,
    expires REAL,
    renew_at REAL,
    rebind_at REAL,
    pinned INTEGER NOT NULL,
    hostname TEXT
)
"""
_COLUMNS = "ip, mac, state, updated, reserved_until, expires, renew_at, rebind_at, pinned, hostname"
_UPSERT = f"INSERT OR REPLACE INTO dhcp_leases ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_DELETE = "DELETE FROM dhcp_leases WHERE ip = ?"


def _row(lease: Lease) -> tuple[object, ...]:
    return (
        int(lease.ip),
        lease.mac,
        lease.state.value,
        lease.updated,
        lease.reserved_until,
        lease.expires,
        lease.renew_at,
        lease.rebind_at,
        int(lease.pinned),
        lease.hostname,
    )


class SqliteLeaseStore:
    """A store in one SQLite table (WAL journal; each call is its own transaction).

    ``synchronous`` is SQLite's setting: ``NORMAL`` (the default here) survives a process
    crash, ``FULL`` also a power loss. The connection may be used from any one thread at a time.
    """

    def __init__(self, path: str | PathLike[str], *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous setting {synchronous!r}")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute(_SCHEMA)
        self._pending: dict[IPv4Address, Lease | None] | None = None

    def load_all(self) -> list[Lease]:
        """Every stored record."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM dhcp_leases").fetchall()
        return [
            Lease(
                mac=mac,
                ip=IPv4Address(ip),
                state=LeaseState(state),
                updated=updated,
                reserved_until=reserved,
                expires=expires,
                renew_at=renew,
                rebind_at=rebind,
                pinned=bool(pinned),
                hostname=hostname,
            )
            for ip, mac, state, updated, reserved, expires, renew, rebind, pinned, hostname in rows
        ]

    def save(self, lease: Lease) -> None:
        """Insert or replace the record of ``lease.ip`` (at the end of a transaction, if in one)."""
        if self._pending is not None:
            self._pending[lease.ip] = lease
        else:
            self._db.execute(_UPSERT, _row(lease))

    def delete(self, ip: IPv4Address) -> None:
        """Forget the record of ``ip`` (at the end of a transaction, if in one)."""
        if self._pending is not None:
            self._pending[ip] = None
        else:
            self._db.execute(_DELETE, (int(ip),))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes made inside into one transaction, written when the block ends
        (one commit for a batch of packets; the last write of each IP wins); on an error
        nothing of it is kept."""
        self._pending = {}
        try:
            yield
            changes, self._pending = self._pending, None
            saves = [_row(lease) for lease in changes.values() if lease is not None]
            deletes = [(int(ip),) for ip, lease in changes.items() if lease is None]
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_DELETE, deletes)
                self._db.executemany(_UPSERT, saves)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            self._pending = None

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> SqliteLeaseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
