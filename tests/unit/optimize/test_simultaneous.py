"""The simultaneous bound: Tango's score bound per candidate, a max-T critical value over the candidates, and a
choice that keeps its promise where each candidate's own bound does not (the winner's curse)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from cascade.eval.analysis.offline_tiers import TierSpec
from cascade.optimize.candidates import Gate, Structure
from cascade.optimize.select import Objective, Reference, Selection, feasible, selection_for, summary
from cascade.optimize.simultaneous import critical_value, lower_bound

N = 300


@pytest.mark.parametrize("losses", [0, 2, 5, 12])
def test_without_wins_the_score_bound_is_close_to_the_exact_binomial_one(losses: int) -> None:
    exact = -beta.ppf(0.95, losses + 1, N - losses)  # Clopper-Pearson, one-sided 95%
    found = float(lower_bound(np.array(0.0), np.array(float(losses)), N, 1.645))
    assert found <= -losses / N and abs(found - exact) < 0.004


def test_the_score_bound_covers_the_truth_with_few_disagreements() -> None:
    rng = np.random.default_rng(0)
    for p_win, p_loss in ((0.0, 0.01), (0.0, 0.02), (0.01, 0.03)):
        counts = rng.multinomial(N, [p_win, p_loss, 1 - p_win - p_loss], size=4000).astype(float)
        missed = lower_bound(counts[:, 0], counts[:, 1], N, 1.645) > p_win - p_loss
        assert missed.mean() < 0.06


def test_the_critical_value_counts_candidates_that_vary_apart_not_copies() -> None:
    rng = np.random.default_rng(1)
    one = -(rng.random((1, N)) < 0.02).astype(float)
    assert critical_value(one, 0.95) == pytest.approx(1.645, abs=1e-3)
    assert critical_value(np.repeat(one, 40, axis=0), 0.95) == pytest.approx(1.645, abs=1e-3)
    independent = -(rng.random((40, N)) < 0.02).astype(float)
    assert 2.6 < critical_value(independent, 0.95) < 3.4  # about the 95% point of the largest of 40 normals


def _candidates(rng: np.random.Generator, k: int, disagree: float) -> tuple[list, Reference]:  # type: ignore[type-arg]
    """`k` cheap cascades, each agreeing with the reference on a share 1 - `disagree` of items (label-free)."""
    ref = Reference(np.ones(N), np.ones(N), np.arange(N) % 5)
    objective = Objective(tolerance=0.02)
    found = []
    for j in range(k):
        correct = (rng.random(N) >= disagree).astype(float)
        structure = Structure((Gate(TierSpec(f"cheap-{j}", (f"cheap-{j}",)), "vote"),), TierSpec("ref", ("ref",)))
        found.append(summary(structure, (1.0,), correct, np.full(N, 0.4), ref, objective))
    return found, ref


def test_the_simultaneous_choice_keeps_the_promise_that_each_candidates_own_bound_breaks() -> None:
    """Thirty cascades that all miss the promise (agreement 0.975 < 0.98): their own bounds let one through
    in most tuning samples, the simultaneous bound in at most the 5% it allows."""
    rng = np.random.default_rng(2)
    objective, broken = Objective(tolerance=0.02), {"simultaneous": 0, "each": 0}
    for _ in range(25):
        found, ref = _candidates(rng, 30, 0.025)
        diff = np.stack([s.correct - ref.correct for s in found])
        chosen_by = {
            "simultaneous": Selection("simultaneous", critical_value(diff, 0.95, draws=1000), len(found)),
            "each": selection_for(found, ref, Objective(tolerance=0.02, selection="each")),
        }
        for method, selection in chosen_by.items():
            broken[method] += any(feasible(s, objective, selection) for s in found)
    assert broken["each"] >= 8 and broken["simultaneous"] <= 1
