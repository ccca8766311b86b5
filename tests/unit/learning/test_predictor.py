"""The online cheap-tier predictor, its token budgets, and the `learned` pre-router built on them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.config.schema import CascadeConfig, PluginSpec
from cascade.learning.judged import Judged, by_feedback
from cascade.learning.predictor import CheapTierPredictor, OnlineLogistic, TokenBudgets, featurize
from cascade.protocols import PreRouter
from cascade.registry import BuildContext
from cascade.store import Store, open_store
from cascade.store.access import StoreAccess
from cascade.types import Attempt, CascadeResult, RoutePlan
from routers.learned import LearnedPreRouter, cheap_label

TIERS = [
    {"name": "small", "model": "fake/small", "max_tokens": 100},
    {"name": "large", "model": "fake/large", "max_tokens": 400},
]
EASY = ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b} please."]
HARD = ["Prove that the sum of the first {a} odd numbers is a square, step by step, citing {b} lemmas."]


def queries(n: int, seed: int = 0) -> Iterator[tuple[str, bool]]:
    """A stream where the cheap tier gets easy sums right and proofs wrong (10% label noise)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        hard = bool(rng.random() < 0.4)
        template = str(rng.choice(HARD if hard else EASY))
        correct = (not hard) != bool(rng.random() < 0.1)
        yield template.format(a=int(rng.integers(1, 999)), b=int(rng.integers(1, 99))), correct


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class TestPredictor:
    def test_it_learns_which_queries_the_cheap_tier_gets_right(self) -> None:
        predictor = CheapTierPredictor()
        for query, correct in queries(400):
            predictor.update(query, correct)
        assert predictor.predict_proba("What is 12 plus 30?") > 0.75
        assert predictor.predict_proba(HARD[0].format(a=7, b=2)) < 0.25

    def test_prequential_log_loss_falls_as_data_arrives(self) -> None:
        predictor = CheapTierPredictor()
        stream = list(queries(600, seed=1))
        p = np.array([predictor.update(q, c) for q, c in stream])
        y = np.array([c for _, c in stream], dtype=float)
        assert p[0] == pytest.approx(0.5)  # update returns the prediction made before learning
        assert log_loss(p[400:], y[400:]) < log_loss(p[:100], y[:100]) - 0.1
        assert log_loss(p[400:], y[400:]) < 0.35  # near the 10% label noise's entropy, 0.325

    def test_state_round_trips_through_json(self) -> None:
        predictor = CheapTierPredictor()
        for query, correct in queries(50):
            predictor.update(query, correct)
            predictor.observe_tokens("small", "Add 3 and 4.", 40)
        restored = CheapTierPredictor.from_state(json.loads(json.dumps(predictor.to_state())))
        assert restored.predict_proba("Add 3 and 4.") == predictor.predict_proba("Add 3 and 4.")
        assert restored.n_examples == 50 and restored.budget("small", "Add 3 and 4.") == 50

    def test_features_are_deterministic_and_carry_a_bias(self) -> None:
        x = featurize("How many apples are left?", 256)
        assert x == featurize("How many apples are left?", 256) and x[0] == 1.0
        assert all(0 <= slot < 256 for slot in x)

    def test_l2_keeps_weights_bounded_on_contradictory_labels(self) -> None:
        model = OnlineLogistic(dim=64)
        x = featurize("same query", 64)
        for i in range(500):
            model.update_vector(x, i % 2 == 0)
        assert 0.3 < model.predict_vector(x) < 0.7


class TestTokenBudgets:
    def test_no_budget_until_enough_samples(self) -> None:
        budgets = TokenBudgets(min_samples=3)
        budgets.update("small", "arithmetic", 10)
        assert budgets.budget("small", "arithmetic") is None

    def test_budget_is_a_high_quantile_times_the_margin(self) -> None:
        budgets = TokenBudgets(quantile=0.9, margin=1.5, min_samples=5)
        for n in range(1, 101):
            budgets.update("small", "arithmetic", n)
        assert budgets.budget("small", "arithmetic") == int(np.ceil(np.quantile(np.arange(1, 101), 0.9) * 1.5))
        assert budgets.budget("large", "arithmetic") is None

    def test_the_window_forgets_old_lengths(self) -> None:
        budgets = TokenBudgets(quantile=1.0, margin=1.0, window=10, min_samples=1)
        for n in [500] * 10 + [20] * 10:
            budgets.update("small", "code", n)
        assert budgets.budget("small", "code") == 20


def result(query: str, *, small: str | None, large: str | None = None, tokens: int = 30) -> CascadeResult:
    """A run whose small tier answered `small`; if `large` is given the run escalated to it."""
    attempts = [Attempt(tier="small", model="fake/small", answer=small, completion_tokens=tokens,
                        decision="escalate" if large else "accept")]  # fmt: skip
    if large is not None:
        attempts.append(Attempt(tier="large", model="fake/large", answer=large, completion_tokens=3 * tokens,
                                decision="accept"))  # fmt: skip
    final = large if large is not None else small
    return CascadeResult(query=query, answer=final, accepted=True, final_tier="large" if large else "small",
                         attempts=attempts)  # fmt: skip


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return str(tmp_path / "learn.sqlite")


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    opened = open_store(dsn)
    yield opened
    opened.close()


def fill(store: Store, n: int = 300) -> None:
    """Labelled traffic: the small tier is right on easy sums and wrong on proofs (gold labels)."""
    for i, (query, correct) in enumerate(queries(n, seed=2)):
        run_id = store.record_run(result(query, small="1" if correct else "0"), config_name="cascade")
        store.add_feedback(run_id, kind="label", value="1")
        if i % 50 == 0:
            store.add_feedback(store.record_run(result(query, small=None), config_name="cascade"), kind="thumbs_up")


def build(**fields: Any) -> LearnedPreRouter:
    import routers.learned  # noqa: F401  registers `learned` until routers/__init__ imports it

    ctx = BuildContext(CascadeConfig.from_dict({"tiers": TIERS}), stores=StoreAccess())
    built = ctx.build("pre_router", PluginSpec(type="learned", **fields), ("pre_router",))
    assert isinstance(built, LearnedPreRouter) and isinstance(built, PreRouter)
    return built


def plan(router: LearnedPreRouter, query: str) -> RoutePlan:
    return router.plan(query, list(CascadeConfig.from_dict({"tiers": TIERS}).tiers))


class TestLearnedPreRouter:
    def test_until_min_examples_it_starts_at_the_cheap_tier(self, dsn: str) -> None:
        route = plan(build(store=dsn, min_examples=10), HARD[0].format(a=1, b=2))
        assert route.start_tier == 0 and route.reason == "learning (0/10 labelled examples) → start at 'small'"
        assert route.max_tokens == {"small": 100, "large": 400}

    def test_it_skips_the_cheap_tier_where_it_is_predicted_to_fail(self, store: Store, dsn: str) -> None:
        fill(store)
        router = build(store=dsn, min_examples=50, skip_below=0.4)
        hard, easy = plan(router, HARD[0].format(a=5, b=3)), plan(router, "What is 5 plus 3?")
        assert hard.start_tier == 1 and hard.reason.startswith("P(small correct)=0.")
        assert hard.reason.endswith("< 0.4 → start at 'large'")
        assert easy.start_tier == 0 and "≥ 0.4 → start at 'small'" in easy.reason
        assert 0 <= easy.features["p_cheap_correct"] <= 1 and easy.features["task"] == "arithmetic"

    def test_budgets_follow_observed_completion_lengths(self, store: Store, dsn: str) -> None:
        fill(store)
        route = plan(build(store=dsn, budget_quantile=1.0, budget_margin=1.0), "What is 5 plus 3?")
        assert route.max_tokens == {"small": 30, "large": 400}  # no large attempts seen: the tier's own budget

    def test_learned_budgets_never_exceed_the_tier_cap(self, store: Store, dsn: str) -> None:
        for i in range(30):
            store.record_run(result(f"What is {i} plus 1?", small="1", tokens=1000), config_name="cascade")
        assert plan(build(store=dsn), "What is 5 plus 3?").max_tokens["small"] == 100

    def test_explore_keeps_some_doubtful_queries_at_the_cheap_tier(self, store: Store, dsn: str) -> None:
        fill(store)
        route = plan(build(store=dsn, min_examples=50, explore=1.0), HARD[0].format(a=5, b=3))
        assert route.start_tier == 0 and "exploring" in route.reason

    def test_learning_is_incremental_and_persisted(self, store: Store, dsn: str) -> None:
        fill(store, 100)
        first = build(store=dsn)
        assert first.predictor.n_examples == 100  # unlabelled-for-small thumbs are skipped
        fill(store, 20)
        second = build(store=dsn)
        assert second.predictor.n_examples == 120 and second.labels_seq > first.labels_seq
        assert build(store=dsn, learn_on_build=False).predictor.n_examples == 120


class TestCheapLabel:
    def labelled(self, store: Store, run: CascadeResult, kind: Any, value: str | None = None) -> Judged:
        store.add_feedback(store.record_run(run, config_name="cascade"), kind=kind, value=value)
        return by_feedback(store.labelled_runs()[-1])

    def test_a_gold_label_is_checked_against_the_cheap_answer(self, store: Store) -> None:
        item = self.labelled(store, result("q", small="3", large="4"), "label", "4")
        assert item.correct[-1] == 1.0 and cheap_label(item, "small") == 0.0

    def test_a_thumb_on_a_different_final_answer_says_nothing_about_the_cheap_tier(self, store: Store) -> None:
        assert cheap_label(self.labelled(store, result("q", small="3", large="4"), "thumbs_up"), "small") is None

    def test_a_thumb_on_the_cheap_answer_labels_it(self, store: Store) -> None:
        assert cheap_label(self.labelled(store, result("q", small="4"), "thumbs_down"), "small") == 0.0

    def test_runs_that_skipped_the_cheap_tier_are_not_labels(self, store: Store) -> None:
        assert cheap_label(self.labelled(store, result("q", small="4"), "thumbs_up"), "large") is None


def test_the_loop_closes_through_the_engine(dsn: str) -> None:
    """Run → record → label → rebuild: the rebuilt cascade sends proofs straight to the large tier."""
    from cascade import Cascade, FakeCompleter, FakeReply

    tiers = [{**t, "logprobs": True} for t in TIERS]
    config = CascadeConfig.from_dict(
        {"tiers": tiers, "pre_router": {"type": "learned", "store": dsn, "min_examples": 60}}
    )
    script = {
        "fake/small": [FakeReply("0", match="Prove", logprobs=[-0.01]), FakeReply("1", logprobs=[-0.01])],
        "fake/large": FakeReply("1", logprobs=[-0.01]),
    }
    store = open_store(dsn)
    try:
        cascade = Cascade(config, completer=FakeCompleter(script))  # type: ignore[arg-type]
        for query, _ in queries(120, seed=3):
            result = cascade.run(query)
            store.add_feedback(store.record_run(result, config_name="cascade"), kind="label", value="1")
    finally:
        store.close()
    rebuilt = Cascade(config, completer=FakeCompleter(script))  # type: ignore[arg-type]
    proof = rebuilt.run(HARD[0].format(a=3, b=4))
    assert [a.tier for a in proof.attempts] == ["large"] and "start at 'large'" in proof.route_reason
    assert rebuilt.run("What is 2 plus 2?").final_tier == "small"
