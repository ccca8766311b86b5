"""How much a key's feedback counts: trust earned against the reference, a share cap, and runs judged
by the reference (audits, escalations) or by feedback, as learners read them from the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade.learning.controller import ControllerSettings, RunEvidence, ThresholdController, estimate
from cascade.learning.judged import Cursors, EvidenceConfig, by_feedback, by_reference, read_step
from cascade.learning.online import Scope
from cascade.learning.trust import MAX_KEYS, KeyTrust, TrustPolicy, earned_trust
from cascade.store import ReferencePair, Store, open_store
from cascade.store.base import ReferenceRecord
from cascade.types import CascadeResult
from tests.unit.learning.test_adaptive import attempt


class TestTrust:
    def test_a_key_earns_trust_by_agreeing_with_the_reference_and_loses_it_by_contradicting_it(self) -> None:
        trust = KeyTrust()
        assert trust.trust("key-a") == 0.0  # never checked: its feedback counts for nothing yet
        for _ in range(30):
            trust.check("key-a", True)
        assert 0.8 < trust.trust("key-a") < 1.0
        for _ in range(30):
            trust.check("key-a", False)
        assert trust.trust("key-a") == 0.0  # agreeing half the time is a coin
        for _ in range(100):
            trust.check("key-b", False)
        assert trust.trust("key-b") == 0.0
        assert earned_trust(90, 10) == pytest.approx(2 * 0.84 - 1, abs=0.03)  # an honest user, 90% agreement

    def test_the_operator_and_trust_keys_all_are_trusted_fully(self) -> None:
        trust = KeyTrust()
        trust.check("", False)
        assert trust.trust("") == 1.0 and trust.trust("anonymous") == 1.0 and not trust.checks
        assert KeyTrust(TrustPolicy(trust_keys="all")).trust("key-a") == 1.0

    def test_one_key_weighs_at_most_its_share_of_itself_and_the_reference(self) -> None:
        trust = KeyTrust(TrustPolicy(key_share=0.2, trust_keys="all"))
        shares = trust.shares(100.0, {"key-a": 1000.0, "key-b": 10.0, "": 500.0})
        assert shares == {"key-a": pytest.approx(25.0), "key-b": 10.0, "": 500.0}
        assert shares["key-a"] / (shares["key-a"] + 100.0) == pytest.approx(0.2)
        assert trust.shares(0.0, {"key-a": 1000.0}) == {"key-a": 1000.0}  # no reference: trust alone
        assert KeyTrust(TrustPolicy(key_share=1.0, trust_keys="all")).shares(1.0, {"k": 9.0}) == {"k": 9.0}

    def test_admitted_feedback_accumulates_within_the_cap(self) -> None:
        trust = KeyTrust(TrustPolicy(key_share=0.2, trust_keys="all"))
        assert trust.admit("key-a") == 1.0  # before any reference evidence
        for _ in range(10):
            trust.add_reference()
        granted = [trust.admit("key-a") for _ in range(100)]
        assert sum(granted) == pytest.approx(2.5) and granted[-1] == 0.0
        assert trust.admit("") == 1.0 and trust.admit("key-b") == 1.0

    def test_the_record_is_bounded_and_round_trips(self) -> None:
        trust = KeyTrust()
        for i in range(MAX_KEYS + 50):
            trust.check(f"key-{i}", True)
        trust.check("key-7", True)
        assert len(trust.checks) == MAX_KEYS and "key-7" in trust.checks
        again = KeyTrust.from_state(trust.to_state())
        assert again.to_state() == trust.to_state() and again.trust("key-7") == trust.trust("key-7")

    def test_without_a_reference_trust_cannot_be_earned_so_it_must_be_given(self) -> None:
        with pytest.raises(ValueError, match="set trust_keys: all"):
            EvidenceConfig(learn_from=("feedback",))
        assert EvidenceConfig(learn_from=("feedback",), trust_keys="all").learn_from == ("feedback",)


def run_record(run_id: str, *attempts: tuple[str, str, float]) -> CascadeResult:
    """A run of (tier, answer, confidence) attempts; the last one answered."""
    made = [attempt(tier, answer, confidence, "escalate", 10) for tier, answer, confidence in attempts]
    made[-1] = made[-1].model_copy(update={"decision": "accept"})
    return CascadeResult(
        query=f"q {run_id}", answer=made[-1].answer, accepted=True, final_tier=made[-1].tier, attempts=made,
        run_id=run_id,
    )  # fmt: skip


def pair(run_id: str, source: str, agree: bool | None, answer: str = "5", **extra: object) -> ReferencePair:
    fields: dict[str, object] = {
        "run_id": run_id, "config_name": "cascade", "source": source, "tier": "small", "answer": answer,
        "reference_tier": "large", "reference": "4", "agree": agree,
    }  # fmt: skip
    return ReferencePair(**{**fields, **extra})  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "judged.sqlite"))
    yield opened
    opened.close()


class TestJudged:
    def test_an_escalation_judges_the_cheap_answer_and_the_reference_is_right(self, store: Store) -> None:
        store.record_run(run_record("e", ("small", "5", 0.3), ("large", "4", 0.9)), config_name="cascade")
        store.add_reference_pairs([pair("e", "escalation", False)])
        judged = by_reference(store.runs()[0], store.reference_pairs())
        assert (judged.correct, judged.weight, judged.audited, judged.escalation_tokens) == (
            (0.0, 1.0),
            1.0,
            False,
            None,
        )

    def test_an_audit_stands_for_the_runs_it_samples_and_prices_the_escalation(self, store: Store) -> None:
        store.record_run(run_record("a", ("small", "4", 0.9)), config_name="cascade")
        store.add_reference_pairs([pair("a", "audit", True, answer="4", weight=20.0, served=True, tokens=30)])
        judged = by_reference(store.runs()[0], store.reference_pairs())
        assert (judged.correct, judged.weight, judged.audited, judged.escalation_tokens) == ((1.0,), 20.0, True, 30)

    def test_a_thumb_on_an_escalated_run_learns_the_cheap_verdict_from_the_reference(self, store: Store) -> None:
        """Thumbs judge the answer given; the escalation tells whether the cheap answer agreed."""
        store.record_run(run_record("e", ("small", "5", 0.3), ("large", "4", 0.9)), config_name="cascade")
        store.add_feedback("e", kind="thumbs_down", key="key-a")
        reference = by_reference(store.runs()[0], [ReferenceRecord(1, "", pair("e", "escalation", False))])
        (item,) = store.labelled_runs()
        assert by_feedback(item).correct == (None, 0.0)
        judged = by_feedback(item, reference)
        assert (judged.correct, judged.judge) == ((0.0, 0.0), "key-a")

    def test_each_key_is_checked_once_against_the_reference_whichever_comes_first(self, store: Store) -> None:
        store.record_run(run_record("early", ("small", "4", 0.9)), config_name="cascade")
        store.record_run(run_record("late", ("small", "4", 0.9)), config_name="cascade")
        store.add_feedback("early", kind="thumbs_down", key="key-a")  # before its audit
        first = read_step(store, Scope("cascade"), Cursors(), 100, ("feedback", "escalations", "audits"))
        assert first.checks == [] and len(first.feedback) == 1
        store.add_reference_pairs(
            [pair(r, "audit", True, answer="4", weight=5.0, served=True) for r in ("early", "late")]
        )
        store.add_feedback("late", kind="thumbs_down", key="key-a")  # after its audit
        second = read_step(store, Scope("cascade"), first.cursors, 100, ("feedback", "escalations", "audits"))
        assert second.checks == [("key-a", False), ("key-a", False)]
        assert [j.run.run_id for j in second.references] == ["early", "late"] and second.consumed == 3
        assert read_step(store, Scope("cascade"), second.cursors, 100, ("feedback", "audits")).checks == []

    def test_a_learner_reads_only_the_sources_it_learns_from(self, store: Store) -> None:
        store.record_run(run_record("a", ("small", "4", 0.9)), config_name="cascade")
        store.add_reference_pairs([pair("a", "audit", True, answer="4", served=True)])
        step = read_step(store, Scope("cascade"), Cursors(), 100, ("escalations",))
        assert step.references == [] and step.consumed == 1 and step.cursors.references == 1


def controller(**trust: object) -> ThresholdController:
    settings = ControllerSettings(0.9, window=200, step=1.0, min_evidence=5, initial=0.5, trust=TrustPolicy(**trust))  # type: ignore[arg-type]
    return ThresholdController(settings, ["small"])


def accepted(correct: float, weight: float = 1.0) -> RunEvidence:
    """A cheap answer at confidence 0.8, accepted; had it escalated, the strong tier would have been right."""
    return RunEvidence((0.8, None), (correct, 1.0), (10.0, 60.0), reached_end=True, weight=weight)


class TestPools:
    def test_references_count_only_for_a_learner_that_reads_escalations_and_audits(self) -> None:
        """Escalations alone see only the answers the router doubted: they would drag it down forever."""
        partial = ControllerSettings(0.9, window=200, min_evidence=1, initial=0.5, representative=False)
        for c in (controller(), ThresholdController(partial, ["small"])):
            for i in range(10):
                c.observe_reference(RunEvidence((0.2, None), (0.0, 1.0), (10.0, 60.0), True), run_id=f"e{i}")
        assert c.n_observed == 0 and c.threshold("small") == 0.5 and c.estimate() is None
        assert controller().evidence.representative

    def test_an_untrusted_keys_flood_changes_nothing(self) -> None:
        """1,000 thumbs-down from a key the audits contradict: the same thresholds, step for step."""
        quiet, flooded = controller(), controller()
        for c in (quiet, flooded):
            for _ in range(50):
                c.trust.check("key-a", False)
        for i in range(40):
            for c in (quiet, flooded):
                c.observe_reference(accepted(1.0, weight=5.0), run_id=f"r{i}")
            for j in range(25):
                flooded.observe(accepted(0.0), run_id=f"a{i}-{j}", judge="key-a")
            assert flooded.thresholds == quiet.thresholds and flooded.mix == quiet.mix
        assert quiet.threshold("small") < 0.8 and flooded.n_observed == quiet.n_observed

    def test_even_a_trusted_key_moves_the_estimate_by_at_most_its_share(self) -> None:
        c = controller(key_share=0.2, trust_keys="all")
        for i in range(100):
            c.observe_reference(accepted(1.0), run_id=f"r{i}")
        before = c.estimate()
        for i in range(1000):
            c.observe(accepted(0.0), run_id=f"a{i}", judge="key-a")
        after = c.estimate()
        assert before is not None and after is not None
        assert float(before.em.min()) == 1.0 and float(after.em.min()) == pytest.approx(0.8)

    def test_a_flood_evicts_its_own_feedback_not_another_keys(self) -> None:
        c = controller(trust_keys="all")
        for i in range(50):
            c.observe(accepted(1.0), run_id=f"b{i}", judge="key-b")
        for i in range(1000):
            c.observe(accepted(0.0), run_id=f"a{i}", judge="key-a")
        assert len(c.evidence.feedback["key-b"]) == 50 and len(c.evidence.feedback["key-a"]) == 150


class TestCaution:
    def test_the_standard_error_counts_heavy_runs_as_few(self) -> None:
        light = [accepted(1.0), accepted(1.0), accepted(0.0), accepted(0.0)]
        found = estimate(light, [0.5])
        assert found.em[0] == pytest.approx(0.5) and found.se is not None
        assert found.se[0] == pytest.approx(0.25)  # sqrt(4 x 0.25) / 4
        heavy = [accepted(1.0, weight=20.0), accepted(0.0, weight=20.0)] + [accepted(1.0)] * 2
        assert estimate(heavy, [0.5]).se[0] > found.se[0]  # type: ignore[index]
        assert found.cautious(2.0).em[0] == pytest.approx(0.0) and found.cautious(0.0) is found

    def test_a_cautious_controller_keeps_the_threshold_where_few_audits_cannot_prove_the_target(self) -> None:
        """Five audits, all agreeing, stand for 100 accepted answers: the point estimate says accept them;
        one standard error below it does not."""
        runs = [accepted(1.0, weight=20.0) for _ in range(5)] + [accepted(0.0, weight=1.0) for _ in range(3)]
        plans = {}
        for caution in (0.0, 1.0):
            c = ThresholdController(
                ControllerSettings(0.96, step=1.0, min_evidence=1, initial=0.9, caution=caution), ["small"]
            )
            for i, run in enumerate(runs):
                c.observe_reference(run, run_id=str(i))
            plans[caution] = c.thresholds["small"]
        assert plans[0.0] < 0.8 and plans[1.0] == 1.0  # estimate 0.971; one standard error below it: 0.950
