"""The counterfactual threshold controller and the Thompson bandit: estimates, direction, bounds, convergence, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascade.learning.controller import (
    ControllerSettings,
    RunEvidence,
    ThresholdController,
    estimate,
    plan,
    query_unit,
)
from cascade.learning.thompson import ThompsonBandit, reward


def controller(**fields: float) -> ThresholdController:
    settings = {"target_em": 0.8, "window": 20, "step": 0.05, "min_evidence": 5, "initial": 0.5}
    return ThresholdController(ControllerSettings(**(settings | fields)), ["small", "medium"])  # type: ignore[arg-type]


def accepted(confidence: float, correct: bool | None, tokens: float = 10.0) -> RunEvidence:
    """A two-tier run whose first answer was accepted: tier 1 never ran."""
    return RunEvidence((confidence,), (correct,), (tokens,), reached_end=False)


def escalated(confidence: float, small: bool, large: bool, tokens: tuple[float, float] = (10.0, 50.0)) -> RunEvidence:
    return RunEvidence((confidence, None), (small, large), tokens, reached_end=True)


class TestCounterfactualEstimate:
    def test_a_hand_computed_window(self) -> None:
        """Two accepted runs, two escalated; thresholds 0.5 (as run), 0.0 (accept all), 0.95 (escalate all)."""
        runs = [accepted(0.9, True), accepted(0.6, False), escalated(0.3, False, True), escalated(0.2, True, True)]
        found = estimate(runs, [0.5, 0.0, 0.95])
        # 0.5: as it happened. 0.0: the escalated runs keep their small answers (wrong, right).
        # 0.95: accepted runs are imputed from the escalated ones: after a right small answer the
        # large one was right 1/1 (+1 optimistic pseudo-count: 2/2); after a wrong one 1/1 (2/2).
        assert found.em.tolist() == pytest.approx([0.75, 0.5, 1.0])
        assert found.tokens.tolist() == pytest.approx([30.0, 10.0, 50.0])

    def test_escalation_is_imputed_from_runs_that_left_the_same_kind_of_answer(self) -> None:
        runs = [
            accepted(0.9, False),
            escalated(0.1, True, True),
            escalated(0.1, False, False),
            escalated(0.1, False, False),
        ]
        found = estimate(runs, [1.0])
        # the accepted run left a wrong answer: runs that escalated a wrong answer were right 0/2 (+1: 1/3)
        assert found.em[0] == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)

    def test_unjudged_attempts_take_the_mean_known_accuracy(self) -> None:
        runs = [accepted(0.9, True), accepted(0.8, False), escalated(0.3, None, True)]  # type: ignore[arg-type]
        assert estimate(runs, [0.0]).em[0] == pytest.approx((1 + 0 + 0.5) / 3)

    def test_with_neighbours_unjudged_attempts_take_the_accuracy_at_their_confidence(self) -> None:
        """Thumbs judge only the answer given: sure answers were accepted and right, unsure ones were
        right when explored; an escalated unsure answer is imputed from the unsure ones, not from all."""
        runs = [accepted(0.9, True), accepted(0.95, True), accepted(0.2, False), accepted(0.25, False)]
        runs.append(escalated(0.3, None, True))  # type: ignore[arg-type]
        assert estimate(runs, [0.0]).em[0] == pytest.approx((1 + 1 + 0 + 0 + 0.5) / 5)  # the mean: 0.5
        assert estimate(runs, [0.0], neighbours=2).em[0] == pytest.approx((1 + 1 + 0 + 0 + 0) / 5)


class TestPlan:
    def test_mixes_two_thresholds_to_land_on_the_target(self) -> None:
        """Coarse confidences: accept-all gives EM 0.6, escalating the unsure gives 0.9; target 0.8."""
        runs = [accepted(1.0, True)] * 6 + [escalated(0.0, False, True)] * 3 + [escalated(0.0, False, False)]
        found = estimate(runs, [0.0, 0.5, 1.5])
        chosen = plan(found, 0.8)
        assert (chosen.high, chosen.low) == (0.5, 0.0)
        assert chosen.share == pytest.approx((0.8 - 0.6) / (0.9 - 0.6))

    def test_unreachable_target_takes_the_highest_em(self) -> None:
        found = estimate([accepted(0.9, False), escalated(0.1, False, False)], [0.0, 1.0])
        assert plan(found, 0.99).share == 1.0


class TestThresholdController:
    def test_starts_at_the_safe_end_without_an_initial_value(self) -> None:
        assert ThresholdController(ControllerSettings(0.8, high=0.9), ["small"]).threshold("small") == 0.9

    def test_wrong_cheap_answers_raise_the_thresholds(self) -> None:
        c = controller()
        for _ in range(10):
            c.observe(accepted(0.6, False))
            c.observe(escalated(0.4, False, True))
        assert c.threshold("small") > 0.5 and c.threshold("medium") > 0.5

    def test_right_cheap_answers_lower_the_thresholds(self) -> None:
        c = controller()
        for _ in range(10):
            c.observe(accepted(0.6, True))
            c.observe(escalated(0.4, True, True))
        assert c.threshold("small") < 0.5

    def test_no_move_before_min_evidence(self) -> None:
        c = controller(min_evidence=10)
        for _ in range(9):
            c.observe(accepted(0.6, False))
        assert c.threshold("small") == 0.5
        c.observe(accepted(0.6, False))
        assert c.threshold("small") > 0.5

    def test_steps_are_bounded(self) -> None:
        c = controller(step=0.01, min_evidence=0)
        c.observe(accepted(0.6, False))
        assert c.threshold("small") == pytest.approx(0.51)

    def test_thresholds_stay_within_bounds(self) -> None:
        c = controller(low=0.3, high=0.7, min_evidence=0)
        for _ in range(200):
            c.observe(escalated(0.65, False, True))
        assert c.threshold("small") == 0.7
        for _ in range(400):
            c.observe(accepted(0.1, True))
        assert c.threshold("small") == 0.3

    def test_unlabelled_outcomes_change_nothing(self) -> None:
        c = controller(min_evidence=0)
        c.observe(accepted(0.9, None))
        assert c.n_observed == 0 and c.threshold("small") == 0.5

    def test_a_mixed_plan_splits_queries_by_their_unit(self) -> None:
        c = controller(target_em=0.8, window=100, min_evidence=0, step=1.0)
        for _ in range(10):
            for run in [accepted(1.0, True)] * 6 + [escalated(0.0, False, True)] * 3 + [escalated(0.0, False, False)]:
                c.observe(run)
        assert c.threshold("small", 0.0) == 1.0 and c.threshold("small", 0.99) == 0.0
        units = np.random.default_rng(0).random(2000)
        share = np.mean([c.threshold("small", u) == 1.0 for u in units])
        assert share == pytest.approx(c.mix.share, abs=0.03)

    def test_settles_at_the_cheapest_threshold_that_reaches_the_target(self) -> None:
        """Synthetic cascade: confidence c ~ U(0, 1), the small tier is right with probability c, the
        large tier always: EM(t) = t + (1 - t^2) / 2, which reaches 0.8 at t = 1 - sqrt(0.4)."""
        rng = np.random.default_rng(0)
        c = controller(target_em=0.8, window=200, min_evidence=50, initial=None)
        seen, correct = [], []
        for _ in range(1200):
            conf, t = float(rng.random()), c.threshold("small", float(rng.random()))
            small_right = bool(rng.random() < conf)
            run = accepted(conf, small_right) if conf >= t else escalated(conf, small_right, True)
            seen.append(t)
            correct.append(run.final_correct)
            c.observe(run)
        assert np.mean(seen[300:]) == pytest.approx(1 - np.sqrt(0.4), abs=0.05)
        assert np.mean(correct[300:]) == pytest.approx(0.8, abs=0.025)

    def test_state_round_trips_through_json(self) -> None:
        c = controller(min_evidence=0)
        for i in range(30):
            c.observe(accepted(0.7, i % 3 != 0) if i % 2 else escalated(0.2, False, i % 5 != 0))
        state = json.loads(json.dumps(c.to_state()))
        restored = ThresholdController.from_state(c.settings, state)
        assert restored.to_state() == c.to_state()
        assert restored.rolling_em == c.rolling_em

    def test_a_state_from_the_feedback_controller_still_loads(self) -> None:
        old = {"thresholds": {"small": 0.7}, "outcomes": [1, 0], "accepted_by": {}, "n_observed": 2}
        restored = ThresholdController.from_state(controller().settings, old)
        assert restored.threshold("small") == 0.7 and not restored.runs

    def test_query_unit_is_stable_and_in_range(self) -> None:
        assert query_unit("What is 2 + 2?") == query_unit("What is 2 + 2?")
        assert all(0.0 <= query_unit(str(i)) < 1.0 for i in range(100))


class TestThompsonBandit:
    def test_converges_to_the_best_arm_with_a_seed(self) -> None:
        rng = np.random.default_rng(1)
        means = [0.2, 0.5, 0.45]
        bandit = ThompsonBandit(3, max_explore=0.2, seed=3)
        picks = []
        for _ in range(1500):
            arm = bandit.choose("ctx")
            picks.append(arm)
            bandit.update("ctx", arm, float(rng.normal(means[arm], 0.3)))
        assert np.mean(np.array(picks[-500:]) == 1) > 0.8

    def test_contexts_learn_their_own_best_arm(self) -> None:
        bandit = ThompsonBandit(2, max_explore=0.0)
        for _ in range(200):
            for context, arm, value in (("a", 0, 1.0), ("a", 1, 0.0), ("b", 0, 0.0), ("b", 1, 1.0)):
                bandit.update(context, arm, value)
        assert bandit.choose("a") == 0 and bandit.choose("b") == 1

    def test_exploration_stays_within_its_bound(self) -> None:
        bandit = ThompsonBandit(5, max_explore=0.05, seed=0)
        for _ in range(1000):
            bandit.update("ctx", bandit.choose("ctx"), 0.0)
        assert bandit.explored <= 0.05 * bandit.decisions

    def test_choices_are_reproducible_after_a_state_round_trip(self) -> None:
        bandit = ThompsonBandit(4, seed=7, max_explore=0.5)
        for i in range(50):
            bandit.update("x", bandit.choose("x"), float(i % 3))
        restored = ThompsonBandit.from_state(json.loads(json.dumps(bandit.to_state())), seed=7, max_explore=0.5)
        assert restored.to_state() == bandit.to_state()
        assert [restored.choose("x") for _ in range(20)] == [bandit.choose("x") for _ in range(20)]

    def test_reward(self) -> None:
        assert reward(True, 200, 1e-3) == pytest.approx(0.8)
