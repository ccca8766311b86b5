"""The embedded default: one SQLite file in WAL mode, shared by threads and processes.

WAL lets readers run while one writer commits; `busy_timeout` makes writers from other
processes queue instead of failing; `BEGIN IMMEDIATE` takes the write lock up front so a
transaction never has to upgrade a read lock (the classic WAL deadlock). `synchronous=FULL`
fsyncs each commit: a killed process or a power cut loses nothing that was committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cascade.errors import UserError
from cascade.store.sql import Execute, LockName, SqlStore

MEMORY = ":memory:"


class SQLiteStore(SqlStore):
    """A Store in one SQLite file (or `:memory:` for throwaway use)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, target_version: int | None = None, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self._conn = _connect(self.path, busy_timeout_s)
        try:
            super().__init__(target_version=target_version)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _transaction(self, lock: LockName | None = None) -> Iterator[Execute]:
        """One write transaction; SQLite's single writer lock already orders ids by commit."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._execute
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._execute(sql, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"


def _connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """Open `path` with WAL, a busy timeout, full fsync and foreign keys; UserError if it cannot be."""
    if path != MEMORY:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the store's directory for {path}: {exc}") from exc
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the SQLite store {path}: {exc}") from exc
    try:
        _configure(conn, path, busy_timeout_s)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UserError(f"cannot use {path} as a cascade store: {exc}") from exc
    return conn


def _configure(conn: sqlite3.Connection, path: str, busy_timeout_s: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if path != MEMORY and str(mode).lower() != "wal":
        raise sqlite3.DatabaseError(f"journal_mode is {mode!r}, WAL is required (is the file on a network share?)")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
