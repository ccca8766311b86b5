"""The Store contract against a real PostgreSQL: a throwaway cluster on a free loopback port.

The session fixture runs `initdb` and `pg_ctl` from the PATH or /usr/lib/postgresql/*/bin (as the
`postgres` OS user when run as root, since PostgreSQL refuses to run as root) in a temp dir, and
each test gets a fresh database. Without the binaries or psycopg the tests skip and say why;
CI installs both (`apt-get install -y postgresql`, `pip install 'psycopg[binary]'`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade.store import open_store
from cascade.store.postgres import PostgresStore
from tests.unit.store.test_budgets import BudgetContract
from tests.unit.store.test_contract import StoreContract, make_result
from tests.unit.store.test_durability import DurabilityContract

pytestmark = pytest.mark.integration
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]')")


def _pg_bindir() -> Path | None:
    """Where initdb/pg_ctl live: the PATH first, then Debian's versioned directories (newest first)."""
    found = shutil.which("initdb")
    candidates = [found] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for candidate in candidates:
        bindir = Path(candidate).resolve().parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _as_postgres_user() -> list[str]:
    """PostgreSQL will not run as root: hand the cluster to the `postgres` OS user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` OS user to run the server as")
    if not shutil.which("runuser"):
        pytest.skip("running as root and `runuser` is missing, so the server cannot drop root")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A running throwaway cluster; yields the DSN of its `postgres` database."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install -y postgresql")
    prefix = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="cascade-pg-"))
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", _free_port()
    _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


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
        with pytest.raises(psycopg.OperationalError):
            store.get_run("before")  # the in-flight statement on the dead connection fails ...
        store.record_run(make_result("after"), config_name="local")  # ... the next one reconnects
        assert [r.run_id for r in store.runs()] == ["before", "after"]
    finally:
        store.close()


def test_unreachable_server_is_a_user_error_without_the_password() -> None:
    from cascade.errors import UserError

    with pytest.raises(UserError, match=r"cannot connect to the PostgreSQL store postgresql://u:\*\*\*@") as info:
        open_store(f"postgresql://u:hunter2@127.0.0.1:{_free_port()}/x")
    assert "hunter2" not in str(info.value)
