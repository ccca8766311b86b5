"""Stopping rules: exact Beta probabilities, the Dirichlet estimate, ESC windows, composition."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from verifiers.stopping import (
    StoppingConfig,
    beta_top_probability,
    dirichlet_top_probability,
    stop_after_samples,
    stop_all,
    stop_any,
    stop_never,
    stop_when_beta,
    stop_when_dirichlet,
    stop_when_window,
    vote_counts,
)


def beta_tail_by_integration(a: int, b: int, steps: int = 2000) -> float:
    """P(X > 0.5) for X ~ Beta(a+1, b+1), by Simpson's rule on the density (independent of the code)."""
    norm = math.gamma(a + 1) * math.gamma(b + 1) / math.gamma(a + b + 2)
    h = 0.5 / steps
    xs = [0.5 + i * h for i in range(steps + 1)]
    fs = [x**a * (1 - x) ** b / norm for x in xs]
    return h / 3 * (fs[0] + fs[-1] + 4 * sum(fs[1:-1:2]) + 2 * sum(fs[2:-1:2]))


def test_beta_probability_hand_computed() -> None:
    assert beta_top_probability(3, 0) == pytest.approx(15 / 16)  # [x, x, x]
    assert beta_top_probability(2, 1) == pytest.approx(11 / 16)  # [x, y, x]
    assert beta_top_probability(4, 0) == pytest.approx(31 / 32)  # [x, x, x, x]
    assert beta_top_probability(1, 1) == pytest.approx(0.5)
    assert beta_top_probability(0, 0) == pytest.approx(0.5)


@pytest.mark.parametrize(("top", "second"), [(0, 0), (3, 0), (2, 1), (5, 2), (7, 3), (10, 0), (40, 25), (90, 3)])
def test_scipy_beta_tail_equals_the_exact_binomial_sum_it_replaced(top: int, second: int) -> None:
    n = top + second + 1
    exact = sum(math.comb(n, j) for j in range(second + 1, n + 1)) / (1 << n)
    assert beta_top_probability(top, second) == pytest.approx(exact, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("a", "b"), [(3, 0), (2, 1), (5, 2), (7, 3), (10, 0), (4, 4)])
def test_beta_probability_matches_numeric_integration(a: int, b: int) -> None:
    assert beta_top_probability(a, b) == pytest.approx(beta_tail_by_integration(a, b), abs=1e-9)


def test_beta_rule_at_95_percent() -> None:
    rule = stop_when_beta(0.95)
    assert not rule(["x", "x", "x"])  # 0.9375
    assert not rule(["x", "y", "x"])  # 0.6875
    assert rule(["x", "x", "x", "x"])  # 0.96875
    assert rule(["x", None, "x", "x", None, "x"])  # None answers are not votes
    assert not rule(["x"] * 5 + ["y", "z"])  # top 5 vs runner-up 1: 120/128 = 0.9375
    assert not rule([None, None, None])
    assert not rule([])


def test_vote_counts_ignore_none_and_sort() -> None:
    assert vote_counts(["a", "b", "b", None, "c", "b", "a"]) == [3, 2, 1]


def test_dirichlet_with_two_answers_matches_beta() -> None:
    for counts in ([3, 1], [5, 2], [2, 2]):
        exact = beta_top_probability(counts[0], counts[1])
        assert dirichlet_top_probability(counts, draws=20000) == pytest.approx(exact, abs=0.015)


def test_dirichlet_single_answer_has_unseen_runner_up() -> None:
    assert dirichlet_top_probability([4], draws=20000) == pytest.approx(31 / 32, abs=0.01)


def test_dirichlet_third_answer_lowers_probability_and_is_seeded() -> None:
    two = dirichlet_top_probability([4, 2])
    three = dirichlet_top_probability([4, 2, 2])
    assert three < two
    assert dirichlet_top_probability([4, 2, 2]) == three


def test_dirichlet_rule() -> None:
    rule = stop_when_dirichlet(0.95)
    assert not rule([])
    assert not rule(["x", "x", "x"])
    assert rule(["x"] * 6)
    assert not rule(["x", "x", "x", "x", "y", "z"])


def test_window_rule_is_esc() -> None:
    rule = stop_when_window(3)
    assert not rule(["x", "x"])  # fewer samples than the window
    assert not rule(["x", "y", "y"])
    assert rule(["x", "y", "y", "y"])
    assert not rule(["y", "y", "y", "x"])
    assert not rule([None, None, None])


def test_after_samples_and_never() -> None:
    assert not stop_after_samples(3)(["a", "b"])
    assert stop_after_samples(3)(["a", None, "b"])
    assert not stop_never()(["a"] * 100)


def test_or_and_composition() -> None:
    either = stop_after_samples(5) | stop_when_window(2)
    assert isinstance(either, stop_any)
    assert either(["x", "y", "y"])
    assert either(["a", "b", "c", "d", "e"])
    assert not either(["a", "b", "c"])
    both = stop_after_samples(3) & stop_when_window(2)
    assert isinstance(both, stop_all)
    assert not both(["y", "y"])
    assert both(["x", "y", "y"])


def test_composition_with_plain_functions() -> None:
    def has_z(answers: Sequence[str | None]) -> bool:
        return "z" in answers

    rule = has_z | stop_after_samples(10)
    assert rule(["z"])
    assert not (stop_after_samples(1) & has_z)(["a"])


def test_stopping_config_builds_rules() -> None:
    beta = StoppingConfig().build()
    assert isinstance(beta, stop_when_beta) and beta.confidence == 0.95
    assert isinstance(StoppingConfig(rule="dirichlet").build(), stop_when_dirichlet)
    window = StoppingConfig(rule="window", window=3).build()
    assert isinstance(window, stop_when_window) and window.window == 3
    assert isinstance(StoppingConfig(rule="fixed").build(), stop_never)


def test_stopping_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        StoppingConfig.model_validate({"rule": "beta", "threshold": 0.9})
    with pytest.raises(ValidationError):
        StoppingConfig(confidence=1.5)
    with pytest.raises(ValidationError):
        StoppingConfig.model_validate({"rule": "sometimes"})
