"""The `bandit` router: one threshold level (an arm) per query, chosen by a contextual Thompson bandit
with reward EM − λ·tokens, learned from the run store like the `adaptive` router (`routers.adaptive`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from cascade.config.thresholds import Unit
from cascade.decision.acceptance import accepts
from cascade.io.features import query_features
from cascade.learning.judged import Judged
from cascade.learning.online import State
from cascade.learning.run_evidence import RunEvidence
from cascade.learning.thompson import MAX_CONTEXTS, ThompsonBandit, reward
from cascade.learning.trust import KeyTrust
from cascade.protocols import DecideContext
from cascade.registry import BuildContext, register
from cascade.types import Decision
from routers._learner import Learner, Placement, StoreConfig, answered_confidence, placement, run_evidence, start

_REMEMBERED = 1024  # queries whose arm the bandit router remembers across tiers
_LENGTH_BUCKETS = (50, 100, 200, 400)
_TAG_CHARS = 64
ContextKind = Literal["query", "confidence", "query+confidence"]


class BanditConfig(StoreConfig):
    """Arms are threshold levels (above 1 = always escalate); reward = correct - lam * tokens.
    `max_contexts` bounds the contexts (tags × query kinds × confidence buckets) kept in the state."""

    arms: list[float] = Field(default_factory=lambda: [0.0, 0.5, 0.8, 0.95, 0.99, 1.01], min_length=1)
    lam: float = Field(default=5e-4, ge=0.0)
    prior_n: float = Field(default=20.0, gt=0.0)
    max_explore: Unit = 0.1
    seed: int = 0
    context: ContextKind = "query+confidence"
    max_contexts: int = Field(default=MAX_CONTEXTS, ge=1, le=100_000)


class BanditRouter(Learner[ThompsonBandit]):
    """Plays one arm (a threshold for every gate) per query, chosen by a contextual Thompson bandit."""

    def __init__(
        self,
        config: BanditConfig,
        final_tier: str,
        state: dict[str, Any] | None = None,
        placement: Placement | None = None,
        tiers: Sequence[str] = (),
    ) -> None:
        super().__init__(config.arms[0], placement or Placement("router/bandit", evidence=config))
        self.config, self.final_tier = config, final_tier
        self.tiers = [*tiers] if tiers else [final_tier]
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

    def load_model(self, state: State | None, trust: KeyTrust | None = None) -> ThompsonBandit:
        c = self.config
        opts: dict[str, Any] = {
            "prior_n": c.prior_n, "max_explore": c.max_explore, "seed": c.seed, "max_contexts": c.max_contexts,
        }  # fmt: skip
        if state is None:
            return ThompsonBandit(len(self.config.arms), **opts)
        return ThompsonBandit.from_state(state, **opts)

    def learn_one(self, model: ThompsonBandit, item: Judged, trust: KeyTrust) -> None:
        """The rewards the run determines, at full weight from the reference, at the admitted weight of
        a key's feedback (`KeyTrust.admit`: its trust, within its share of the reference seen)."""
        evidence = run_evidence(item, self.tiers)
        weight = 1.0 if item.judge is None else trust.admit(item.judge)
        if evidence is None or weight <= 0.0:
            return
        confidence = answered_confidence(item.run.attempts[0])
        tag = item.run.features.get("tag")
        context = bandit_context(item.run.query, confidence, self.config.arms, self.config.context, tag)
        for arm, value in arm_rewards(evidence, self.config.arms, self.config.lam).items():
            model.update(context, arm, value, weight)

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
    return -1 if confidence is None else sum(accepts(confidence, level) for level in arms)


def bandit_context(
    query: str, confidence: float | None, arms: Sequence[float], kind: ContextKind, tag: str | None = None
) -> str:
    """The bandit's context: the query's task and length, the first gate's confidence bucket, or both;
    led by the caller's tag when the run has one (`Cascade.arun(query, tag=...)`).

    The arm is drawn once the first tier has answered, so its confidence is known at decision time.
    """
    parts = [f"tag={tag_key(tag)}"] if tag else []
    parts += [query_context(query)] if kind != "confidence" else []
    if kind != "query":
        parts.append(f"c{confidence_bucket(confidence, arms)}")
    return "|".join(parts)


def tag_key(tag: str) -> str:
    """A tag as part of a context's name: as written up to 64 characters, longer ones by their start
    and a digest, so the saved state grows with the number of contexts, not the length of tags."""
    if len(tag) <= _TAG_CHARS:
        return tag
    return f"{tag[:_TAG_CHARS - 17]}~{hashlib.sha256(tag.encode()).hexdigest()[:16]}"


def arm_rewards(run: RunEvidence, arms: Sequence[float], lam: float) -> dict[int, float]:
    """Every arm's reward that this judged run determines, not only the arm played.

    An arm stops at the first attempt it would accept (an answer with confidence >= its level): that
    answer and the tokens spent up to it give its reward when a judge said whether that answer was
    right. An arm that accepts no attempt shares the run's outcome if the run reached the final tier
    (an audited one did, by its audit), and is unknown otherwise (it would have gone further).
    """
    out: dict[int, float] = {}
    gates = len(run.tokens) - 1 if run.reached_end else len(run.tokens)
    for arm, level in enumerate(arms):
        stop = next((i for i in range(gates) if accepts(run.confidence[i], level)), None)
        if stop is None and not run.reached_end:
            continue
        at = len(run.tokens) - 1 if stop is None else stop
        correct = run.correct[at]
        if correct is not None:
            out[arm] = reward(correct, run.tokens[at], lam)
    return out


@register("router", "bandit", BanditConfig)
def build_bandit(config: BanditConfig, ctx: BuildContext) -> BanditRouter:
    tiers = [tier.name for tier in ctx.config.tiers]
    router = BanditRouter(config, tiers[-1], placement=placement(config, ctx, "bandit"), tiers=tiers)
    start(router, config, ctx)
    return router
