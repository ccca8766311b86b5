"""A report's first line: the cascade at its operating point against the strongest model alone, on the
same items, with paired 95% intervals; and, in words, why when the figures beside it would mislead.

"vs gpt-4 alone on 1031 items: cost 0.458x [0.433, 0.485], EM -0.8 pt [-1.6, -0.1]" is what a reader
came for; the curve metrics below it describe the cascade's whole swept curve, not the point that
runs. Two readings went wrong without a word: an operating point dearer than the strongest model
(every escalated item pays the tiers before it too), and the swept curve's "cost cut at the
strongest's EM" (e.g. -22%: no swept threshold matches its EM for less) printed beside a config that
costs 0.46x at a lower EM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cascade.eval.analysis import stats
from cascade.eval.analysis.replay_report import PairedEstimate, ReplayReport, Verdict, VsStrongest


def vs_strongest(
    correct: np.ndarray,
    cost: np.ndarray,
    strong_correct: np.ndarray,
    strong_cost: np.ndarray,
    seed: int = 0,
    n_resamples: int = 2000,
) -> VsStrongest:
    """Cost ratio and EM difference against the strongest model on the same items, with percentile
    95% intervals over items resampled in pairs (`cascade.eval.analysis.stats`; none under 2 items)."""
    n = len(correct)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_value = float(np.sum(cost) / np.sum(strong_cost))
    ratio = stats.ratio_of_sums(cost, strong_cost, n_resamples, seed=seed)
    delta = stats.mean_difference(correct, strong_correct, n_resamples, seed=seed)

    def interval(estimate: stats.Estimate | None) -> list[float] | None:
        return list(estimate.ci) if n >= 2 and estimate is not None and estimate.ci is not None else None

    return {
        "cost_ratio_vs_strongest": {"value": ratio_value, "ci": interval(ratio), "n": n},
        "em_delta_vs_strongest": {"value": delta.value if delta else float("nan"), "ci": interval(delta), "n": n},
    }


def verdict(report: ReplayReport, paired: VsStrongest, strongest: str) -> Verdict:
    """The verdict of `report` from its paired figures: the line, and the notes it needs."""
    ratio, delta = paired["cost_ratio_vs_strongest"], paired["em_delta_vs_strongest"]
    unit = "tokens" if report["source"].get("cost_unit") == "tokens" else "cost"
    line = (
        f"vs {strongest} alone on {ratio['n']} items: {unit} {ratio['value']:.3f}x{_ci(ratio, '{:.3f}')}, "
        f"EM {100 * delta['value']:+.1f} pt{_ci(delta, '{:+.1f}', 100)}"
    )
    return {"strongest": strongest, **paired, "line": line, "notes": _notes(report, ratio["value"], strongest)}


def _ci(entry: PairedEstimate, pattern: str, scale: float = 1.0) -> str:
    if entry["ci"] is None:
        return ""
    low, high = (pattern.format(scale * v) for v in entry["ci"])
    return f" [{low}, {high}]"


def _notes(report: ReplayReport, ratio: float, strongest: str) -> list[str]:
    notes = []
    cascade: Mapping[str, Any] = report["cascade"] or {}
    if ratio > 1 and cascade:
        reached = float(cascade.get("escalation_rate", 0.0))
        notes.append(
            f"The operating point costs {ratio:.2f}x {strongest} alone: {reached:.0%} of the items escalated, "
            "and each paid the tiers before the one that answered as well; a cascade saves only when its "
            "cheaper tiers settle enough items to pay for being asked on all of them."
        )
    cut = report["metrics"].get("cost_reduction_at_matched_em")
    if cut is not None and 1 - cut > ratio + 0.05:
        notes.append(
            f"'cost cut @ strong EM' ({cut:+.0%}) describes the swept curve: its cheapest threshold setting whose "
            f"EM reaches {strongest}'s costs {1 - cut:.2f}x; the operating point is cheaper ({ratio:.2f}x) "
            "because it runs at its own EM, given in the first line."
        )
    elif cut is not None and 1 - cut < ratio - 0.05:
        notes.append(
            f"The swept curve reaches {strongest}'s EM at {1 - cut:.2f}x its cost, below the operating point's "
            f"{ratio:.2f}x: a threshold picked on these very items does better here than the one that runs, "
            "which was chosen without them."
        )
    return notes
