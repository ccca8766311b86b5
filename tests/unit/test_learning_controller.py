"""The adaptive-threshold controller and the Thompson bandit: direction, bounds, convergence, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascade.learning.bandit import ThompsonBandit, context_of, reward
from cascade.learning.controller import ControllerSettings, ThresholdController


def controller(**fields: float) -> ThresholdController:
    settings = {"target_em": 0.8, "window": 20, "gain": 0.5, "step": 0.05, "min_evidence": 5, "initial": 0.5}
    return ThresholdController(ControllerSettings(**(settings | fields)), ["small", "medium"])  # type: ignore[arg-type]


class TestThresholdController:
    def test_starts_at_the_safe_end_without_an_initial_value(self) -> None:
        assert ThresholdController(ControllerSettings(0.8, high=0.9), ["small"]).threshold("small") == 0.9

    def test_wrong_answers_raise_the_thresholds(self) -> None:
        c = controller()
        for _ in range(10):
            c.observe("small", True, False)
        assert c.threshold("small") > 0.5 and c.threshold("medium") > 0.5

    def test_right_answers_lower_the_thresholds(self) -> None:
        c = controller()
        for _ in range(10):
            c.observe("small", True, True)
        assert c.threshold("small") < 0.5

    def test_no_move_before_min_evidence(self) -> None:
        c = controller(min_evidence=10)
        for _ in range(9):
            c.observe("small", True, False)
        assert c.threshold("small") == 0.5
        c.observe("small", True, False)
        assert c.threshold("small") > 0.5

    def test_steps_are_bounded(self) -> None:
        c = controller(gain=100.0, step=0.01, min_evidence=0)
        c.observe("small", True, False)
        assert c.threshold("small") == pytest.approx(0.51)

    def test_thresholds_stay_within_bounds(self) -> None:
        c = controller(low=0.3, high=0.7, min_evidence=0)
        for _ in range(200):
            c.observe("small", True, False)
        assert c.threshold("small") == 0.7
        for _ in range(400):
            c.observe("small", True, True)
        assert c.threshold("small") == 0.3

    def test_unlabelled_outcomes_change_nothing(self) -> None:
        c = controller(min_evidence=0)
        c.observe("small", True, None)
        assert c.n_observed == 0 and c.threshold("small") == 0.5

    def test_settles_where_em_meets_the_target(self) -> None:
        """Synthetic cascade: accepting at threshold t is right with probability 0.5 + 0.5 t."""
        rng = np.random.default_rng(0)
        c = controller(target_em=0.8, window=100, gain=0.05, min_evidence=20)
        seen = []
        for _ in range(4000):
            t = c.threshold("small")
            seen.append(t)
            c.observe("small", True, bool(rng.random() < 0.5 + 0.5 * t))
        assert np.mean(seen[2000:]) == pytest.approx(0.6, abs=0.05)

    def test_state_round_trips_through_json(self) -> None:
        c = controller(min_evidence=0)
        for i in range(30):
            c.observe("small" if i % 2 else "medium", True, i % 3 != 0)
        state = json.loads(json.dumps(c.to_state()))
        restored = ThresholdController.from_state(c.settings, state)
        assert restored.to_state() == c.to_state()
        assert restored.rolling_em == c.rolling_em


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

    def test_reward_and_context(self) -> None:
        assert reward(True, 200, 1e-3) == pytest.approx(0.8)
        assert context_of("What is 2 + 3?") == context_of("What is 4 + 5?")
