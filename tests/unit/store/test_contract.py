"""The Store's behaviour, written once: SQLite runs it here, PostgreSQL in tests/integration.

`StoreContract` is not collected itself (no `Test` prefix); each backend subclasses it and
supplies a `dsn` fixture naming a fresh, empty store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cascade.errors import RateLimitError, RunNotFoundError, UserError
from cascade.store import (
    LATEST_VERSION,
    FeedbackKind,
    FeedbackRate,
    FeedbackRecord,
    ReferencePair,
    Store,
    open_store,
    sqlite_path,
)
from cascade.store.sql import SqlStore
from cascade.types import Attempt, CascadeResult

KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX"


def make_result(run_id: str, answer: str | None = "Paris", *, query: str = "Capital of France?") -> CascadeResult:
    """A two-attempt run: the small tier escalates, the large one accepts."""
    attempts = [
        Attempt(tier="small", model="fake/small", answer="Lyon", prompt_tokens=10, completion_tokens=2,
                cost_usd=0.001, latency_s=0.1, confidence=0.3, threshold=0.7, decision="escalate",
                reason="confidence 0.30 < threshold 0.70", samples=3, samples_saved=1,
                verifier_details={"agreement": 0.33}),
        Attempt(tier="large", model="fake/large", answer=answer, prompt_tokens=12, completion_tokens=3,
                cost_usd=0.01, latency_s=0.5, confidence=0.9, threshold=0.7, decision="accept", reason="ok"),
    ]  # fmt: skip
    return CascadeResult(
        query=query, answer=answer, accepted=True, final_tier="large", attempts=attempts,
        route_reason="start at small", stop_reason="accepted", run_id=run_id,
    )  # fmt: skip


def open_at(dsn: str, version: int) -> SqlStore:
    """A store migrated only up to `version`, as an older cascade would have left it."""
    if dsn.startswith("postgresql://"):
        from cascade.store.postgres import PostgresStore

        return PostgresStore(dsn, target_version=version)
    from cascade.store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path(dsn), target_version=version)


class StoreContract:
    """What every Store backend must do; subclasses provide the `dsn` fixture."""

    @pytest.fixture
    def store(self, dsn: str) -> Iterator[Store]:
        opened = open_store(dsn)
        yield opened
        opened.close()

    def test_a_run_round_trips_with_its_attempts(self, store: Store) -> None:
        result = make_result("r1")
        assert store.record_run(result, config_name="local", variant="B", features={"len": 18, "kind": "geo"}) == "r1"
        run = store.get_run("r1")
        assert run is not None
        assert (run.run_id, run.config_name, run.variant, run.query) == ("r1", "local", "B", "Capital of France?")
        assert (run.answer, run.accepted, run.final_tier) == ("Paris", True, "large")
        assert run.total_tokens == result.total_tokens == 27
        assert run.total_cost_usd == pytest.approx(0.011)
        assert run.features == {"len": 18, "kind": "geo"}
        assert [a.tier for a in run.attempts] == ["small", "large"]
        assert run.attempts[0].decision == "escalate" and run.attempts[0].threshold == 0.7
        assert run.attempts[0].verifier_details == {"agreement": 0.33}
        assert datetime.fromisoformat(run.created_at).utcoffset() == timedelta(0)
        assert run.result() == result.model_copy(update={"variant": "B"})  # the run comes back with its variant
        assert store.get_run("missing") is None

    def test_nul_characters_are_stored_as_replacement_characters(self, store: Store) -> None:
        """Issue 22.6: on PostgreSQL a query with a NUL was answered but not stored (DataError) and
        feedback with one was a 500; both backends now store U+FFFD in its place."""
        result = make_result("nul", answer="Par\x00is", query="2+2\x00").model_copy(
            update={"messages": [{"role": "user", "content": "hi\x00"}], "tag": "t\x00"}
        )
        store.record_run(result, config_name="local\x00")
        store.add_feedback("nul", kind="correction", value="Paris\x00", user="ann\x00")
        run = store.get_run("nul")
        assert run is not None and (run.query, run.answer, run.config_name) == (
            "2+2\ufffd",
            "Par\ufffdis",
            "local\ufffd",
        )
        assert run.features["messages"][0]["content"] == "hi\x00"  # inside JSON text, escaped as \u0000
        assert [(f.value, f.user) for f in store.feedback_for("nul")] == [("Paris\ufffd", "ann\ufffd")]
        assert store.get_run("nul\x00") is None
        with pytest.raises(RunNotFoundError):
            store.add_feedback("nul\x00", kind="thumbs_up")

    def test_recording_a_run_twice_keeps_one_copy(self, store: Store) -> None:
        store.record_run(make_result("dup"), config_name="local")
        store.record_run(make_result("dup", answer="Lyon"), config_name="other")
        runs = store.runs()
        assert [r.run_id for r in runs] == ["dup"]
        assert len(runs[0].attempts) == 2 and runs[0].answer == "Paris"

    def test_a_result_without_run_id_gets_one(self, store: Store) -> None:
        run_id = store.record_run(make_result(""), config_name="local")
        assert len(run_id) == 32 and store.get_run(run_id) is not None

    def test_record_run_needs_a_config_name(self, store: Store) -> None:
        with pytest.raises(UserError, match="config_name"):
            store.record_run(make_result("r"), config_name="")

    def test_runs_is_a_cursor_in_insertion_order(self, store: Store) -> None:
        for i in range(5):
            store.record_run(make_result(f"r{i}"), config_name="a" if i % 2 == 0 else "b")
        runs = store.runs()
        assert [r.run_id for r in runs] == [f"r{i}" for i in range(5)]
        seqs = [r.seq for r in runs]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        page = store.runs(since_id=seqs[1], limit=2)
        assert [r.run_id for r in page] == ["r2", "r3"]
        assert [r.run_id for r in store.runs(since_id=page[-1].seq)] == ["r4"]
        assert [r.run_id for r in store.runs(config_name="b")] == ["r1", "r3"]
        with pytest.raises(UserError, match="limit"):
            store.runs(limit=0)

    def test_feedback_is_linked_to_its_run_in_order(self, store: Store) -> None:
        store.record_run(make_result("r1"), config_name="local")
        first = store.add_feedback("r1", kind="thumbs_down", user="ana")
        second = store.add_feedback("r1", kind="correction", value="Paris, France", user="ana")
        assert second > first
        events = store.feedback_for("r1")
        assert [(e.id, e.kind, e.value, e.user) for e in events] == [
            (first, "thumbs_down", None, "ana"),
            (second, "correction", "Paris, France", "ana"),
        ]
        assert all(isinstance(e, FeedbackRecord) and e.run_id == "r1" for e in events)
        assert store.feedback_for("other") == []

    def test_feedback_keeps_the_key_that_gave_it(self, store: Store) -> None:
        for run_id in ("r1", "r2"):
            store.record_run(make_result(run_id), config_name="local")
        store.add_feedback("r1", kind="thumbs_down", key="key-aaaa0001")
        store.add_feedback("r2", kind="thumbs_up")
        store.add_feedback("r1", kind="thumbs_up", key="key-bbbb0002")
        events = store.feedback_on(["r2", "r1", "r1"])
        assert [(e.run_id, e.kind, e.key) for e in events] == [
            ("r1", "thumbs_down", "key-aaaa0001"),
            ("r2", "thumbs_up", None),
            ("r1", "thumbs_up", "key-bbbb0002"),
        ]
        assert [item.feedback.key for item in store.labelled_runs()] == [None, "key-bbbb0002"]

    def test_a_key_over_its_feedback_rate_is_refused_with_the_wait(self, store: Store) -> None:
        store.record_run(make_result("r1"), config_name="local")
        rate = FeedbackRate(3, window_s=60.0)
        for _ in range(3):
            store.add_feedback("r1", kind="thumbs_down", key="key-a", rate=rate)
        with pytest.raises(RateLimitError, match="gave 3 feedback events in the last 60 s") as refused:
            store.add_feedback("r1", kind="thumbs_down", key="key-a", rate=rate)
        assert 55.0 < refused.value.retry_after_s <= 60.0
        store.add_feedback("r1", kind="thumbs_up", key="key-b", rate=rate)  # another key has its own
        store.add_feedback("r1", kind="thumbs_up", rate=rate)  # the operator has no limit
        assert len(store.feedback_for("r1")) == 5
        brief = FeedbackRate(3, window_s=0.2)
        time.sleep(0.25)
        store.add_feedback("r1", kind="thumbs_down", key="key-a", rate=brief)  # the window moved on

    def test_feedback_on_an_unknown_run_is_a_user_error(self, store: Store) -> None:
        with pytest.raises(UserError, match="no run 'nope'"):
            store.add_feedback("nope", kind="thumbs_up")

    @pytest.mark.parametrize(
        ("kind", "value", "match"),
        [("correction", None, "needs a value"), ("label", "  ", "needs a value"), ("meh", None, "must be one of")],
    )
    def test_malformed_feedback_is_a_user_error(self, store: Store, kind: str, value: str | None, match: str) -> None:
        store.record_run(make_result("r1"), config_name="local")
        with pytest.raises(UserError, match=match):
            store.add_feedback("r1", kind=kind, value=value)  # type: ignore[arg-type]
        assert store.feedback_for("r1") == []

    def test_labelled_runs_read_the_latest_feedback_as_correctness(self, store: Store) -> None:
        feedback: dict[str, list[tuple[FeedbackKind, str | None]]] = {
            "up": [("thumbs_up", None)],
            "down": [("thumbs_down", None)],
            "label_match": [("label", "  the PARIS! ")],
            "label_miss": [("label", "Lyon")],
            "fixed": [("thumbs_up", None), ("correction", "Marseille")],
            "none": [],
        }
        for run_id, events in feedback.items():
            store.record_run(make_result(run_id), config_name="local")
            for kind, value in events:
                store.add_feedback(run_id, kind=kind, value=value)
        store.record_run(make_result("no_answer", answer=None), config_name="local")
        store.add_feedback("no_answer", kind="label", value="Paris")
        labelled = {item.run.run_id: item for item in store.labelled_runs()}
        assert {k: v.correct for k, v in labelled.items()} == {
            "up": True, "down": False, "label_match": True, "label_miss": False, "fixed": False, "no_answer": False,
        }  # fmt: skip
        assert labelled["fixed"].feedback.kind == "correction"
        assert labelled["fixed"].run.attempts[1].answer == "Paris"

    def test_labelled_runs_cursor_sees_late_feedback_on_old_runs(self, store: Store) -> None:
        for run_id in ("old", "new"):
            store.record_run(make_result(run_id), config_name="local")
        store.add_feedback("new", kind="thumbs_up")
        first = store.labelled_runs()
        assert [(i.run.run_id, i.correct) for i in first] == [("new", True)]
        store.add_feedback("old", kind="thumbs_down")
        store.add_feedback("new", kind="label", value="Rome")
        later = store.labelled_runs(since_seq=first[-1].seq)
        assert [(i.run.run_id, i.correct) for i in later] == [("old", False), ("new", False)]
        assert store.labelled_runs(since_seq=later[-1].seq) == []
        assert [i.run.run_id for i in store.labelled_runs(limit=1)] == ["old"]

    def test_learned_state_is_upserted_json(self, store: Store) -> None:
        assert store.get_state("thresholds") is None
        store.put_state("thresholds", {"small": 0.7, "tiers": ["small", "large"]})
        store.put_state("thresholds", {"small": np.float64(0.65), "alpha": np.array([1.0, 2.0]), "n": np.int64(3)})
        assert store.get_state("thresholds") == {"small": 0.65, "alpha": [1.0, 2.0], "n": 3}
        with pytest.raises(UserError, match="JSON"):
            store.put_state("bad", {"x": object()})
        with pytest.raises(UserError, match="key"):
            store.put_state("", {})

    def test_each_save_bumps_the_state_version(self, store: Store) -> None:
        assert store.state_version("k") == 0 and store.get_state_entry("k") is None
        assert store.put_state("k", {"n": 1}) == 1 and store.put_state("k", {"n": 2}) == 2
        entry = store.get_state_entry("k")
        assert entry is not None and entry.value == {"n": 2} and entry.version == 2 == store.state_version("k")

    def test_compare_and_put_saves_only_over_the_expected_version(self, store: Store) -> None:
        assert store.compare_and_put_state("k", {"n": 1}, expect_version=0) == 1
        assert store.compare_and_put_state("k", {"n": 9}, expect_version=0) is None  # someone saved first
        assert store.compare_and_put_state("k", {"n": 2}, expect_version=1) == 2
        assert store.compare_and_put_state("k", {"n": 9}, expect_version=1) is None
        assert store.compare_and_put_state("absent", {"n": 9}, expect_version=3) is None
        assert store.get_state("k") == {"n": 2} and store.get_state("absent") is None

    def test_a_lease_has_one_holder_until_released_or_expired(self, store: Store) -> None:
        assert store.acquire_lease("learn", "a", 60) and store.acquire_lease("learn", "a", 60)  # renewing is fine
        assert not store.acquire_lease("learn", "b", 60) and store.lease_holder("learn") == "a"
        store.release_lease("learn", "b")  # not b's to release
        assert store.lease_holder("learn") == "a"
        store.release_lease("learn", "a")
        assert store.lease_holder("learn") is None and store.acquire_lease("learn", "b", 0.05)
        deadline = time.monotonic() + 5
        while store.lease_holder("learn") == "b" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.acquire_lease("learn", "a", 60) and store.lease_holder("learn") == "a"  # b's expired
        with pytest.raises(UserError):
            store.acquire_lease("learn", "a", 0)

    def test_labelled_runs_can_be_scoped_to_a_config_and_variant(self, store: Store) -> None:
        for run_id, config, variant in (("a1", "a", None), ("b1", "b", "x"), ("b2", "b", "y"), ("a2", "a", "x")):
            store.record_run(make_result(run_id), config_name=config, variant=variant)
            store.add_feedback(run_id, kind="thumbs_up")

        def ids(**scope: str) -> list[str]:
            return [item.run.run_id for item in store.labelled_runs(**scope)]

        assert ids() == ["a1", "b1", "b2", "a2"] and ids(config_name="a") == ["a1", "a2"]
        assert ids(config_name="b", variant="y") == ["b2"] and ids(variant="x") == ["b1", "a2"]

    def test_reference_pairs_round_trip_in_commit_order(self, store: Store) -> None:
        audit = ReferencePair(
            run_id="r1", config_name="local", source="audit", tier="small", answer="Paris", reference_tier="large",
            reference="paris", agree=True, weight=20.0, served=True, confidence=0.9, threshold=0.7,
            answer_format="first_line", cost_usd=0.01, tokens=15,
        )  # fmt: skip
        escalated = ReferencePair(
            run_id="r2", config_name="local", source="escalation", tier="small", answer="Lyon",
            reference_tier="large", reference="Paris", agree=False, confidence=0.3, threshold=0.7, variant="B",
        )  # fmt: skip
        dropped = ReferencePair(
            run_id="r3", config_name="other", source="audit", tier="small", answer="4", reference_tier="large",
            reference=None, agree=None, weight=20.0, served=True, note="dropped: the audit queue was full",
        )  # fmt: skip
        seqs = store.add_reference_pairs([audit, escalated])
        seqs += store.add_reference_pairs([dropped])
        assert seqs == sorted(seqs) and len(set(seqs)) == 3 and store.add_reference_pairs([]) == []
        stored = store.reference_pairs()
        assert [r.pair for r in stored] == [audit, escalated, dropped] and [r.seq for r in stored] == seqs
        assert [r.pair.run_id for r in store.reference_pairs(config_name="local", source="escalation")] == ["r2"]
        assert [r.pair.run_id for r in store.reference_pairs(variant="B")] == ["r2"]
        assert [r.pair.run_id for r in store.reference_pairs(since_seq=seqs[0], limit=1)] == ["r2"]
        assert store.reference_pairs(since=stored[-1].created_at)[-1].pair == dropped
        assert store.reference_pairs(since="9999") == []
        assert [r.pair for r in store.reference_pairs_of(["r3", "r1", "nope"])] == [audit, dropped]
        assert [r.pair for r in store.reference_pairs_of(["r3", "r1"], until_seq=seqs[1])] == [audit]
        with pytest.raises(UserError, match="weight"):
            store.add_reference_pairs([replace(audit, weight=0.0)])

    def test_runs_by_id_and_since_a_time(self, store: Store) -> None:
        for run_id in ("a", "b", "c"):
            store.record_run(make_result(run_id), config_name="local")
        assert [r.run_id for r in store.runs_by_id(["c", "missing", "a", "c"])] == ["a", "c"]
        later = store.runs()[1].created_at
        assert [r.run_id for r in store.runs(since=later)] == ["b", "c"]
        assert [r.run_id for r in store.runs(since=later, config_name="nope")] == []

    def test_api_keys_never_reach_the_store(self, store: Store) -> None:
        result = make_result("r1", answer=f"use {KEY}", query=f"my key is {KEY}")
        result.attempts[0].error = f"401: bad key {KEY}"
        store.record_run(result, config_name="local", features={"note": KEY})
        store.add_feedback("r1", kind="correction", value=f"not {KEY}", user=KEY)
        run, events = store.get_run("r1"), store.feedback_for("r1")
        assert run is not None
        stored = repr(run) + repr(events)
        assert KEY not in stored and "ABCDEFGHIJKLMNOP" not in stored
        assert "sk-***" in run.query and "sk-***" in run.features["note"] and "sk-***" in (events[0].value or "")

    def test_data_survives_close_and_reopen(self, dsn: str) -> None:
        first = open_store(dsn)
        first.record_run(make_result("r1"), config_name="local")
        first.add_feedback("r1", kind="thumbs_up")
        first.put_state("bandit", {"arms": 3})
        first.close()
        again = open_store(dsn)
        try:
            assert again.get_run("r1") is not None and len(again.feedback_for("r1")) == 1
            assert again.get_state("bandit") == {"arms": 3}
            assert getattr(again, "schema_version", None) == LATEST_VERSION
        finally:
            again.close()

    def test_opening_twice_applies_each_migration_once(self, dsn: str) -> None:
        for _ in range(2):
            store = open_at(dsn, LATEST_VERSION)
            store.close()
        store = open_at(dsn, LATEST_VERSION)
        try:
            versions = [v for (v,) in store._query("SELECT version FROM schema_version ORDER BY version")]
            assert versions == list(range(1, LATEST_VERSION + 1))
        finally:
            store.close()


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def dsn(self, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path / 'store.sqlite'}"
