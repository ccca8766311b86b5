"""A tier's bar: the `threshold` router's settings, typed so tuning can rewrite them, and the one default.

The rule that applies them (`accepts`) is `cascade.decision.acceptance`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_THRESHOLD = 0.5
"""The bar of a tier no config sets: the `threshold` router's default, and the cascade's default router."""

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A confidence or a threshold in [0, 1]."""


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
