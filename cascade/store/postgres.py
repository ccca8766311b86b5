"""PostgreSQL, for several replicas sharing one store (psycopg 3, imported only when used).

Identity columns hand out ids at insert, not at commit: two replicas could commit ids 6 then 5,
and a learner that had already read up to 6 would never see 5. A transaction-scoped advisory
lock per table makes id order equal commit order, at the price of serialising inserts into that
table (they are short). Migrations take the same kind of lock, so replicas starting together
migrate once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cascade.errors import StoreError, UserError
from cascade.store.sql import Execute, LockName, SqlStore

if TYPE_CHECKING:
    import psycopg

PSYCOPG_HINT = "pip install 'psycopg[binary]'"
_LOCK_NAMESPACE = 0x63617363  # "casc": keeps our advisory locks apart from the application's
_LOCK_KEYS: dict[LockName, int] = {
    "schema": 1, "runs": 2, "feedback": 3, "state": 4, "lease": 5, "budget": 6, "reference": 7,
}  # fmt: skip
_URL_PASSWORD = re.compile(r"(://[^:/@?]*:)[^@/?]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class PostgresStore(SqlStore):
    """A Store in a PostgreSQL database; one connection per instance, reopened if it breaks."""

    dialect = "postgres"

    def __init__(self, dsn: str, *, target_version: int | None = None, connect_timeout_s: float = 10.0) -> None:
        self._psycopg = import_psycopg()
        self._dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._closed = False
        self._conn = self._connect()
        try:
            super().__init__(target_version=target_version)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = self._psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
            )
        except self._psycopg.Error as exc:
            raise UserError(f"cannot connect to the PostgreSQL store {redact(self._dsn)}: {exc}") from exc
        return conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, reopened after a server restart or network drop."""
        if self._closed:
            raise UserError("this store is closed")
        if self._conn.broken or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _transaction(self, lock: LockName | None = None) -> Iterator[Execute]:
        with self._lock:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                if lock is not None:
                    cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_NAMESPACE}, {_LOCK_KEYS[lock]})")

                def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                    return _run(cur, sql, params)

                yield execute

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._live().cursor() as cur:
            return _run(cur, sql, params)

    def check_writable(self) -> None:
        """StoreError when the server only reads (a standby, or `default_transaction_read_only`)."""
        if str(self._query("SHOW transaction_read_only")[0][0]) == "on":
            raise StoreError(f"the PostgreSQL store {redact(self._dsn)} is read-only: name its primary server")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self._dsn)!r})"


def _run(cur: psycopg.Cursor[tuple[Any, ...]], sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur.execute(_placeholders(sql), tuple(params))
    return cur.fetchall() if cur.description is not None else []


@lru_cache(maxsize=64)
def _placeholders(sql: str) -> str:
    """Our statements use `?` (SQLite's style) and no literal `?` or `%`; psycopg wants `%s`."""
    return sql.replace("?", "%s")


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise UserError(f"the PostgreSQL store needs psycopg 3: {PSYCOPG_HINT}") from None
    return psycopg


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and reprs."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", dsn))
