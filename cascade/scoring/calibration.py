"""How well a scorer's probabilities hold up: reliability bins, Brier score, log loss, AUROC.

Computed on predictions for items the scorer did not train on (cross-fitted or a held-apart split);
a report on the training items themselves would flatter it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def calibration_report(
    probs: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """Brier, log loss, AUROC (None with one class only), expected calibration error and equal-width
    reliability bins (`n`, mean predicted, observed share correct) of P(correct) against outcomes."""
    p = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    y = np.asarray(labels, dtype=float)
    if p.shape != y.shape or not p.size:
        raise ValueError("calibration_report needs one label per probability, at least one")
    q = np.clip(p, 1e-6, 1 - 1e-6)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_p, observed = float(p[mask].mean()), float(y[mask].mean())
            ece += mask.sum() / p.size * abs(mean_p - observed)
            table.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(mask.sum()),
                    "mean_predicted": mean_p,
                    "observed": observed,
                }
            )
    return {
        "n": int(p.size),
        "positives": int(y.sum()),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))),
        "auroc": auroc(p, y),
        "ece": float(ece),
        "bins": table,
    }


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve: P(a random correct answer scores above a random wrong one), ties half."""
    from scipy.stats import rankdata

    y = labels.astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return None
    ranks = rankdata(scores)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))
