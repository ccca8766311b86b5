"""The acceptance rule, written once for the live router and every offline replay.

A tier's answer is accepted when its confidence reaches the tier's threshold (ties accept); a tier
that gave no usable answer is never accepted, whatever the threshold. Live, the `threshold` router
(and the learning routers built on it) decides with `accepts`; offline, replays, tuning and the
learners' counterfactuals take the same function over arrays, where no answer is NaN (or any value
below every threshold), and `stopping_tier` turns a row of gates into the tier that answers.

The threshold settings themselves (`threshold`, `per_tier`) are the `threshold` router's config;
the model lives here so tuning can rewrite them typed, and `DEFAULT_THRESHOLD` is the one default.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_THRESHOLD = 0.5
"""The bar of a tier no config sets: the `threshold` router's default, and the cascade's default router."""

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A confidence or a threshold in [0, 1]."""


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


class ThresholdSettings(BaseModel):
    """`threshold` for every tier unless `per_tier` names the tier: the `threshold` router's config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: Unit = DEFAULT_THRESHOLD
    per_tier: dict[str, Unit] = Field(default_factory=dict)

    def for_tier(self, tier_name: str) -> float:
        return self.per_tier.get(tier_name, self.threshold)

    def tuned(self, thresholds: Mapping[str, float], tiers: Collection[str]) -> ThresholdSettings:
        """These settings with `thresholds` set per tier, keeping only entries of `tiers`."""
        per_tier = {**self.per_tier, **thresholds}
        return self.model_copy(update={"per_tier": {name: v for name, v in per_tier.items() if name in tiers}})
