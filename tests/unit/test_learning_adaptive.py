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

import pytest

from cascade.config import CascadeConfig, PluginSpec
from cascade.protocols import DecideContext, Router
from cascade.registry import BuildContext
from cascade.store import LabelledRun, Store, open_store
from cascade.types import Attempt, CascadeResult, DecisionAction, Verdict
from routers.adaptive import AdaptiveRouter, BanditRouter, arm_rewards

ROOT = Path(__file__).resolve().parents[2]
TIERS = [
    {"name": "small", "model": "fake/small", "max_tokens": 100},
    {"name": "large", "model": "fake/large", "max_tokens": 400},
]
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
        run_id = store.record_run(run_result(i), config_name="t")
        store.add_feedback(run_id, kind="label", value="4")


def build(kind: str, **fields: Any) -> Any:
    import routers.adaptive  # noqa: F401  registers the plugins until routers/__init__ imports the module

    ctx = BuildContext(CascadeConfig.from_dict({"tiers": TIERS}))
    built = ctx.build("router", PluginSpec(type=kind, **fields), ("router",))
    assert isinstance(built, Router)
    return built


def decide_ctx(router_query: str, confidence: float) -> DecideContext:
    tier = CascadeConfig.from_dict({"tiers": TIERS}).tiers[0]
    return DecideContext(router_query, tier, 0, 2, Verdict(confidence=confidence, reason="test"), "4")


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
        saved = store.get_state("router/adaptive")
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


class TestBanditRouter:
    def test_learns_counterfactual_rewards_of_every_determined_arm(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 10)
        items = {item.run.query: item for item in store.labelled_runs()}
        store.close()
        arms = [0.0, 0.5, 1.01]
        escalated: LabelledRun = items["What is 2 + 2? (#3)"]  # small wrong (5) at 0.3, large right
        assert arm_rewards(escalated, arms, 0.01, "large") == {0: pytest.approx(-0.1), 1: 0.5, 2: 0.5}
        accepted = items["What is 2 + 2? (#6)"]  # small right at 0.6; an arm above 0.6 would go further
        assert arm_rewards(accepted, arms, 0.01, "large") == {0: pytest.approx(0.9), 1: pytest.approx(0.9)}

    def test_plays_one_arm_per_query_and_learns(self, dsn: str) -> None:
        store = open_store(dsn)
        add_runs(store, 0, 50)
        router = build("bandit", store=dsn, arms=[0.0, 1.01], lam=0.001, max_explore=0.0)
        assert isinstance(router, BanditRouter) and router.cursor > 0
        first = router.decide(decide_ctx("What is 3 + 3?", 0.5)).threshold
        assert router.decide(decide_ctx("What is 3 + 3?", 0.5)).threshold == first
        store.close()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from cascade.store import open_store
    from routers.adaptive import AdaptiveConfig, AdaptiveRouter, BanditConfig, BanditRouter

    store = open_store(sys.argv[1])
    adaptive = AdaptiveRouter(AdaptiveConfig(target_em=0.8, min_evidence=5), ["small"])
    bandit = BanditRouter(BanditConfig(), "large")
    while True:
        adaptive.learn(store, page=3)
        bandit.learn(store, page=3)
        print(adaptive.cursor, flush=True)
        time.sleep(0.005)
    """
)


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
    killed_at = store.get_state("router/adaptive")
    assert killed_at is not None and killed_at["cursor"] > 0
    add_runs(store, N_RUNS // 2, N_RUNS)
    adaptive, bandit = learn_fresh(dsn)
    assert adaptive.controller.n_observed == N_RUNS
    assert bandit.bandit.overall[0].n == N_RUNS  # arm 0.0 is determined by every run
    reference = open_store(str(Path(dsn).with_name("reference.sqlite")))
    add_runs(reference, 0, N_RUNS)
    ref_adaptive, ref_bandit = learn_fresh(str(Path(dsn).with_name("reference.sqlite")))
    assert adaptive.controller.to_state() == ref_adaptive.controller.to_state()
    assert bandit.bandit.to_state() == ref_bandit.bandit.to_state()
    store.close()
    reference.close()
