"""The Store contract against a real PostgreSQL: a throwaway cluster on a free loopback port.

The session fixture runs `initdb` and `pg_ctl` from the PATH or /usr/lib/postgresql/*/bin (as the
`postgres` OS user when run as root, since PostgreSQL refuses to run as root) in a temp dir, and
each test gets a fresh database. Without the binaries or psycopg the tests skip and say why;
CI installs both (`apt-get install -y postgresql`, `pip install 'psycopg[binary]'`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cascade.errors import StoreUnavailableError
from cascade.store import open_store
from cascade.store.postgres import PostgresStore
from tests.integration.pg_cluster import ClusterUnavailable, free_port, start_cluster
from tests.unit.store.test_budgets import BudgetContract
from tests.unit.store.test_contract import StoreContract, make_result
from tests.unit.store.test_durability import DurabilityContract

pytestmark = pytest.mark.integration
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]')")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A running throwaway cluster; yields the DSN of its `postgres` database."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster.dsn
    finally:
        cluster.remove()


@pytest.fixture
def dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database in the session's cluster."""
    name = f"store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


class TestPostgresStore(StoreContract):
    """Same behaviour as SQLite's (tests/unit/store/test_contract.py)."""


class TestPostgresDurability(DurabilityContract):
    """Threads, processes, SIGKILL and migrations, as for SQLite."""


class TestPostgresBudgets(BudgetContract):
    """Key budgets shared by processes: reservations atomic under the advisory lock, as in SQLite."""


def test_open_store_picks_postgres_for_postgres_dsns(dsn: str) -> None:
    store = open_store(dsn.replace("postgresql://", "postgres://"))
    try:
        assert isinstance(store, PostgresStore) and "postgres@" in repr(store)
    finally:
        store.close()


def test_a_dropped_connection_is_reopened(dsn: str) -> None:
    store = open_store(dsn)
    assert isinstance(store, PostgresStore)
    try:
        store.record_run(make_result("before"), config_name="local")
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreUnavailableError, match="is unavailable: terminating connection"):
            store.get_run("before")  # the in-flight statement on the dead connection fails ...
        store.record_run(make_result("after"), config_name="local")  # ... the next one reconnects
        assert [r.run_id for r in store.runs()] == ["before", "after"]
    finally:
        store.close()


def test_unreachable_server_is_a_user_error_without_the_password() -> None:
    from cascade.errors import UserError

    with pytest.raises(UserError, match=r"cannot connect to the PostgreSQL store postgresql://u:\*\*\*@") as info:
        open_store(f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x")
    assert "hunter2" not in str(info.value)
