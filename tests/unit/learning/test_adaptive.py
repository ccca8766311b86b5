"""The `adaptive` and `bandit` routers: learning from the store, resuming, and surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.config.schema import CascadeConfig, PluginSpec
from cascade.learning.controller import RunEvidence
from cascade.learning.judged import Judged, by_feedback
from cascade.learning.trust import KeyTrust
from cascade.protocols import DecideContext, Router
from cascade.registry import BuildContext
from cascade.store import LabelledRun, Store, open_store
from cascade.store.access import StoreAccess
from cascade.store.base import FeedbackRecord, RunRecord
from cascade.types import Attempt, CascadeResult, DecisionAction, Verdict
from routers._learner import run_evidence
from routers.adaptive import AdaptiveRouter
from routers.bandit import BanditConfig, BanditRouter, arm_rewards, bandit_context, confidence_bucket

ROOT = Path(__file__).resolve().parents[3]
TIERS = [
    {"name": "small", "model": "fake/small", "max_tokens": 100},
    {"name": "large", "model": "fake/large", "max_tokens": 400},
]
TIER_NAMES = [tier["name"] for tier in TIERS]
N_RUNS = 240


def attempt(tier: str, answer: str, confidence: float, decision: DecisionAction, tokens: int) -> Attempt:
    return Attempt(
        tier=tier,
        model=f"fake/{tier}",
        answer=answer,
        completion_tokens=tokens,
        confidence=confidence,
        decision=decision,
    )


def run_result(i: int) -> CascadeResult:
    """Run i: the small tier answers with confidence (i % 10) / 10, right on even i; escalates below 0.5."""
    confidence, small = (i % 10) / 10, "4" if i % 2 == 0 else "5"
    attempts = [attempt("small", small, confidence, "accept" if confidence >= 0.5 else "escalate", 10)]
    if confidence < 0.5:
        attempts.append(attempt("large", "4", 0.9, "accept", 40))
    answer = attempts[-1].answer
    return CascadeResult(
        query=f"What is 2 + 2? (#{i})", answer=answer, accepted=True, final_tier=attempts[-1].tier, attempts=attempts
    )


def add_runs(store: Store, start: int, stop: int) -> None:
    for i in range(start, stop):
        run_id = store.record_run(run_result(i), config_name="cascade")
        store.add_feedback(run_id, kind="label", value="4")


def build(kind: str, **fields: Any) -> Any:
    import routers.adaptive  # noqa: F401  registers the plugins until routers/__init__ imports the module

    ctx = BuildContext(CascadeConfig.from_dict({"tiers": TIERS}), stores=StoreAccess())
    built = ctx.build("router", PluginSpec(type=kind, **fields), ("router",))
    assert isinstance(built, Router)
    return built


def decide_ctx(router_query: str, confidence: float) -> DecideContext:
    tier = CascadeConfig.from_dict({"tiers": TIERS}).tiers[0]
    return DecideContext(
        query=router_query,
        tier=tier,
        tier_index=0,
        n_tiers=2,
        verdict=Verdict(confidence=confidence, reason="test"),
        answer="4",
    )


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return str(tmp_path / "learn.sqlite")


class TestAdaptiveRouter:
    def test_learns_from_labels_and_persists(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 100)
        router = build("adaptive", store=dsn, target_em=0.95, min_evidence=10, initial=0.5)
        assert isinstance(router, AdaptiveRouter)
        assert router.controller.n_observed == 100 and router.threshold_for("small") > 0.5
        saved = store.get_state("router/adaptive/cascade")
        assert saved is not None and saved["cursor"] == router.cursor
        store.close()

    def test_a_rebuilt_router_resumes_without_relearning(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 60)
        first = build("adaptive", store=dsn, target_em=0.9, min_evidence=10)
        add_runs(store, 60, 80)
        second = build("adaptive", store=dsn, target_em=0.9, min_evidence=10)
        assert second.controller.n_observed == 80 and first.controller.n_observed == 60
        store.close()

    def test_decides_with_the_learned_threshold(self, dsn: str) -> None:
        router = build("adaptive", store=dsn, target_em=0.9, initial=0.7)
        assert router.decide(decide_ctx("q", 0.69)).action == "escalate"
        assert router.decide(decide_ctx("q", 0.7)).action == "accept"

    def test_explore_accepts_a_stable_share_of_cheap_answers(self, dsn: str) -> None:
        router = build("adaptive", store=dsn, target_em=0.9, initial=0.99, explore=0.2)
        decisions = [router.decide(decide_ctx(f"q{i}", 0.1)) for i in range(1000)]
        explored = [d for d in decisions if d.action == "accept"]
        assert 150 < len(explored) < 250 and all("exploring" in d.reason for d in explored)
        assert [router.decide(decide_ctx(f"q{i}", 0.1)).action for i in range(50)] == [
            d.action for d in decisions[:50]
        ]  # the same queries, every time
        assert build("adaptive", store=dsn, target_em=0.9, initial=0.99).decide(decide_ctx("q1", 0.1)).action == (
            "escalate"
        )

    def test_runs_become_counterfactual_evidence(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 10)
        items = {item.run.query: by_feedback(item) for item in store.labelled_runs()}
        store.close()
        escalated = run_evidence(items["What is 2 + 2? (#3)"], TIER_NAMES)  # small wrong at 0.3, large right
        assert escalated == RunEvidence((0.3, 0.9), (False, True), (10.0, 50.0), reached_end=True)
        accepted = run_evidence(items["What is 2 + 2? (#6)"], TIER_NAMES)  # small right at 0.6: tier 1 never ran
        assert accepted == RunEvidence((0.6,), (True,), (10.0,), reached_end=False)


class TestBanditRouter:
    def test_learns_counterfactual_rewards_of_every_determined_arm(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 10)
        items = {item.run.query: run_evidence(by_feedback(item), TIER_NAMES) for item in store.labelled_runs()}
        store.close()
        arms = [0.0, 0.5, 1.01]
        escalated = items["What is 2 + 2? (#3)"]  # small wrong (5) at 0.3, large right
        assert escalated is not None and arm_rewards(escalated, arms, 0.01) == {
            0: pytest.approx(-0.1), 1: 0.5, 2: 0.5
        }  # fmt: skip
        accepted = items["What is 2 + 2? (#6)"]  # small right at 0.6; an arm above 0.6 would go further
        assert accepted is not None and arm_rewards(accepted, arms, 0.01) == {
            0: pytest.approx(0.9),
            1: pytest.approx(0.9),
        }

    def test_plays_one_arm_per_query_and_learns(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 50)
        router = build("bandit", store=dsn, arms=[0.0, 1.01], lam=0.001, max_explore=0.0)
        assert isinstance(router, BanditRouter) and router.cursor > 0
        first = router.decide(decide_ctx("What is 3 + 3?", 0.5)).threshold
        assert router.decide(decide_ctx("What is 3 + 3?", 0.5)).threshold == first
        store.close()

    def test_contexts_carry_the_first_answers_confidence_bucket(self) -> None:
        arms = [0.0, 0.5, 0.95, 1.01]
        assert [confidence_bucket(c, arms) for c in (None, 0.2, 0.5, 0.97)] == [-1, 1, 2, 3]
        assert bandit_context("What is 2 + 3?", 0.2, arms, "confidence") == "c1"
        assert bandit_context("What is 2 + 3?", 0.2, arms, "query") == bandit_context(
            "What is 4 + 5?", 0.9, arms, "query"
        )
        assert bandit_context("What is 2 + 3?", 0.2, arms, "query+confidence").endswith("|c1")

    def test_learns_to_accept_sure_answers_and_escalate_unsure_ones(self) -> None:
        """Synthetic stream: the small tier is right with probability = its confidence, the large one
        95% of the time; escalating costs 50 tokens (0.05 reward). Escalation pays below 0.9."""
        arms = [0.0, 0.5, 0.95, 1.01]
        router = BanditRouter(BanditConfig(arms=arms, lam=1e-3, max_explore=0.1, context="confidence"), "large")
        rng = np.random.default_rng(0)
        for i in range(1500):
            query, confidence = f"q{i}", float(rng.random())
            level = arms[router.arm_for(query, confidence)]
            small = "4" if rng.random() < confidence else "5"
            attempts = [attempt("small", small, confidence, "accept" if confidence >= level else "escalate", 10)]
            if confidence < level:
                attempts.append(attempt("large", "4" if rng.random() < 0.95 else "6", 0.9, "accept", 50))
            router.learn_one(router.bandit, labelled(i, query, attempts), KeyTrust())
        accepts = {arm for arm, level in enumerate(arms) if level <= 0.95}
        assert router.bandit.greedy("c3") in accepts  # confidence >= 0.95: accept the small answer
        assert router.bandit.greedy("c1") not in {0}  # confidence < 0.5: escalate
        assert router.bandit.greedy("c2") not in {0, 1}  # 0.5 <= confidence < 0.95: escalate


def labelled(i: int, query: str, attempts: list[Attempt]) -> Judged:
    """A run with the operator's gold label "4", built without a store."""
    answer = attempts[-1].answer
    run = RunRecord(
        seq=i, run_id=str(i), created_at="", config_name="cascade", variant=None, query=query, answer=answer,
        accepted=True, final_tier=attempts[-1].tier, total_tokens=sum(a.total_tokens for a in attempts),
        total_cost_usd=0.0, attempts=list(attempts),
    )  # fmt: skip
    feedback = FeedbackRecord(id=i, run_id=str(i), kind="label", value="4", user=None, created_at="")
    return by_feedback(LabelledRun(run, feedback, correct=answer == "4"))


_CHILD = textwrap.dedent(
    """
    import sys, time
    from cascade.learning.online import Scope
    from cascade.store import open_store
    from routers._learner import Placement
    from routers.adaptive import AdaptiveConfig, AdaptiveRouter
    from routers.bandit import BanditConfig, BanditRouter

    store = open_store(sys.argv[1])
    adaptive = AdaptiveRouter(
        AdaptiveConfig(target_em=0.8, min_evidence=5), ["small"], "large",
        placement=Placement("router/adaptive/cascade", scope=Scope("cascade")),
    )
    bandit = BanditRouter(BanditConfig(), "large", placement=Placement("router/bandit/cascade", scope=Scope("cascade")))
    while True:
        adaptive.learn(store, page=3)
        bandit.learn(store, page=3)
        print(adaptive.cursor, flush=True)
        time.sleep(0.005)
    """
)


def without_run_ids(state: dict[str, Any]) -> dict[str, Any]:
    """A controller's state with its evidence listed without the run ids (random per recording)."""
    pools = {judge: [run for _, run in entries] for judge, entries in state["feedback"].items()}
    return {**state, "reference": [run for _, run in state["reference"]], "feedback": pools}


def learn_fresh(dsn: str) -> tuple[AdaptiveRouter, BanditRouter]:
    """Routers built as at a restart: load the persisted state and cursor, then learn what is new."""
    return build("adaptive", store=dsn, target_em=0.8, min_evidence=5), build("bandit", store=dsn)


def test_sigkill_mid_stream_loses_no_feedback_and_no_learned_state(dsn: str) -> None:
    store = open_store(dsn)
    add_runs(store, 0, 20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, dsn], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for start in range(20, N_RUNS // 2, 10):  # labels keep arriving while the child learns
            add_runs(store, start, start + 10)
            time.sleep(0.02)
        line = child.stdout.readline()
        while line and int(line) == 0:
            line = child.stdout.readline()
        assert line, "the learning child died before learning anything"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    killed_at = store.get_state("router/adaptive/cascade")
    assert killed_at is not None and killed_at["cursor"] > 0
    add_runs(store, N_RUNS // 2, N_RUNS)
    adaptive, bandit = learn_fresh(dsn)
    assert adaptive.controller.n_observed == N_RUNS
    assert bandit.bandit.overall[0].n == N_RUNS  # arm 0.0 is determined by every run
    reference = open_store(str(Path(dsn).with_name("reference.sqlite")))
    add_runs(reference, 0, N_RUNS)
    ref_adaptive, ref_bandit = learn_fresh(str(Path(dsn).with_name("reference.sqlite")))
    assert without_run_ids(adaptive.controller.to_state()) == without_run_ids(ref_adaptive.controller.to_state())
    assert bandit.bandit.to_state() == ref_bandit.bandit.to_state()
    store.close()
    reference.close()
