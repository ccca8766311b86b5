"""The acceptance rule, written once for the live router and every offline replay.

A tier's answer is accepted when its confidence reaches the tier's threshold (ties accept); a tier
that gave no usable answer is never accepted, whatever the threshold. Live, the `threshold` router
(and the learning routers built on it) decides with `accepts`; offline, replays, tuning and the
learners' counterfactuals take the same function over arrays, where no answer is NaN (or any value
below every threshold), and `stopping_tier` turns a row of gates into the tier that answers.

The threshold settings themselves (`threshold`, `per_tier`, `DEFAULT_THRESHOLD`) are config:
`cascade.config.thresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np


@overload
def accepts(confidence: float | None, threshold: float) -> bool: ...
@overload
def accepts(confidence: np.ndarray, threshold: float | np.ndarray) -> np.ndarray: ...


def accepts(confidence: float | np.ndarray | None, threshold: float | np.ndarray) -> bool | np.ndarray:
    """Whether an answer of this confidence passes `threshold` (None or NaN: no usable answer, never).

    Arrays broadcast as numpy does: one threshold for every item, or one per gate.
    """
    if confidence is None:
        return False
    if isinstance(confidence, np.ndarray):
        return np.asarray(np.greater_equal(confidence, threshold))
    return bool(confidence >= threshold)


def stopping_tier(confidence: np.ndarray, thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Per item (row), the first gate (column) whose answer is accepted, else the number of gates: the
    tier that answers when the final tier (after the gates) accepts whatever it says."""
    n, gates = confidence.shape
    if not gates:
        return np.zeros(n, dtype=int)
    accept = accepts(confidence, np.broadcast_to(np.asarray(thresholds, dtype=float), (gates,)))
    return np.asarray(np.where(accept.any(axis=1), accept.argmax(axis=1), gates))
