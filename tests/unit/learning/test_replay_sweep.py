"""The `--lam-sweep` summaries of benchmarks/learning_replay.py on synthetic rewards (no log files)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("learning_replay")
ARMS = len(bench.ARMS)


def _rewards(contexts: list[str], good: dict[str, int]) -> np.ndarray:
    """Reward 1 for the context's good arm, 0 elsewhere."""
    rewards = np.zeros((len(contexts), ARMS))
    for i, c in enumerate(contexts):
        rewards[i, good[c]] = 1.0
    return rewards


def test_lam_grid_is_log_spaced_and_brackets_the_default() -> None:
    grid = bench.LAM_GRID
    assert list(grid) == sorted(grid) and len(set(grid)) == len(grid)
    assert grid[0] < 5e-4 < grid[-1] and 5e-4 in grid


def test_split_half_gain_is_positive_when_contexts_prefer_stable_different_arms() -> None:
    contexts = ["a", "b"] * 20
    rewards = _rewards(contexts, {"a": 0, "b": 5})
    # second half: per-context policy gets all 20; the best single arm gets 10
    assert bench.split_half_context_gain(rewards, contexts) == pytest.approx(10.0)


def test_split_half_gain_is_negative_when_the_context_preference_flips() -> None:
    contexts = ["a", "b"] * 20
    head = _rewards(contexts[:20], {"a": 0, "b": 5})
    tail = _rewards(contexts[20:], {"a": 5, "b": 0})
    assert bench.split_half_context_gain(np.vstack([head, tail]), contexts) == pytest.approx(-10.0)


def test_split_half_gain_falls_back_to_the_first_half_best_arm_for_unseen_contexts() -> None:
    contexts = ["a"] * 10 + ["z"] * 10
    rewards = _rewards(contexts, {"a": 2, "z": 2})
    assert bench.split_half_context_gain(rewards, contexts) == pytest.approx(0.0)


def test_sweep_cell_summarises_seeds_and_flags_a_material_ceiling() -> None:
    contexts = ["a", "b"] * 200
    rewards = _rewards(contexts, {"a": 0, "b": 5})
    oracle = np.array([0 if c == "a" else 5 for c in contexts])
    always_first = np.zeros(len(contexts), dtype=int)
    cell = bench.sweep_cell(rewards, [oracle, always_first], contexts, warm=100)
    late = cell["after_warmup"]
    assert late["best_arms"] == ["0.0", "1.01"] and late["best_arm_reward"] == 150.0
    assert (late["margin_seed0"], late["margin_min"], late["margin_mean"]) == (150.0, 0.0, 75.0)
    assert late["seeds_beating_every_arm"] == 1 and not late["beats_every_arm_all_seeds"]
    assert late["hindsight_context_ceiling_over_best_arm"] == 150.0
    assert cell["second_half"]["split_half_context_policy_over_best_arm"] == 100.0
    assert cell["material_ceiling"]


def test_sweep_cell_no_material_ceiling_when_one_arm_is_best_everywhere() -> None:
    contexts = ["a", "b"] * 200
    rewards = _rewards(contexts, {"a": 3, "b": 3})
    cell = bench.sweep_cell(rewards, [np.full(len(contexts), 3)], contexts, warm=100)
    assert cell["after_warmup"]["hindsight_context_ceiling_over_best_arm"] == 0.0
    assert cell["after_warmup"]["margin_seed0"] == 0.0 and cell["after_warmup"]["seeds_beating_every_arm"] == 0
    assert not cell["material_ceiling"]


def test_tagged_streams_give_the_bandit_tagged_contexts_in_their_new_order() -> None:
    from cascade.eval.analysis.confidence import LoggedConfidence
    from cascade.eval.analysis.policies import CascadePolicy, PreparedCascade

    n = 3
    prepared = PreparedCascade(
        CascadePolicy(("a", "b"), LoggedConfidence()),
        np.zeros((n, 1)),
        np.ones((n, 2)),
        np.ones((n, 2)),
        np.ones((n, 2)),
    )
    stream = bench.Stream("t", prepared, ["q0", "q1", "q2"], 0.5, ["x", "y", "z"])
    moved = stream.reordered([2, 0, 1])
    assert moved.queries == ["q2", "q0", "q1"] and moved.tags == ["z", "x", "y"]
    assert [c.split("|")[0] for c in bench.bandit_contexts(moved)] == ["tag=z", "tag=x", "tag=y"]
    assert moved.part(1, 3).tags == ["x", "y"]
