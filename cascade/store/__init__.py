"""The store of runs, feedback and learned state that production learning builds on.

    store = open_store()                      # SQLite: $CASCADE_STORE or the user data dir
    store = open_store("postgresql://...")    # PostgreSQL shared by several replicas
    run_id = store.record_run(result, config_name="local")
    store.add_feedback(run_id, kind="thumbs_down")
    for item in store.labelled_runs(since_seq=cursor): ...
    store.add_reference_pairs([pair])         # answers judged against the strongest tier (cascade.audit)
    for record in store.reference_pairs(since_seq=cursor, config_name="local"): ...

The schema is created and migrated at open (`cascade.store.schema`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cascade.errors import UserError
from cascade.store.base import (
    FEEDBACK_KINDS,
    FeedbackKind,
    FeedbackRate,
    FeedbackRecord,
    LabelledRun,
    ReferencePair,
    ReferenceRecord,
    ReferenceSource,
    RunRecord,
    StateEntry,
    Store,
)
from cascade.store.schema import LATEST_VERSION

ENV_VAR = "CASCADE_STORE"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = [
    "ENV_VAR",
    "FEEDBACK_KINDS",
    "LATEST_VERSION",
    "FeedbackKind",
    "FeedbackRate",
    "FeedbackRecord",
    "LabelledRun",
    "ReferencePair",
    "ReferenceRecord",
    "ReferenceSource",
    "RunRecord",
    "StateEntry",
    "Store",
    "default_store_path",
    "feedback",
    "open_store",
]


def open_store(dsn: str | None = None, *, timeout_s: float | None = None, must_exist: bool = False) -> Store:
    """Open (creating and migrating) the store that `dsn` names.

    `must_exist`: for commands that only read what runs wrote, a SQLite file that is not there is a
    UserError naming it (a misspelt path would otherwise be a new, empty store that reports nothing).

    None: `$CASCADE_STORE` (a path or DSN) if set, else `<user data dir>/cascade/store.sqlite`.
    `sqlite:///abs/path.sqlite` or a plain path: SQLite. `postgresql://...`: PostgreSQL (psycopg 3).
    `timeout_s` bounds each call (PostgreSQL: connecting and answering, 10 s by default; SQLite:
    waiting for another process's write lock, 30 s by default).
    """
    if dsn is None:
        dsn = os.environ.get(ENV_VAR) or str(default_store_path())
    dsn = dsn.strip()
    if dsn.startswith(_POSTGRES_SCHEMES):
        from cascade.store.postgres import TIMEOUT_S, PostgresStore

        return PostgresStore(dsn, timeout_s=timeout_s or TIMEOUT_S)
    from cascade.store.sqlite import SQLiteStore

    path = sqlite_path(dsn)
    if must_exist and path != ":memory:" and not Path(path).exists():
        raise UserError(f"no store at {path} (runs recorded with --store create it)")
    return SQLiteStore(path, busy_timeout_s=timeout_s or 30.0)


def sqlite_path(dsn: str) -> str:
    """The file a SQLite DSN or plain path names (`:memory:` passes through).

    `sqlite:///abs/path` is absolute; SQLAlchemy's `sqlite:////abs/path` is accepted too.
    """
    if dsn.startswith("sqlite://"):
        dsn = dsn.removeprefix("sqlite://")
        dsn = dsn[1:] if dsn.startswith("//") or dsn == "/:memory:" else dsn
    elif "://" in dsn:
        scheme = dsn.split("://", 1)[0]
        raise UserError(f"unsupported store DSN scheme {scheme!r}: use a path, sqlite:///path or postgresql://...")
    if not dsn:
        raise UserError("empty store DSN: use a path, sqlite:///path or postgresql://...")
    return dsn if dsn == ":memory:" else str(Path(dsn).expanduser())


def default_store_path() -> Path:
    """`<user data dir>/cascade/store.sqlite`, following each platform's convention."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "cascade" / "store.sqlite"


def feedback(
    run_id: str,
    kind: FeedbackKind,
    value: str | None = None,
    *,
    user: str | None = None,
    key: str | None = None,
    dsn: str | None = None,
) -> int:
    """Record a verdict on a run (`cascade.feedback(result.run_id, "thumbs_up")`); returns its id.

    Without `key` it is the operator's, trusted fully by learners; an app relaying its users'
    verdicts names who gave each (`key="user-17"`), and learners weigh each such key separately
    (`cascade.learning.trust`)."""
    store = open_store(dsn)
    try:
        return store.add_feedback(run_id, kind=kind, value=value, user=user, key=key)
    finally:
        store.close()
