"""A pre-router that learns from the run store whether the cheap tier can be trusted with a query.

It starts at tier 0 unless the online predictor says P(tier 0 correct) < `skip_below`, then at
tier 1; each tier's token budget comes from the budget model once it has seen enough answers.
It is an `OnlineLearner` (`cascade.learning.online`): `advance` learns the judged runs and answers
stored since the saved cursors on a copy of the model, `adopt` swaps a learned state in, so
`cascade serve` keeps it learning while serving; `learn(store)` / `sync(store)` catch up at once.
Like the learning routers, it learns only from runs of its own config (and experiment variant).

Its labels are whether the cheap tier's answer was right: by the strongest tier's answer (an
escalation's or an audit's, an audited run counting as the runs it stands for, at most
`MAX_WEIGHT`) and by feedback, each API key's at the weight it has earned within its share
(`cascade.learning.judged`, `cascade.learning.trust`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from cascade.config.schema import TierConfig
from cascade.io.features import query_features
from cascade.learning.judged import Cursors, EvidenceConfig, Judged, read_step
from cascade.learning.online import Advance, Scope, State, catch_up
from cascade.learning.predictor import CheapTierPredictor, OnlineLogistic, TokenBudgets
from cascade.learning.trust import KeyTrust
from cascade.registry import BuildContext, register
from cascade.store import RunRecord, Store
from cascade.types import RoutePlan

MAX_WEIGHT = 10.0  # an audited run's weight is trimmed here: one SGD step should not be worth more


class LearnedConfig(EvidenceConfig):
    """`explore` starts that share of would-be-skipped queries at tier 0 anyway (chosen by a stable
    hash of the query), so the cheap tier keeps producing labels where the model says it fails.
    `learn_from`, `key_share`, `trust_keys`: see `cascade.learning.judged` and `cascade.learning.trust`."""

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
        self.trust = KeyTrust(config)
        self.labels_seq = 0
        self.references_seq = 0
        self.runs_seq = 0
        self._state_key, self._store_dsn, self.scope = state_key, store_dsn, scope or Scope()

    @property
    def state_key(self) -> str:
        return self._state_key

    @property
    def store_dsn(self) -> str | None:
        return self._store_dsn

    @property
    def evidence(self) -> EvidenceConfig:
        """What it learns from and how it weighs API keys' feedback."""
        return self.config

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
        """Learn at most `limit` of each kind of judgement and `limit` answers stored after the state's
        cursors, on a copy."""
        learner = LearnedPreRouter(self.config, self.cheap_tier, state_key=self.state_key, scope=self.scope)
        if state is not None:
            learner.adopt(state)
        cursors = Cursors(learner.labels_seq, learner.references_seq)
        step = read_step(store, self.scope, cursors, limit, self.config.learn_from)
        for key, agreed in step.checks:
            learner.trust.check(key, agreed)
        for item in step.references:
            learner.trust.add_reference()
            learner._learn_label(item, min(item.weight, MAX_WEIGHT))
        for item in step.feedback:
            learner._learn_label(item, learner.trust.admit(item.judge or ""))
        learner.labels_seq, learner.references_seq = step.cursors.feedback, step.cursors.references
        runs = [
            run
            for run in store.runs(since_id=learner.runs_seq, limit=limit, config_name=self.scope.config_name)
            if self.scope.variant is None or run.variant == self.scope.variant
        ]
        for run in runs:
            learner._observe_tokens(run)
            learner.runs_seq = run.seq
        caught_up = step.caught_up and len(runs) < limit
        return Advance(learner.to_state(), step.consumed + len(runs), caught_up)

    def adopt(self, state: State) -> None:
        self.predictor = CheapTierPredictor.from_state(state["predictor"])
        self.trust = KeyTrust.from_state(state.get("trust"), self.config)
        self.labels_seq, self.runs_seq = int(state["labels_seq"]), int(state["runs_seq"])
        self.references_seq = int(state.get("references_seq", 0))

    def learn(self, store: Store) -> int:
        """Learn from labelled runs and answers stored since the saved cursors; returns how many it read."""
        return catch_up(self, store)

    def _learn_label(self, item: Judged, weight: float) -> None:
        label = cheap_label(item, self.cheap_tier)
        if label is not None and weight > 0.0:
            self.predictor.update(item.run.query, label, weight)

    def _observe_tokens(self, run: RunRecord) -> None:
        for attempt in run.attempts:
            if attempt.answer is not None and attempt.decision != "failed":
                self.predictor.observe_tokens(attempt.tier, run.query, attempt.completion_tokens)

    def to_state(self) -> dict[str, Any]:
        return {
            "predictor": self.predictor.to_state(),
            "trust": self.trust.to_state(),
            "labels_seq": self.labels_seq,
            "references_seq": self.references_seq,
            "runs_seq": self.runs_seq,
        }

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


def cheap_label(item: Judged, cheap_tier: str) -> float | None:
    """Whether the cheap tier's answer was right (a judge's belief in between), or None when no judge
    could tell: a thumb speaks only for the final answer, so it counts when the cheap tier gave it."""
    index = next((i for i, a in enumerate(item.attempts) if a.tier == cheap_tier), None)
    if index is None or item.attempts[index].answer is None:
        return None
    return item.correct[index]


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
