"""Opening a store: DSNs and defaults, SQLite's pragmas, the PostgreSQL driver hint, the schema list."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

import cascade.store as store_pkg
from cascade.errors import UserError
from cascade.store import LATEST_VERSION, Store, default_store_path, feedback, open_store, sqlite_path
from cascade.store.postgres import redact
from cascade.store.schema import MIGRATIONS, pending
from cascade.store.sqlite import SQLiteStore
from tests.unit.store.test_contract import make_result


def test_sqlite_dsns_and_plain_paths_name_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    assert sqlite_path(f"sqlite://{path}") == str(path) == sqlite_path(str(path))
    assert sqlite_path(f"sqlite:///{path}") == str(path)  # SQLAlchemy's four slashes
    assert sqlite_path("sqlite:///:memory:") == ":memory:" == sqlite_path(":memory:")
    assert sqlite_path("~/x.sqlite") == str(Path.home() / "x.sqlite")


@pytest.mark.parametrize(("dsn", "match"), [("mysql://db/x", "unsupported store DSN scheme 'mysql'"), ("  ", "empty")])
def test_bad_dsns_are_user_errors(dsn: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        open_store(dsn)


def test_default_store_follows_env_then_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_STORE", str(tmp_path / "env.sqlite"))
    with closing(open_store(None)) as store:
        assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "env.sqlite")
    monkeypatch.delenv("CASCADE_STORE")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_store_path() == tmp_path / "data" / "cascade" / "store.sqlite"
    with closing(open_store(None)) as store:
        assert isinstance(store, SQLiteStore) and Path(store.path).exists()


def test_sqlite_store_uses_wal_busy_timeout_and_full_sync(tmp_path: Path) -> None:
    with closing(open_store(str(tmp_path / "s.sqlite"))) as store:
        assert isinstance(store, Store) and isinstance(store, SQLiteStore)
        assert store._query("PRAGMA journal_mode") == [("wal",)]
        assert store._query("PRAGMA busy_timeout")[0][0] >= 1000
        assert store._query("PRAGMA synchronous") == [(2,)]
        assert store._query("PRAGMA foreign_keys") == [(1,)]
        assert store.schema_version == LATEST_VERSION


def test_in_memory_store_works_for_throwaway_use() -> None:
    with closing(open_store("sqlite:///:memory:")) as store:
        store.record_run(make_result("m"), config_name="local")
        assert store.get_run("m") is not None


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match=r"cannot use .*junk\.sqlite as a cascade store"):
        open_store(str(junk))


def test_a_newer_schema_than_we_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (LATEST_VERSION + 1,))
    conn.close()
    with pytest.raises(UserError, match="newer than this cascade"):
        open_store(str(path))


def test_postgres_without_psycopg_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(UserError, match=r"pip install -e '\.\[postgres\]'"):
        open_store("postgresql://user:pw@127.0.0.1:1/db")


def test_dsn_passwords_are_redacted() -> None:
    assert redact("postgresql://ana:s3cret@db:5432/x") == "postgresql://ana:***@db:5432/x"
    assert redact("host=db password='a b' user=ana") == "host=db password=*** user=ana"
    assert redact("postgresql://db/x") == "postgresql://db/x"


def test_migrations_are_numbered_in_order_and_pending_picks_the_gap() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    assert [m.version for m in pending(0)] == list(range(1, LATEST_VERSION + 1))
    assert [m.version for m in pending(1, 2)] == [2]
    assert pending(LATEST_VERSION) == []
    for migration in MIGRATIONS:
        for dialect in ("sqlite", "postgres"):
            assert not any("{pk}" in s or "{float}" in s for s in migration.render(dialect))


def test_module_level_feedback_opens_records_and_closes(tmp_path: Path) -> None:
    dsn = str(tmp_path / "f.sqlite")
    with closing(open_store(dsn)) as store:
        store.record_run(make_result("r1"), config_name="local")
    assert feedback("r1", "label", "Paris", user="rev", dsn=dsn) == 1
    assert store_pkg.feedback("r1", "thumbs_up", dsn=dsn) == 2
    with pytest.raises(UserError, match="no run"):
        feedback("zzz", "thumbs_up", dsn=dsn)
    with closing(open_store(dsn)) as store:
        assert [(e.kind, e.user) for e in store.feedback_for("r1")] == [("label", "rev"), ("thumbs_up", None)]
