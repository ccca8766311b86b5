"""Routers that learn their thresholds from feedback in the run store: `adaptive` and `bandit`.

Both are `ThresholdRouter`s whose `threshold_for` reads learned state, and both are
`OnlineLearner`s (`cascade.learning.online`): `advance` learns the labelled runs after a saved
cursor on a copy of the model, `adopt` swaps a learned state in. `cascade serve` runs them in the
background while serving; `learn(store)` catches up at once, saving state and cursor together
after each page, so a process killed mid-stream resumes where its last save left off. A router
learns only from runs of its own config (and, in an experiment, its own variant), and keeps its
state under a key naming both. State is loaded at build time, so a restart resumes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from cascade.features import query_features
from cascade.learning.bandit import ThompsonBandit, reward
from cascade.learning.controller import ControllerSettings, RunEvidence, ThresholdController, query_unit
from cascade.learning.online import State
from cascade.protocols import DecideContext
from cascade.registry import BuildContext, register
from cascade.store import LabelledRun
from cascade.store.base import is_correct
from cascade.types import Decision
from routers._learner import Learner, Placement, StoreConfig, load_state, placement, sync
from routers.threshold import Unit

_REMEMBERED = 1024  # queries whose arm the bandit router remembers across tiers
_LENGTH_BUCKETS = (50, 100, 200, 400)
ContextKind = Literal["query", "confidence", "query+confidence"]


class AdaptiveConfig(StoreConfig):
    """Controller settings (see `cascade.learning.controller`); `bounds` = [low, high] for thresholds."""

    target_em: Unit
    window: int = Field(default=100, ge=1)
    margin: float = Field(default=0.0, ge=-0.5, le=0.5)
    step: float = Field(default=0.05, ge=0.0)
    min_evidence: int = Field(default=50, ge=0)
    bounds: tuple[Unit, float] = (0.0, 1.0)
    initial: float | None = None
    explore: Unit = 0.0  # share of queries (stable hash) whose cheap answer is accepted whatever its confidence
    impute_neighbours: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveConfig:
        if self.bounds[0] > self.bounds[1]:
            raise ValueError("bounds must be [low, high] with low <= high")
        return self

    def settings(self) -> ControllerSettings:
        low, high = self.bounds
        return ControllerSettings(
            self.target_em, self.window, self.margin, self.step, self.min_evidence, low, high, self.initial,
            self.impute_neighbours,
        )  # fmt: skip


class BanditConfig(StoreConfig):
    """Arms are threshold levels (above 1 = always escalate); reward = correct - lam * tokens."""

    arms: list[float] = Field(default_factory=lambda: [0.0, 0.5, 0.8, 0.95, 0.99, 1.01], min_length=1)
    lam: float = Field(default=5e-4, ge=0.0)
    prior_n: float = Field(default=20.0, gt=0.0)
    max_explore: Unit = 0.1
    seed: int = 0
    context: ContextKind = "query+confidence"


class AdaptiveRouter(Learner[ThresholdController]):
    """Per-tier thresholds from a `ThresholdController` that replays labelled runs under other thresholds."""

    def __init__(
        self,
        config: AdaptiveConfig,
        gates: Sequence[str],
        final_tier: str,
        state: dict[str, Any] | None = None,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(config.settings().start, placement or Placement("router/adaptive"))
        self.final_tier, self.settings, self.gates = final_tier, config.settings(), list(gates)
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

    def load_model(self, state: State | None) -> ThresholdController:
        if state is None:
            return ThresholdController(self.settings, self.gates)
        return ThresholdController.from_state(self.settings, state)

    def learn_one(self, model: ThresholdController, item: LabelledRun) -> None:
        model.observe(run_evidence(item, self.final_tier))

    def dump_model(self, model: ThresholdController) -> dict[str, Any]:
        return model.to_state()

    def serve(self, model: ThresholdController) -> None:
        self.controller = model


class BanditRouter(Learner[ThompsonBandit]):
    """Plays one arm (a threshold for every gate) per query, chosen by a contextual Thompson bandit."""

    def __init__(
        self,
        config: BanditConfig,
        final_tier: str,
        state: dict[str, Any] | None = None,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(config.arms[0], placement or Placement("router/bandit"))
        self.config, self.final_tier = config, final_tier
        self.bandit = self.load_model(None)
        if state is not None:
            self.adopt(state)
        self._arms: OrderedDict[str, int] = OrderedDict()
        self._current = 0

    def decide(self, ctx: DecideContext) -> Decision:
        self._current = self.arm_for(ctx.query, ctx.verdict.confidence if ctx.answer is not None else None, ctx.tag)
        return super().decide(ctx)

    def threshold_for(self, tier_name: str) -> float:
        return self.config.arms[self._current]

    def arm_for(self, query: str, confidence: float | None = None, tag: str | None = None) -> int:
        """The query's arm: drawn at its first gate (whose confidence is part of the context), then
        reused at every later tier of the same cascade run."""
        key = hashlib.sha256(f"{tag or ''}\x00{query}".encode()).hexdigest()
        if key not in self._arms:
            self._arms[key] = self.bandit.choose(
                bandit_context(query, confidence, self.config.arms, self.config.context, tag)
            )
            if len(self._arms) > _REMEMBERED:
                self._arms.popitem(last=False)
        return self._arms[key]

    def load_model(self, state: State | None) -> ThompsonBandit:
        opts: dict[str, Any] = {
            "prior_n": self.config.prior_n, "max_explore": self.config.max_explore, "seed": self.config.seed,
        }  # fmt: skip
        if state is None:
            return ThompsonBandit(len(self.config.arms), **opts)
        return ThompsonBandit.from_state(state, **opts)

    def learn_one(self, model: ThompsonBandit, item: LabelledRun) -> None:
        first = item.run.attempts[0] if item.run.attempts else {}
        confidence = first.get("confidence") if first.get("answer") is not None else None
        tag = item.run.features.get("tag")
        context = bandit_context(item.run.query, confidence, self.config.arms, self.config.context, tag)
        for arm, value in arm_rewards(item, self.config.arms, self.config.lam, self.final_tier).items():
            model.update(context, arm, value)

    def dump_model(self, model: ThompsonBandit) -> dict[str, Any]:
        """The learned statistics, with the decision counters of the bandit now serving (they move as it plays)."""
        state = model.to_state()
        serving = getattr(self, "bandit", None)
        if serving is not None:
            state["decisions"] = max(state["decisions"], serving.decisions)
            state["explored"] = max(state["explored"], serving.explored)
        return state

    def serve(self, model: ThompsonBandit) -> None:
        """Swap in new statistics; the counters never go back (they seed draws and bound exploration)."""
        serving = getattr(self, "bandit", None)
        if serving is not None:
            model.decisions = max(model.decisions, serving.decisions)
            model.explored = max(model.explored, serving.explored)
        self.bandit = model


def query_context(query: str) -> str:
    """A coarse, deterministic context from the query alone: its task and a word-count bucket."""
    features = query_features(query)
    bucket = sum(int(features["words"]) >= edge for edge in _LENGTH_BUCKETS)
    return f"{features['task']}:{bucket}"


def confidence_bucket(confidence: float | None, arms: Sequence[float]) -> int:
    """How many arms would accept an answer of this confidence (-1: no usable answer).

    Buckets split at the arm levels, so inside one bucket every arm either always accepts or
    always escalates: the bandit learns, per bucket, which of the two pays.
    """
    return -1 if confidence is None else sum(float(confidence) >= level for level in arms)


def bandit_context(
    query: str, confidence: float | None, arms: Sequence[float], kind: ContextKind, tag: str | None = None
) -> str:
    """The bandit's context: the query's task and length, the first gate's confidence bucket, or both;
    led by the caller's tag when the run has one (`Cascade.arun(query, tag=...)`).

    The arm is drawn once the first tier has answered, so its confidence is known at decision time.
    """
    parts = [f"tag={tag}"] if tag else []
    parts += [query_context(query)] if kind != "confidence" else []
    if kind != "query":
        parts.append(f"c{confidence_bucket(confidence, arms)}")
    return "|".join(parts)


def run_evidence(item: LabelledRun, final_tier: str) -> RunEvidence:
    """A labelled run as the controller's counterfactual evidence (see `cascade.learning.controller`)."""
    attempts = item.run.attempts
    if not attempts:
        return RunEvidence((None,), (item.correct,), (float(item.run.total_tokens),), reached_end=True)
    confidence = tuple(
        None if a.get("answer") is None or a.get("confidence") is None else float(a["confidence"]) for a in attempts
    )
    correct = (*(_attempt_correct(item, a) for a in attempts[:-1]), item.correct)
    reached_end = attempts[-1].get("tier") == final_tier
    return RunEvidence(confidence, correct, tuple(_cumulative_tokens(attempts)), reached_end)


def arm_rewards(item: LabelledRun, arms: Sequence[float], lam: float, final_tier: str) -> dict[int, float]:
    """Every arm's reward that this labelled run determines, not only the arm played.

    An arm stops at the first attempt it would accept (an answer with confidence >= its level): that
    answer and the tokens spent up to it give its reward when the label says whether that answer was
    right. An arm that accepts no attempt shares the run's outcome if the run reached the final tier,
    and is unknown otherwise (it would have gone further than the run did).
    """
    attempts = item.run.attempts
    if not attempts:
        return {}
    spent = _cumulative_tokens(attempts)
    reached_end = attempts[-1].get("tier") == final_tier
    gates = attempts[:-1] if reached_end else attempts
    out: dict[int, float] = {}
    for arm, level in enumerate(arms):
        stop = next((i for i, attempt in enumerate(gates) if _accepts(attempt, level)), None)
        if stop is None:
            if reached_end:
                out[arm] = reward(item.correct, spent[-1], lam)
            continue
        correct = _attempt_correct(item, attempts[stop])
        if correct is not None:
            out[arm] = reward(correct, spent[stop], lam)
    return out


def _accepts(attempt: dict[str, Any], level: float) -> bool:
    confidence = attempt.get("confidence")
    return attempt.get("answer") is not None and confidence is not None and float(confidence) >= level


def _cumulative_tokens(attempts: Iterable[dict[str, Any]]) -> list[float]:
    total, out = 0.0, []
    for attempt in attempts:
        total += int(attempt.get("prompt_tokens", 0)) + int(attempt.get("completion_tokens", 0))
        out.append(total)
    return out


def _attempt_correct(item: LabelledRun, attempt: dict[str, Any]) -> bool | None:
    """A gold label or correction judges any attempt; a thumb only the attempt that gave the final answer."""
    kind, value = item.feedback.kind, item.feedback.value
    if kind in ("label", "correction") and value is not None:
        return is_correct(kind, value, attempt.get("answer"))
    return item.correct if attempt.get("answer") == item.run.answer else None


@register("router", "adaptive", AdaptiveConfig)
def build_adaptive(config: AdaptiveConfig, ctx: BuildContext) -> AdaptiveRouter:
    gates = [tier.name for tier in ctx.config.tiers[:-1]]
    where = placement(config, ctx, "adaptive")
    router = AdaptiveRouter(
        config, gates, ctx.config.tiers[-1].name, load_state(where.store_dsn, where.state_key), where
    )
    sync(router, config, ctx)
    return router


@register("router", "bandit", BanditConfig)
def build_bandit(config: BanditConfig, ctx: BuildContext) -> BanditRouter:
    where = placement(config, ctx, "bandit")
    router = BanditRouter(config, ctx.config.tiers[-1].name, load_state(where.store_dsn, where.state_key), where)
    sync(router, config, ctx)
    return router
