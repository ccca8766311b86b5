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

from cascade.errors import StoreError, StoreUnavailableError, UserError
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
        with self._lock, self._errors():
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
        with self._lock, self._errors():
            return self._execute(sql, params)

    def check_writable(self) -> None:
        """StoreError unless a write would succeed: a write in a transaction that is rolled back
        (the file or its folder may be read-only, or the file immutable, even to root)."""
        if self.path == MEMORY:
            return
        with self._lock, self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                self._conn.execute(f"PRAGMA user_version = {version}")
            finally:
                self._conn.execute("ROLLBACK")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3's errors as the store's: damaged or read-only (StoreError), locked or failing
        (StoreUnavailableError)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "readonly" in text:
                raise StoreError(
                    f"the store {self.path} is read-only ({text}): make the file and its folder "
                    "writable, or name another store"
                ) from exc
            raise StoreUnavailableError(f"the store {self.path} failed: {text}") from exc
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise  # integrity and programming errors are bugs, not the file's state
            raise StoreError(
                f"the store {self.path} is damaged ({exc}): restore it from a backup, or rescue what is "
                f"readable with `sqlite3 {self.path} .recover`"
            ) from exc

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
