"""The learning side shared by the `adaptive` and `bandit` routers: where state lives, and the
`OnlineLearner` steps (`cascade.learning.online`) on a copy of the model.

Each step reads runs judged by the reference (audits, escalations) and by feedback
(`cascade.learning.judged`), updates the record of how far each API key's feedback can be trusted
(`cascade.learning.trust`), and learns every judged run. The saved state holds both cursors, that
record and the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import Field

from cascade.learning.judged import Cursors, EvidenceConfig, Judged, read_step
from cascade.learning.online import Advance, Scope, State, catch_up
from cascade.learning.run_evidence import RunEvidence
from cascade.learning.trust import KeyTrust
from cascade.registry import BuildContext
from cascade.store import Store
from cascade.types import Attempt
from routers.threshold import ThresholdRouter

PAGE = 200
M = TypeVar("M")


class StoreConfig(EvidenceConfig):
    """`state_key` defaults to `router/<type>/<config name>`; an experiment variant appends `@<variant>`.
    `learn_from`, `key_share` and `trust_keys`: see `cascade.learning.judged` and `cascade.learning.trust`."""

    store: str | None = None
    state_key: str | None = Field(default=None, min_length=1)
    learn_on_build: bool = True
    page: int = Field(default=PAGE, ge=1)


@dataclass(frozen=True)
class Placement:
    """Where a learning router keeps its state, which runs it learns from and how it weighs them."""

    state_key: str
    store_dsn: str | None = None
    scope: Scope = field(default_factory=Scope)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)


class Learner(ThresholdRouter, ABC, Generic[M]):
    """The `OnlineLearner` side shared by both routers; subclasses say how a model is (de)serialised,
    learns one judged run, and is swapped in for serving."""

    cursor: int = 0

    def __init__(self, threshold: float, placement: Placement) -> None:
        super().__init__(threshold)
        self.placement = placement

    @property
    def state_key(self) -> str:
        return self.placement.state_key

    @property
    def store_dsn(self) -> str | None:
        return self.placement.store_dsn

    @property
    def evidence(self) -> EvidenceConfig:
        """What it learns from and how it weighs API keys' feedback."""
        return self.placement.evidence

    @abstractmethod
    def load_model(self, state: State | None, trust: KeyTrust | None = None) -> M:
        """A fresh model from saved state (None: the untrained model), weighing keys by `trust`."""

    @abstractmethod
    def learn_one(self, model: M, item: Judged, trust: KeyTrust) -> None:
        """Learn one judged run (`item.judge` None: the reference's verdicts, else a key's)."""

    @abstractmethod
    def dump_model(self, model: M) -> dict[str, Any]: ...

    @abstractmethod
    def serve(self, model: M) -> None:
        """Make `model` the one `decide` reads."""

    def advance(self, state: State | None, store: Store, limit: int) -> Advance:
        """Learn the runs judged after the state's cursors (at most `limit` of each kind) on a copy of its model."""
        trust = self.trust(state)
        model = self.load_model(state["model"] if state else None, trust)
        cursors = Cursors(int(state["cursor"]), int(state.get("references", 0))) if state else Cursors()
        step = read_step(store, self.placement.scope, cursors, limit, self.placement.evidence.learn_from)
        for key, agreed in step.checks:
            trust.check(key, agreed)
        for item in step.references:
            trust.add_reference()
            self.learn_one(model, item, trust)
        for item in step.feedback:
            self.learn_one(model, item, trust)
        saved = {"cursor": step.cursors.feedback, "references": step.cursors.references, "trust": trust.to_state()}
        return Advance({**saved, "model": self.dump_model(model)}, step.consumed, step.caught_up)

    def trust(self, state: State | None) -> KeyTrust:
        """The record of keys saved with `state`, weighed by this router's settings."""
        return KeyTrust.from_state(state.get("trust") if state else None, self.placement.evidence)

    def adopt(self, state: State) -> None:
        self.serve(self.load_model(state["model"], self.trust(state)))
        self.cursor = int(state["cursor"])

    def learn(self, store: Store, page: int = PAGE) -> int:
        """Learn every labelled run after the saved cursor now, saving state with the cursor after each page."""
        return catch_up(self, store, page)


def placement(config: StoreConfig, ctx: BuildContext, kind: str) -> Placement:
    """The state key, store and scope of a learning router built in `ctx` (see `StoreConfig`)."""
    scope = Scope(ctx.config.name, ctx.variant)
    key = scope.key(config.state_key or f"router/{kind}/{ctx.config.name}")
    return Placement(key, ctx.store_access().address(config.store), scope, config)


def start(router: Learner[Any], config: StoreConfig, ctx: BuildContext) -> None:
    """Resume the router from its saved state and, unless told not to, learn what is new since (from the
    store the build context gives it)."""
    with ctx.store_access().open(config.store) as store:
        state = store.get_state(router.state_key)
        if state is not None:
            router.adopt(state)
        if config.learn_on_build and ctx.learn_on_build:
            router.learn(store, config.page)


def cumulative_tokens(attempts: Iterable[Attempt]) -> list[float]:
    """Tokens spent up to and including each attempt."""
    total, out = 0.0, []
    for attempt in attempts:
        total += attempt.total_tokens
        out.append(total)
    return out


def run_evidence(item: Judged, tiers: Sequence[str]) -> RunEvidence | None:
    """A judged run as evidence about other thresholds (`cascade.learning.controller`); None without attempts.

    An audited answer served one tier below the strongest also says what escalating it would have
    done: the strongest tier's answer (the reference, right by definition) for the audit's tokens.
    """
    attempts = item.attempts
    if not attempts:
        return None
    confidence = tuple(answered_confidence(a) for a in attempts)
    correct, tokens = item.correct, tuple(cumulative_tokens(attempts))
    reached_end = attempts[-1].tier == tiers[-1]
    if item.escalation_tokens is not None and len(tiers) > 1 and attempts[-1].tier == tiers[-2]:
        confidence, correct = (*confidence, None), (*correct, 1.0)
        tokens, reached_end = (*tokens, tokens[-1] + item.escalation_tokens), True
    return RunEvidence(confidence, correct, tokens, reached_end, weight=item.weight)


def answered_confidence(attempt: Attempt) -> float | None:
    """The attempt's confidence when it gave a usable answer (None: nothing a threshold could accept)."""
    return attempt.confidence if attempt.answer is not None else None
