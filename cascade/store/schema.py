"""Versioned migrations shared by the SQLite and PostgreSQL stores.

The logical schema is one list of steps, each written once with two dialect placeholders
(`{pk}` for the auto-increment key, `{float}` for doubles). At open, a store applies the steps
above the version recorded in `schema_version` in one transaction together with their version
rows (DDL is transactional in both databases), so a crash or a bad step leaves the database at
its previous version and the next open tries again. Never edit a released step: append one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cascade.store import budgets

Dialect = Literal["sqlite", "postgres"]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"{pk}": "INTEGER PRIMARY KEY AUTOINCREMENT", "{float}": "REAL"},
    "postgres": {"{pk}": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "{float}": "DOUBLE PRECISION"},
}

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: the version it produces, why it exists, and its DDL."""

    version: int
    why: str
    statements: tuple[str, ...]

    def render(self, dialect: Dialect) -> list[str]:
        """The step's statements in `dialect`'s SQL."""
        return [_render(sql, dialect) for sql in self.statements]


def _render(sql: str, dialect: Dialect) -> str:
    for placeholder, concrete in _TYPES[dialect].items():
        sql = sql.replace(placeholder, concrete)
    return sql


_RUNS = """CREATE TABLE runs (
    seq {pk},
    run_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    config_name TEXT NOT NULL,
    variant TEXT,
    query TEXT NOT NULL,
    answer TEXT,
    accepted INTEGER NOT NULL,
    final_tier TEXT,
    total_tokens BIGINT NOT NULL,
    total_cost_usd {float} NOT NULL,
    features TEXT NOT NULL DEFAULT '{}'
)"""

_ATTEMPTS = """CREATE TABLE attempts (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    tier TEXT NOT NULL,
    model TEXT NOT NULL,
    answer TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_usd {float} NOT NULL,
    latency_s {float} NOT NULL,
    confidence {float},
    threshold {float},
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
)"""

_FEEDBACK = """CREATE TABLE feedback (
    id {pk},
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('thumbs_up', 'thumbs_down', 'correction', 'label')),
    value TEXT,
    user_name TEXT,
    created_at TEXT NOT NULL
)"""

_STATE = """CREATE TABLE learned_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
)"""

_LEASES = """CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at {float} NOT NULL
)"""

_REFERENCE_PAIRS = """CREATE TABLE reference_pairs (
    seq {pk},
    created_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    config_name TEXT NOT NULL,
    variant TEXT,
    source TEXT NOT NULL CHECK (source IN ('audit', 'escalation')),
    tier TEXT NOT NULL,
    answer TEXT,
    reference_tier TEXT NOT NULL,
    reference TEXT,
    agree INTEGER,
    weight {float} NOT NULL,
    served INTEGER NOT NULL,
    confidence {float},
    threshold {float},
    answer_format TEXT NOT NULL,
    cost_usd {float} NOT NULL,
    tokens BIGINT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, their attempts, and feedback linked by run id", (_RUNS, _ATTEMPTS, _FEEDBACK)),
    Migration(
        2,
        "learned state for adaptive thresholds and bandits; indexes for feedback lookups and per-config cursors",
        (
            _STATE,
            "CREATE INDEX feedback_by_run ON feedback (run_id, id)",
            "CREATE INDEX runs_by_config ON runs (config_name, seq)",
        ),
    ),
    Migration(
        3,
        "keep why a run stopped and each attempt's sampling and verifier details, so a run can be replayed",
        (
            "ALTER TABLE runs ADD COLUMN route_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE runs ADD COLUMN stop_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE runs ADD COLUMN error TEXT",
            "ALTER TABLE attempts ADD COLUMN samples INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE attempts ADD COLUMN samples_saved INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE attempts ADD COLUMN error TEXT",
            "ALTER TABLE attempts ADD COLUMN details TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    Migration(
        4,
        "state versions for compare-and-set saves, leases so one process at a time learns, per-variant lookups",
        (
            "ALTER TABLE learned_state ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
            _LEASES,
            "CREATE INDEX IF NOT EXISTS runs_by_variant ON runs (config_name, variant, seq)",
        ),
    ),
    Migration(
        5,
        "ensemble tiers: each attempt's members (model, weight, answer, tokens, cost, latency, error) as JSON",
        ("ALTER TABLE attempts ADD COLUMN members TEXT NOT NULL DEFAULT '[]'",),
    ),
    Migration(
        6,
        "budgets shared by every process: each account's settled spend and the holds of calls in flight",
        (budgets.SPEND_TABLE, budgets.HOLDS_TABLE, budgets.HOLDS_INDEX),
    ),
    Migration(
        7,
        "labels without gold: answers judged against the strongest tier's (audits and escalations), by config and run",
        (
            _REFERENCE_PAIRS,
            "CREATE INDEX reference_pairs_by_config ON reference_pairs (config_name, seq)",
            "CREATE INDEX reference_pairs_by_run ON reference_pairs (run_id)",
        ),
    ),
    Migration(
        8,
        "feedback keeps the id of the API key that gave it: learners weigh each key, and serve rate-limits it",
        (
            "ALTER TABLE feedback ADD COLUMN key_id TEXT",
            "CREATE INDEX feedback_by_key ON feedback (key_id, created_at)",
        ),
    ),
    Migration(
        9,
        "each budget hold names the process that holds it, so the holds of a process that died are settled",
        (
            "ALTER TABLE budget_holds ADD COLUMN owner TEXT",
            "CREATE INDEX budget_holds_by_owner ON budget_holds (owner)",
        ),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version


def pending(current: int, target: int | None = None) -> list[Migration]:
    """The steps that take a database from `current` to `target` (default: the latest), in order."""
    goal = LATEST_VERSION if target is None else target
    return [m for m in MIGRATIONS if current < m.version <= goal]
