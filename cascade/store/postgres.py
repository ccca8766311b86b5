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

from cascade.errors import StoreError, StoreUnavailableError, UserError
from cascade.extras import install_hint
from cascade.store.sql import Execute, LockName, SqlStore
from cascade.store.watchdog import Watchdog

if TYPE_CHECKING:
    import psycopg

PSYCOPG_HINT = install_hint("postgres")
_LOCK_NAMESPACE = 0x63617363  # "casc": keeps our advisory locks apart from the application's
_LOCK_KEYS: dict[LockName, int] = {
    "schema": 1, "runs": 2, "feedback": 3, "state": 4, "lease": 5, "budget": 6, "reference": 7,
}  # fmt: skip
TIMEOUT_S = 10.0
"""How long one store call may take, connecting included."""
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
"""A server that vanished from the network is noticed in about 11 s even between calls."""
_URL_PASSWORD = re.compile(r"(://[^:/@?]*:)[^@/?]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class PostgresStore(SqlStore):
    """A Store in a PostgreSQL database; one connection per instance, reopened if it breaks.

    Every call is bounded by `timeout_s`: waiting for the connection, connecting, and the call
    itself (the server's statement and lock timeouts, and a watchdog that shuts the socket down
    when a server that is down or frozen answers nothing). A call that fails for any of these is a
    StoreUnavailableError naming the store without its password.
    """

    dialect = "postgres"

    def __init__(self, dsn: str, *, target_version: int | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self._psycopg = import_psycopg()
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._closed = False
        self._watchdog = Watchdog()
        try:
            self._conn = self._connect()
        except StoreUnavailableError as exc:
            raise UserError(f"cannot connect to the PostgreSQL store {redact(dsn)}: {exc.__cause__}") from exc
        try:
            super().__init__(target_version=target_version)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        ms = int(self._timeout_s * 1000)
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = self._psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, round(self._timeout_s)), **_KEEPALIVES
            )
            for setting in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
                conn.execute(f"SET {setting} = {ms}")
        except self._psycopg.Error as exc:
            raise self._unavailable(exc) from exc
        return conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, reopened after a server restart or network drop."""
        if self._conn.broken or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _call(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The live connection for one bounded call; psycopg's failures as the store's errors."""
        if not self._lock.acquire(timeout=self._timeout_s):
            raise StoreUnavailableError(
                f"the PostgreSQL store {redact(self._dsn)} is unavailable: a call has held its connection "
                f"for over {self._timeout_s:g} s"
            )
        try:
            if self._closed:
                raise UserError("this store is closed")
            conn = self._live()
            with self._watchdog.watching(conn.pgconn.socket, self._timeout_s):
                try:
                    yield conn
                except self._psycopg.errors.ReadOnlySqlTransaction as exc:
                    raise StoreError(f"the PostgreSQL store {redact(self._dsn)} is read-only: {exc}") from exc
                except self._psycopg.OperationalError as exc:
                    raise self._unavailable(exc) from exc
        finally:
            self._lock.release()

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        why = f"no answer within {self._timeout_s:g} s" if self._watchdog.fired else str(exc).strip().splitlines()[0]
        return StoreUnavailableError(f"the PostgreSQL store {redact(self._dsn)} is unavailable: {why}")

    @contextmanager
    def _transaction(self, lock: LockName | None = None) -> Iterator[Execute]:
        with self._call() as conn, conn.transaction(), conn.cursor() as cur:
            if lock is not None:
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_NAMESPACE}, {_LOCK_KEYS[lock]})")

            def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                return _run(cur, sql, params)

            yield execute

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._call() as conn, conn.cursor() as cur:
            return _run(cur, sql, params)

    def check_writable(self) -> None:
        """StoreError when the server only reads (a standby, or `default_transaction_read_only`)."""
        if str(self._query("SHOW transaction_read_only")[0][0]) == "on":
            raise StoreError(f"the PostgreSQL store {redact(self._dsn)} is read-only: name its primary server")

    def close(self) -> None:
        self._closed = True
        self._watchdog.close()
        if self._lock.acquire(timeout=self._timeout_s):  # a call stuck past it is ended by its watchdog
            try:
                self._conn.close()
            finally:
                self._lock.release()

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
