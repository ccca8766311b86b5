"""A pre-router that learns from the run store whether the cheap tier can be trusted with a query.

It starts at tier 0 unless the online predictor says P(tier 0 correct) < `skip_below`, then at
tier 1; each tier's token budget comes from the budget model once it has seen enough answers.
It is an `OnlineLearner` (`cascade.learning.online`): `advance` learns the labelled runs and answers
stored since the saved cursors on a copy of the model, `adopt` swaps a learned state in, so
`cascade serve` keeps it learning while serving; `learn(store)` / `sync(store)` catch up at once.
Like the learning routers, it learns only from runs of its own config (and experiment variant).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cascade.config.schema import TierConfig
from cascade.io.features import query_features
from cascade.learning.online import Advance, Scope, State, catch_up
from cascade.learning.predictor import CheapTierPredictor, OnlineLogistic, TokenBudgets
from cascade.registry import BuildContext, register
from cascade.store import LabelledRun, RunRecord, Store
from cascade.store.base import is_correct
from cascade.types import RoutePlan


class LearnedConfig(BaseModel):
    """`explore` starts that share of would-be-skipped queries at tier 0 anyway (chosen by a stable
    hash of the query), so the cheap tier keeps producing labels where the model says it fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str | None = None
    state_key: str | None = Field(default=None, min_length=1)  # default: pre_router/learned/<config name>
    skip_below: float = Field(default=0.4, ge=0.0, le=1.0)
    min_examples: int = Field(default=50, ge=0)
    explore: float = Field(default=0.0, ge=0.0, le=1.0)
    budget_quantile: float = Field(default=0.95, gt=0.0, le=1.0)
    budget_margin: float = Field(default=1.25, ge=1.0)
    budget_min_samples: int = Field(default=20, ge=1)
    max_token_scale: float = Field(default=1.0, ge=1.0)
    learn_on_build: bool = True


class LearnedPreRouter:
    """Plans from `CheapTierPredictor`; `cheap_tier` is the tier whose correctness it predicts."""

    def __init__(
        self,
        config: LearnedConfig,
        cheap_tier: str,
        predictor: CheapTierPredictor | None = None,
        *,
        state_key: str = "pre_router/learned",
        store_dsn: str | None = None,
        scope: Scope | None = None,
    ) -> None:
        self.config = config
        self.cheap_tier = cheap_tier
        self.predictor = predictor or self.fresh_predictor()
        self.labels_seq = 0
        self.runs_seq = 0
        self._state_key, self._store_dsn, self.scope = state_key, store_dsn, scope or Scope()

    @property
    def state_key(self) -> str:
        return self._state_key

    @property
    def store_dsn(self) -> str | None:
        return self._store_dsn

    def fresh_predictor(self) -> CheapTierPredictor:
        budgets = TokenBudgets(
            self.config.budget_quantile, self.config.budget_margin, min_samples=self.config.budget_min_samples
        )
        return CheapTierPredictor(OnlineLogistic(), budgets)

    def plan(self, query: str, tiers: list[TierConfig]) -> RoutePlan:
        features = dict(query_features(query))
        budgets = {tier.name: self._budget(tier, query) for tier in tiers}
        n = self.predictor.n_examples
        if n < self.config.min_examples or len(tiers) < 2:
            reason = f"learning ({n}/{self.config.min_examples} labelled examples) → start at {tiers[0].name!r}"
            return RoutePlan(0, budgets, reason, features)
        p = self.predictor.predict_proba(query)
        features["p_cheap_correct"] = round(p, 4)
        start, reason = self._start(query, p, tiers)
        return RoutePlan(start, budgets, reason, features)

    def _start(self, query: str, p: float, tiers: list[TierConfig]) -> tuple[int, str]:
        said = f"P({tiers[0].name} correct)={p:.2f}"
        if p >= self.config.skip_below:
            return 0, f"{said} ≥ {self.config.skip_below:g} → start at {tiers[0].name!r}"
        if _unit(query) < self.config.explore:
            return 0, f"{said} < {self.config.skip_below:g}, exploring → start at {tiers[0].name!r}"
        return 1, f"{said} < {self.config.skip_below:g} → start at {tiers[1].name!r}"

    def _budget(self, tier: TierConfig, query: str) -> int:
        learned = self.predictor.budget(tier.name, query)
        cap = round(tier.max_tokens * self.config.max_token_scale)
        return tier.max_tokens if learned is None else max(1, min(learned, cap))

    def advance(self, state: State | None, store: Store, limit: int) -> Advance:
        """Learn at most `limit` labels and `limit` answers stored after the state's cursors, on a copy."""
        learner = LearnedPreRouter(self.config, self.cheap_tier, state_key=self.state_key, scope=self.scope)
        if state is not None:
            learner.adopt(state)
        labels = store.labelled_runs(
            since_seq=learner.labels_seq, limit=limit, config_name=self.scope.config_name, variant=self.scope.variant
        )
        for item in labels:
            learner._learn_label(item)
        runs = [
            run
            for run in store.runs(since_id=learner.runs_seq, limit=limit, config_name=self.scope.config_name)
            if self.scope.variant is None or run.variant == self.scope.variant
        ]
        for run in runs:
            learner._observe_tokens(run)
            learner.runs_seq = run.seq
        caught_up = len(labels) < limit and len(runs) < limit
        return Advance(learner.to_state(), len(labels) + len(runs), caught_up)

    def adopt(self, state: State) -> None:
        self.predictor = CheapTierPredictor.from_state(state["predictor"])
        self.labels_seq, self.runs_seq = int(state["labels_seq"]), int(state["runs_seq"])

    def learn(self, store: Store) -> int:
        """Learn from labelled runs and answers stored since the saved cursors; returns how many it read."""
        return catch_up(self, store)

    def _learn_label(self, item: LabelledRun) -> None:
        self.labels_seq = item.seq
        label = cheap_label(item, self.cheap_tier)
        if label is not None:
            self.predictor.update(item.run.query, label)

    def _observe_tokens(self, run: RunRecord) -> None:
        for attempt in run.attempts:
            if attempt.answer is not None and attempt.decision != "failed":
                self.predictor.observe_tokens(attempt.tier, run.query, attempt.completion_tokens)

    def to_state(self) -> dict[str, Any]:
        return {"predictor": self.predictor.to_state(), "labels_seq": self.labels_seq, "runs_seq": self.runs_seq}

    def load(self, store: Store) -> bool:
        """Restore the model and cursors saved under `state_key`; False when nothing was saved yet."""
        state = store.get_state(self.state_key)
        if state is None:
            return False
        self.adopt(state)
        return True

    def save(self, store: Store) -> None:
        store.put_state(self.state_key, self.to_state())

    def sync(self, store: Store) -> int:
        """Load, learn what is new, save: what a periodic job (or build) runs."""
        return self.learn(store)


def cheap_label(item: LabelledRun, cheap_tier: str) -> bool | None:
    """Whether the cheap tier's answer was right, or None when this feedback cannot tell.

    A gold label or correction is checked against the cheap attempt's own answer; a thumb only
    speaks for the final answer, so it counts when the cheap tier gave that same answer.
    """
    attempt = next((a for a in item.run.attempts if a.tier == cheap_tier), None)
    if attempt is None or attempt.answer is None:
        return None
    kind, value = item.feedback.kind, item.feedback.value
    if kind in ("label", "correction") and value is not None:
        return is_correct(kind, value, attempt.answer)
    return item.correct if attempt.answer == item.run.answer else None


def _unit(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a key (sha256, identical across processes)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


@register("pre_router", "learned", LearnedConfig)
def build_learned(config: LearnedConfig, ctx: BuildContext) -> LearnedPreRouter:
    scope = Scope(ctx.config.name, ctx.variant)
    key = scope.key(config.state_key or f"pre_router/learned/{ctx.config.name}")
    store_dsn = ctx.store_access().address(config.store)
    router = LearnedPreRouter(config, ctx.config.tiers[0].name, state_key=key, store_dsn=store_dsn, scope=scope)
    with ctx.store_access().open(config.store) as store:
        router.sync(store) if config.learn_on_build and ctx.learn_on_build else router.load(store)
    return router
