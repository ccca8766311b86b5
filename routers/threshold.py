"""The static threshold router: accept an answer once its confidence reaches the tier's threshold.

The rule and its default are the core's (`cascade.decision.acceptance`), shared with offline replays.
Adaptive and learned routers reuse `decide` and only override `threshold_for`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cascade.config.thresholds import DEFAULT_THRESHOLD, ThresholdSettings, Unit
from cascade.decision.acceptance import accepts
from cascade.protocols import DecideContext
from cascade.registry import BuildContext, register
from cascade.types import Decision
from routers._tiers import check_tier_names

ThresholdConfig = ThresholdSettings
"""`threshold` for every tier unless `per_tier` names the tier."""
__all__ = ["ThresholdConfig", "ThresholdRouter", "Unit", "build_threshold"]


class ThresholdRouter:
    """Escalates exactly when confidence < threshold; the engine, not the router, knows the last tier."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, per_tier: Mapping[str, float] | None = None) -> None:
        self.threshold = threshold
        self.per_tier = dict(per_tier or {})

    def threshold_for(self, tier_name: str) -> float:
        """The bar a tier's answer must reach; the one hook subclasses override."""
        return self.per_tier.get(tier_name, self.threshold)

    def decide(self, ctx: DecideContext) -> Decision:
        threshold = self.threshold_for(ctx.tier.name)
        if ctx.answer is None:
            return Decision("escalate", "no usable answer", threshold)
        confidence = ctx.verdict.confidence
        if accepts(confidence, threshold):
            return Decision("accept", _compare(confidence, ">=", threshold), threshold)
        return Decision("escalate", _compare(confidence, "<", threshold), threshold)


def _compare(confidence: float, sign: str, threshold: float) -> str:
    shown_conf, shown_threshold = _distinct(confidence, threshold)
    return f"confidence {shown_conf} {sign} threshold {shown_threshold}"


def _distinct(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with 2 decimals, more if needed so unequal values never print equal."""
    for digits in range(2, 7):
        left, right = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if left != right or a == b:
            break
    return left, right


@register("router", "threshold", ThresholdConfig)
def build_threshold(config: ThresholdConfig, ctx: BuildContext) -> ThresholdRouter:
    check_tier_names(ctx, ((name, ("router", "per_tier", name)) for name in config.per_tier))
    return ThresholdRouter(config.threshold, config.per_tier)
