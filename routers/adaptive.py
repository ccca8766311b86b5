"""The `adaptive` router: per-tier thresholds moved to keep EM at a target, judged by the strongest
tier's answer (audits and escalations in the run store) and by feedback, each API key's weighed by
its trust and capped (`cascade.learning.judged`, `cascade.learning.trust`).

It is a `ThresholdRouter` whose `threshold_for` reads learned state, and an `OnlineLearner`
(`cascade.learning.online`): `advance` learns the runs judged after saved cursors on a copy of the
model, `adopt` swaps a learned state in. `cascade serve` runs it in the background while serving;
`learn(store)` catches up at once, saving state and cursor together after each page, so a process
killed mid-stream resumes where its last save left off. It learns only from runs of its own config
(and, in an experiment, its own variant), and keeps its state under a key naming both. State is
loaded at build time, so a restart resumes. The `bandit` router (`routers.bandit`) shares all this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from cascade.config.thresholds import Unit
from cascade.learning.controller import ControllerSettings, ThresholdController, query_unit
from cascade.learning.judged import Judged
from cascade.learning.online import State
from cascade.learning.trust import KeyTrust, TrustPolicy
from cascade.protocols import DecideContext
from cascade.registry import BuildContext, register
from cascade.types import Decision
from routers._learner import Learner, Placement, StoreConfig, placement, run_evidence, start


class AdaptiveConfig(StoreConfig):
    """Controller settings (see `cascade.learning.controller`); `bounds` = [low, high] for thresholds."""

    target_em: Unit
    window: int = Field(default=100, ge=1, le=10_000)  # bounds the saved evidence
    margin: float = Field(default=0.0, ge=-0.5, le=0.5)
    step: float = Field(default=0.05, ge=0.0)
    min_evidence: int = Field(default=50, ge=0)
    bounds: tuple[Unit, float] = (0.0, 1.0)
    initial: float | None = None
    explore: Unit = 0.0  # share of queries (stable hash) whose cheap answer is accepted whatever its confidence
    impute_neighbours: int = Field(default=0, ge=0)
    caution: float | None = Field(default=None, ge=0.0, le=5.0)  # see `settings`

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveConfig:
        if self.bounds[0] > self.bounds[1]:
            raise ValueError("bounds must be [low, high] with low <= high")
        return self

    def settings(self, audited: bool = False) -> ControllerSettings:
        """`caution`: plan on the estimated EM lowered by this many standard errors; by default 1 in a
        cascade with `audit:` (a few audits stand for many answers, and the cheapest threshold a noisy
        estimate allows is the one luck flatters most), else 0."""
        low, high = self.bounds
        trust = TrustPolicy(key_share=self.key_share, trust_keys=self.trust_keys)
        caution = self.caution if self.caution is not None else float(audited)
        return ControllerSettings(
            self.target_em, self.window, self.margin, self.step, self.min_evidence, low, high, self.initial,
            self.impute_neighbours, trust, {"escalations", "audits"} <= set(self.learn_from), caution,
        )  # fmt: skip


class AdaptiveRouter(Learner[ThresholdController]):
    """Per-tier thresholds from a `ThresholdController` that replays labelled runs under other thresholds."""

    def __init__(
        self,
        config: AdaptiveConfig,
        gates: Sequence[str],
        final_tier: str,
        state: dict[str, Any] | None = None,
        placement: Placement | None = None,
        *,
        audited: bool = False,
    ) -> None:
        super().__init__(config.settings().start, placement or Placement("router/adaptive", evidence=config))
        self.final_tier, self.settings, self.gates = final_tier, config.settings(audited), list(gates)
        self.explore = config.explore
        self.controller = self.load_model(None)
        if state is not None:
            self.adopt(state)
        self._unit = 0.0

    def decide(self, ctx: DecideContext) -> Decision:
        """`explore` accepts a stable share of queries at their first gate whatever the confidence, so
        thumbs (which judge only the answer given) keep telling how right low-confidence answers are."""
        self._unit = query_unit(ctx.query)
        exploring = self.explore and ctx.tier_index == 0 and query_unit(f"explore\x00{ctx.query}") < self.explore
        if exploring and ctx.answer is not None:
            return Decision("accept", "exploring: the cheap answer is accepted to learn from its feedback", 0.0)
        return super().decide(ctx)

    def threshold_for(self, tier_name: str) -> float:
        return self.controller.threshold(tier_name, self._unit)

    def load_model(self, state: State | None, trust: KeyTrust | None = None) -> ThresholdController:
        if state is None:
            return ThresholdController(self.settings, self.gates, trust)
        return ThresholdController.from_state(self.settings, state, trust)

    def learn_one(self, model: ThresholdController, item: Judged, trust: KeyTrust) -> None:
        evidence = run_evidence(item, [*self.gates, self.final_tier])
        if evidence is None:
            return
        if item.judge is None:
            model.observe_reference(evidence, run_id=item.run.run_id)
        else:
            model.observe(evidence, run_id=item.run.run_id, judge=item.judge)

    def dump_model(self, model: ThresholdController) -> dict[str, Any]:
        return model.to_state()

    def serve(self, model: ThresholdController) -> None:
        self.controller = model


@register("router", "adaptive", AdaptiveConfig)
def build_adaptive(config: AdaptiveConfig, ctx: BuildContext) -> AdaptiveRouter:
    gates = [tier.name for tier in ctx.config.tiers[:-1]]
    where, audited = placement(config, ctx, "adaptive"), ctx.config.audit is not None
    router = AdaptiveRouter(config, gates, ctx.config.tiers[-1].name, placement=where, audited=audited)
    start(router, config, ctx)
    return router
