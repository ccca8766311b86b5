"""What a token budget is predicted from: the query's shape and the attempts of the tiers before.

Only signals that carry across question types: how long the query is and how many quantities it
holds (more steps to write), its detected task, and how the lower tiers fared on it (a tier that
hesitated or ran out of tokens points to a longer answer). The same function builds the features
for training (from the store or recorded runs) and at run time, so they cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from cascade.io.features import TASKS, is_word_problem, query_features
from cascade.types import Attempt

QUERY = ("log_words", "log_numbers", "log_digits", "log_sentences", "has_math", "word_problem")
PREVIOUS = ("prev_called", "prev_confidence", "prev_unscored", "prev_truncated", "prev_log_tokens")
FEATURES = (*QUERY, *(f"task={task}" for task in TASKS), *PREVIOUS)
"""The feature names, in the order a model's coefficients follow."""


def budget_features(query: str, previous: Sequence[Attempt] = ()) -> dict[str, float]:
    """The features of one query, after the tiers in `previous` were called (oldest first)."""
    found = query_features(query)
    out = {
        "log_words": _log(found["words"]),
        "log_numbers": _log(found["numbers"]),
        "log_digits": _log(found["digits"]),
        "log_sentences": _log(found["sentences"]),
        "has_math": float(bool(found["has_math"])),
        "word_problem": float(is_word_problem(query)),
    }
    out |= {f"task={task}": float(found["task"] == task) for task in TASKS}
    return out | _previous(previous)


def _previous(previous: Sequence[Attempt]) -> dict[str, float]:
    """The last lower tier that answered: whether one did, how sure it was, whether it was cut off."""
    last = next((a for a in reversed(previous) if a.decision != "failed"), None)
    if last is None:
        return dict.fromkeys(PREVIOUS, 0.0)
    truncated = last.budget is not None and last.budget.truncated
    return {
        "prev_called": 1.0,
        "prev_confidence": float(last.confidence or 0.0),
        "prev_unscored": float(last.confidence is None),
        "prev_truncated": float(truncated),
        "prev_log_tokens": _log(last.completion_tokens),
    }


def matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str] = FEATURES) -> np.ndarray:
    """Rows of features as a matrix in `names` order (a missing feature is 0)."""
    return np.array([[float(row.get(name, 0.0)) for name in names] for row in rows], dtype=float).reshape(
        len(rows), len(names)
    )


def _log(value: object) -> float:
    return math.log1p(max(0.0, float(value))) if isinstance(value, int | float) else 0.0
