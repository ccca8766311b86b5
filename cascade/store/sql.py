"""The Store's logic, written once in the SQL both SQLite and PostgreSQL accept.

Backends supply two hooks: `_transaction(lock)` (one write transaction; `lock` names what must be
serialised so ids commit in id order) and `_query(sql, params)` (one read). Statements use `?`
placeholders; PostgreSQL's backend rewrites them to `%s`.
"""

from __future__ import annotations

import math
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Literal

from cascade.budget.metering import Ask
from cascade.errors import RateLimitError, RunNotFoundError, UserError
from cascade.store import budgets, rows
from cascade.store.base import (
    FEEDBACK_KINDS,
    VALUED_KINDS,
    FeedbackKind,
    FeedbackRate,
    FeedbackRecord,
    LabelledRun,
    ReferencePair,
    ReferenceRecord,
    ReferenceSource,
    RunRecord,
    StateEntry,
)
from cascade.store.base import is_correct as label_is_correct
from cascade.store.schema import LATEST_VERSION, VERSION_TABLE, Dialect, pending
from cascade.types import Attempt, CascadeResult, Usage

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
LockName = Literal["schema", "runs", "feedback", "state", "lease", "budget", "reference"]
_CHUNK = 500
MAX_STATE_BYTES = 4_000_000  # one learner's saved state


def _columns(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + n for n in names)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


_INSERT_RUN = (
    f"INSERT INTO runs ({_columns(rows.RUN_COLUMNS[1:])}) VALUES ({_marks(len(rows.RUN_COLUMNS) - 1)}) "
    "ON CONFLICT (run_id) DO NOTHING RETURNING seq"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({_columns(rows.ATTEMPT_COLUMNS)}) VALUES ({_marks(len(rows.ATTEMPT_COLUMNS))})"
)
_INSERT_FEEDBACK = (
    f"INSERT INTO feedback ({_columns(rows.FEEDBACK_COLUMNS[1:])}) "
    f"VALUES ({_marks(len(rows.FEEDBACK_COLUMNS) - 1)}) RETURNING id"
)
_KEY_RECENT = "SELECT created_at FROM feedback WHERE key_id = ? AND created_at > ? ORDER BY created_at LIMIT ?"
_SELECT_RUNS = f"SELECT {_columns(rows.RUN_COLUMNS)} FROM runs"
_INSERT_REFERENCE = (
    f"INSERT INTO reference_pairs ({_columns(rows.REFERENCE_COLUMNS[1:])}) "
    f"VALUES ({_marks(len(rows.REFERENCE_COLUMNS) - 1)}) RETURNING seq"
)
_SELECT_REFERENCES = f"SELECT {_columns(rows.REFERENCE_COLUMNS)} FROM reference_pairs"
_SELECT_FEEDBACK = f"SELECT {_columns(rows.FEEDBACK_COLUMNS)} FROM feedback"
_LATEST_FEEDBACK = (
    f"SELECT {_columns(rows.FEEDBACK_COLUMNS, 'f.')} FROM feedback f WHERE f.id > ? "
    "AND f.id = (SELECT MAX(g.id) FROM feedback g WHERE g.run_id = f.run_id){scope} ORDER BY f.id LIMIT ?"
)
_UPSERT_STATE = (
    "INSERT INTO learned_state (key, value, updated_at, version) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
    "version = learned_state.version + 1{guard} RETURNING version"
)
_UPDATE_STATE = (
    "UPDATE learned_state SET value = ?, updated_at = ?, version = version + 1 "
    "WHERE key = ? AND version = ? RETURNING version"
)
# The database's clock, in seconds since the epoch: every process judges a lease by the same clock.
_NOW: dict[Dialect, str] = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgres": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
}
_TAKE_LEASE = (
    "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, {now} + ?) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE leases.holder = excluded.holder OR leases.expires_at < {now} RETURNING holder"
)


class SqlStore(ABC):
    """Runs, feedback and learned state over one DB-API connection; safe to share across threads."""

    dialect: Dialect
    schema_version: int

    def __init__(self, *, target_version: int | None = None) -> None:
        self._lock = threading.RLock()
        self.schema_version = self.migrate(target_version)

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    def _transaction(self, lock: LockName | None = None) -> AbstractContextManager[Execute]:
        """One write transaction, serialised on `lock` so ids commit in id order."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read statement's rows."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the store is unusable afterwards."""

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------------
    def migrate(self, target: int | None = None) -> int:
        """Apply the steps above the stored version (all, or up to `target`) in one transaction."""
        with self._transaction("schema") as run:
            run(VERSION_TABLE, ())
            current = int(run("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())[0][0])
            if current > LATEST_VERSION:
                raise UserError(
                    f"the store's schema is version {current}, newer than this cascade understands "
                    f"({LATEST_VERSION}); upgrade cascade"
                )
            for step in pending(current, target):
                for statement in step.render(self.dialect):
                    run(statement, ())
                run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (step.version, rows.now()))
                current = step.version
        return current

    # -- writes --------------------------------------------------------------------------------
    def record_run(
        self,
        result: CascadeResult,
        *,
        config_name: str,
        variant: str | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> str:
        """Store the run and its attempts once; recording the same run_id again changes nothing.

        `variant` defaults to the experiment variant that answered (`result.variant`)."""
        if not config_name:
            raise UserError("record_run needs a config_name (the cascade config the run used)")
        run_id = result.run_id or uuid.uuid4().hex
        values = rows.run_values(result, run_id, config_name, variant or result.variant, features)
        with self._transaction("runs") as run:
            if run(_INSERT_RUN, values):
                for idx, attempt in enumerate(result.attempts):
                    run(_INSERT_ATTEMPT, rows.attempt_values(run_id, idx, attempt))
        return run_id

    def add_feedback(
        self,
        run_id: str,
        *,
        kind: FeedbackKind,
        value: str | None = None,
        user: str | None = None,
        key: str | None = None,
        rate: FeedbackRate | None = None,
    ) -> int:
        """Record one feedback event on a stored run; returns its id (a cursor for learners).

        `key` names the API key that gave it (None: the operator). With a `rate`, a key that already
        gave `rate.count` events in the last `rate.window_s` seconds is refused (`RateLimitError`),
        checked in the same transaction as the insert, so every process sharing the store agrees."""
        _check_feedback(kind, value)
        run_id = rows.safe(run_id)  # a NUL in it cannot be looked up in PostgreSQL (and names no run)
        with self._transaction("feedback") as run:
            if not run("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
                raise RunNotFoundError(f"no run {run_id!r} in the store; feedback needs the run_id of a recorded run")
            stamp = rows.now()
            if rate is not None and key is not None:
                _within_rate(run, key, rate, stamp)
            created = run(_INSERT_FEEDBACK, (run_id, kind, rows.clean(value), rows.clean(user), stamp, key))
        return int(created[0][0])

    def add_reference_pairs(self, pairs: Sequence[ReferencePair]) -> list[int]:
        """Store answers judged against the reference (`cascade.audit`) in one transaction; returns their seqs.

        The run they judge need not be recorded (a Python caller may keep pairs without runs)."""
        values = [rows.reference_values(pair) for pair in pairs]
        if not values:
            return []
        with self._transaction("reference") as run:
            return [int(run(_INSERT_REFERENCE, row)[0][0]) for row in values]

    def put_state(self, key: str, value: Mapping[str, Any]) -> int:
        """Save a learner's state under `key`, replacing what was there; returns its new version."""
        text = _state_text(key, value)
        with self._transaction("state") as run:
            return int(run(_UPSERT_STATE.format(guard=""), (key, text, rows.now()))[0][0])

    def compare_and_put_state(self, key: str, value: Mapping[str, Any], *, expect_version: int) -> int | None:
        """Save only if the stored version is still `expect_version` (0: nothing saved yet).

        Returns the new version, or None when another process saved first: its state wins and
        the caller starts again from it, so no learned update is silently overwritten.
        """
        text = _state_text(key, value)
        with self._transaction("state") as run:
            if expect_version == 0:
                saved = run(_UPSERT_STATE.format(guard=" WHERE learned_state.version = 0"), (key, text, rows.now()))
            else:
                saved = run(_UPDATE_STATE, (text, rows.now(), key, expect_version))
        return int(saved[0][0]) if saved else None

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease `name` for `ttl_s` seconds; False while another holder's is unexpired."""
        if not name or not holder or ttl_s <= 0:
            raise UserError("a lease needs a name, a holder and a positive ttl")
        with self._transaction("lease") as run:
            return bool(run(_TAKE_LEASE.format(now=_NOW[self.dialect]), (name, holder, float(ttl_s))))

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (if `holder` has it), so another process need not wait for expiry."""
        with self._transaction("lease") as run:
            run("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def reserve_budget(
        self,
        account: str,
        ask: Ask,
        max_tokens: int | None,
        max_cost_usd: float | None,
        ttl_s: float,
        owner: str | None = None,
    ) -> tuple[int | None, int, budgets.Spend]:
        """Hold `ask`'s worst case at the largest cap `account` can afford, atomically across processes:
        (hold id, cap, spend before the hold); the id is None when not one completion token fits."""
        limits, now = (max_tokens, max_cost_usd), _NOW[self.dialect]
        with self._transaction("budget") as run:
            return budgets.reserve(run, now, account, ask, limits, ttl_s, rows.now(), owner)

    def reap_budget_holds(self, keep: str, is_dead: Callable[[str], bool]) -> tuple[int, int]:
        """Settle at their reservation the holds of dead owners (`cascade.store.budgets.reap`)."""
        with self._transaction("budget") as run:
            return budgets.reap(run, _NOW[self.dialect], keep, is_dead, rows.now())

    def resize_budget_hold(self, hold_id: int, usage: Usage) -> None:
        with self._transaction("budget") as run:
            budgets.resize(run, hold_id, usage)

    def settle_budget(self, account: str, hold_id: int | None, spent: Usage) -> budgets.Spend:
        """Replace the hold by what the call spent; returns the account's spend after it."""
        with self._transaction("budget") as run:
            return budgets.settle(run, _NOW[self.dialect], account, hold_id, spent, rows.now())

    def budget_spend(self, account: str) -> budgets.Spend:
        with self._transaction("budget") as run:
            return budgets.read(run, _NOW[self.dialect], account)

    def budget_accounts(self) -> list[tuple[str, budgets.Spend]]:
        with self._transaction("budget") as run:
            return budgets.accounts(run, _NOW[self.dialect])

    def reset_budget(self, account: str) -> bool:
        """Forget what `account` spent (e.g. at a new billing period); False if it had spent nothing."""
        with self._transaction("budget") as run:
            return budgets.reset(run, account)

    # -- reads ---------------------------------------------------------------------------------
    def get_state(self, key: str) -> dict[str, Any] | None:
        entry = self.get_state_entry(key)
        return entry.value if entry else None

    def get_state_entry(self, key: str) -> StateEntry | None:
        found = self._query("SELECT value, version FROM learned_state WHERE key = ?", (key,))
        return StateEntry(rows.from_json(found[0][0]), int(found[0][1])) if found else None

    def state_version(self, key: str) -> int:
        """The saved state's version (0 when there is none): a cheap check for a newer state."""
        found = self._query("SELECT version FROM learned_state WHERE key = ?", (key,))
        return int(found[0][0]) if found else 0

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease now (None when nobody does or it has expired)."""
        found = self._query(f"SELECT holder FROM leases WHERE name = ? AND expires_at >= {_NOW[self.dialect]}", (name,))
        return str(found[0][0]) if found else None

    def get_run(self, run_id: str) -> RunRecord | None:
        found = self._runs_where("run_id = ?", (rows.safe(run_id),))
        return found[0] if found else None

    def runs(
        self, *, since_id: int = 0, limit: int = 1000, config_name: str | None = None, since: str | None = None
    ) -> list[RunRecord]:
        """Runs with `seq > since_id` in commit order, optionally of one config or recorded at or after
        `since` (an ISO time); resume with `since_id=last.seq`."""
        where, params = ["seq > ?"], list[Any]([since_id])
        if config_name is not None:
            where.append("config_name = ?")
            params.append(config_name)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        return self._runs_where(f"{' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, _limit(limit)))

    def runs_by_id(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """The recorded runs among `run_ids`, in commit order (unknown ids are left out)."""
        return sorted(self._runs_in(list(dict.fromkeys(run_ids))), key=lambda r: r.seq)

    def reference_pairs(
        self,
        *,
        since_seq: int = 0,
        limit: int = 1000,
        config_name: str | None = None,
        variant: str | None = None,
        source: ReferenceSource | None = None,
        since: str | None = None,
    ) -> list[ReferenceRecord]:
        """Pairs with `seq > since_seq` in commit order, optionally of one config, variant or source, or
        stored at or after `since` (an ISO time); resume with `since_seq=last.seq`."""
        where, params = ["seq > ?"], list[Any]([since_seq])
        for column, value in (("config_name", config_name), ("variant", variant), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        sql = f"{_SELECT_REFERENCES} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        return [rows.reference_record(r) for r in self._query(sql, (*params, _limit(limit)))]

    def reference_pairs_of(self, run_ids: Sequence[str], *, until_seq: int | None = None) -> list[ReferenceRecord]:
        """Every pair judging these runs (with `seq <= until_seq`, if given), in commit order."""
        found = [
            rows.reference_record(row)
            for chunk in _chunks(list(dict.fromkeys(run_ids)))
            for row in self._query(f"{_SELECT_REFERENCES} WHERE run_id IN ({_marks(len(chunk))})", chunk)
        ]
        return sorted((r for r in found if until_seq is None or r.seq <= until_seq), key=lambda r: r.seq)

    def feedback_for(self, run_id: str) -> list[FeedbackRecord]:
        return self.feedback_on([run_id])

    def feedback_on(self, run_ids: Sequence[str]) -> list[FeedbackRecord]:
        """Every feedback event on these runs, in id order."""
        found = [
            row
            for chunk in _chunks(list(dict.fromkeys(run_ids)))
            for row in self._query(f"{_SELECT_FEEDBACK} WHERE run_id IN ({_marks(len(chunk))})", chunk)
        ]
        return sorted((rows.feedback_record(r) for r in found), key=lambda f: f.id)

    def labelled_runs(
        self, *, since_seq: int = 0, limit: int = 1000, config_name: str | None = None, variant: str | None = None
    ) -> list[LabelledRun]:
        """Runs whose latest feedback id is above `since_seq`, labelled by that feedback, in feedback order.

        `config_name` / `variant` keep only runs recorded under that config / experiment variant.
        """
        scope, params = _run_scope(config_name, variant)
        query = _LATEST_FEEDBACK.format(scope=scope)
        events = [rows.feedback_record(r) for r in self._query(query, (since_seq, *params, _limit(limit)))]
        by_id = {r.run_id: r for r in self._runs_in([e.run_id for e in events])}
        return [
            LabelledRun(by_id[e.run_id], e, label_is_correct(e.kind, e.value, by_id[e.run_id].answer))
            for e in events
            if e.run_id in by_id
        ]

    def _runs_where(self, where: str, params: Sequence[Any]) -> list[RunRecord]:
        found = self._query(f"{_SELECT_RUNS} WHERE {where}", params)
        attempts = self._attempts([r[1] for r in found])
        return [rows.run_record(r, attempts.get(r[1], [])) for r in found]

    def _runs_in(self, run_ids: Sequence[str]) -> list[RunRecord]:
        return [
            run for chunk in _chunks(run_ids) for run in self._runs_where(f"run_id IN ({_marks(len(chunk))})", chunk)
        ]

    def _attempts(self, run_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        grouped: dict[str, list[Attempt]] = {}
        for chunk in _chunks(run_ids):
            sql = f"SELECT {_columns(rows.ATTEMPT_COLUMNS)} FROM attempts WHERE run_id IN ({_marks(len(chunk))})"
            for row in self._query(sql + " ORDER BY run_id, idx", chunk):
                grouped.setdefault(row[0], []).append(rows.attempt_of(row))
        return grouped


def _run_scope(config_name: str | None, variant: str | None) -> tuple[str, tuple[str, ...]]:
    """SQL that keeps feedback on runs of one config and/or variant, with its parameters."""
    where = [f"{column} = ?" for column, value in (("config_name", config_name), ("variant", variant)) if value]
    if not where:
        return "", ()
    params = tuple(value for value in (config_name, variant) if value)
    return f" AND f.run_id IN (SELECT run_id FROM runs WHERE {' AND '.join(where)})", params


def _state_key(key: str) -> str:
    if not key:
        raise UserError("state key must be a non-empty string")
    return key


def _state_text(key: str, value: Mapping[str, Any]) -> str:
    """The state as stored: JSON, refused above `MAX_STATE_BYTES` (every learner bounds its own
    state well below it; this is the backstop that keeps a bug or a hostile input from growing it)."""
    text = rows.to_json(value, f"state {_state_key(key)!r}")
    size = len(text.encode("utf-8"))
    if size > MAX_STATE_BYTES:
        raise UserError(
            f"state {key!r} is {size:,} bytes, above the store's limit of {MAX_STATE_BYTES:,}: "
            "lower the learner's window or max_contexts"
        )
    return text


def _within_rate(run: Execute, key: str, rate: FeedbackRate, stamp: str) -> None:
    """Raise `RateLimitError` when `key` gave `rate.count` events in the window ending at `stamp`."""
    now = datetime.fromisoformat(stamp)
    start = (now - timedelta(seconds=rate.window_s)).isoformat(timespec="microseconds")
    recent = run(_KEY_RECENT, (key, start, rate.count))
    if len(recent) >= rate.count:
        free_at = datetime.fromisoformat(str(recent[0][0])) + timedelta(seconds=rate.window_s)
        wait = max(0.0, (free_at - now).total_seconds())
        raise RateLimitError(
            f"feedback rate limit: this API key gave {rate.count} feedback events in the last "
            f"{rate.window_s:g} s (the limit); retry in {math.ceil(wait)} s",
            wait,
        )


def _check_feedback(kind: str, value: str | None) -> None:
    if kind not in FEEDBACK_KINDS:
        raise UserError(f"feedback kind must be one of {', '.join(FEEDBACK_KINDS)}; got {kind!r}")
    if kind in VALUED_KINDS and not (value and value.strip()):
        raise UserError(f"{kind} feedback needs a value (the right answer)")


def _limit(limit: int) -> int:
    if limit < 1:
        raise UserError(f"limit must be at least 1, got {limit}")
    return limit


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """Bounded IN-lists: SQLite caps the number of parameters per statement."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
