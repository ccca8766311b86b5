"""The learning side shared by the `adaptive` and `bandit` routers: where state lives, and the
`OnlineLearner` steps (`cascade.learning.online`) on a copy of the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cascade.learning.online import Advance, Scope, State, catch_up
from cascade.registry import BuildContext
from cascade.store import LabelledRun, Store
from cascade.store.base import is_correct
from cascade.types import Attempt
from routers.threshold import ThresholdRouter

PAGE = 200
M = TypeVar("M")


class StoreConfig(BaseModel):
    """`state_key` defaults to `router/<type>/<config name>`; an experiment variant appends `@<variant>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str | None = None
    state_key: str | None = Field(default=None, min_length=1)
    learn_on_build: bool = True
    page: int = Field(default=PAGE, ge=1)


@dataclass(frozen=True)
class Placement:
    """Where a learning router keeps its state and which runs it learns from."""

    state_key: str
    store_dsn: str | None = None
    scope: Scope = field(default_factory=Scope)


class Learner(ThresholdRouter, ABC, Generic[M]):
    """The `OnlineLearner` side shared by both routers; subclasses say how a model is (de)serialised,
    learns one labelled run, and is swapped in for serving."""

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

    @abstractmethod
    def load_model(self, state: State | None) -> M:
        """A fresh model from saved state (None: the untrained model)."""

    @abstractmethod
    def learn_one(self, model: M, item: LabelledRun) -> None: ...

    @abstractmethod
    def dump_model(self, model: M) -> dict[str, Any]: ...

    @abstractmethod
    def serve(self, model: M) -> None:
        """Make `model` the one `decide` reads."""

    def advance(self, state: State | None, store: Store, limit: int) -> Advance:
        """Learn the labelled runs after the state's cursor (at most `limit`) on a copy of its model."""
        model = self.load_model(state["model"] if state else None)
        cursor = int(state["cursor"]) if state else 0
        scope = self.placement.scope
        items = store.labelled_runs(since_seq=cursor, limit=limit, config_name=scope.config_name, variant=scope.variant)
        for item in items:
            self.learn_one(model, item)
            cursor = item.seq
        return Advance({"cursor": cursor, "model": self.dump_model(model)}, len(items), len(items) < limit)

    def adopt(self, state: State) -> None:
        self.serve(self.load_model(state["model"]))
        self.cursor = int(state["cursor"])

    def learn(self, store: Store, page: int = PAGE) -> int:
        """Learn every labelled run after the saved cursor now, saving state with the cursor after each page."""
        return catch_up(self, store, page)


def placement(config: StoreConfig, ctx: BuildContext, kind: str) -> Placement:
    """The state key, store and scope of a learning router built in `ctx` (see `StoreConfig`)."""
    scope = Scope(ctx.config.name, ctx.variant)
    key = scope.key(config.state_key or f"router/{kind}/{ctx.config.name}")
    return Placement(key, ctx.store_access().address(config.store), scope)


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


def attempt_correct(item: LabelledRun, attempt: Attempt) -> bool | None:
    """A gold label or correction judges any attempt; a thumb only the attempt that gave the final answer."""
    kind, value = item.feedback.kind, item.feedback.value
    if kind in ("label", "correction") and value is not None:
        return is_correct(kind, value, attempt.answer)
    return item.correct if attempt.answer == item.run.answer else None


def answered_confidence(attempt: Attempt) -> float | None:
    """The attempt's confidence when it gave a usable answer (None: nothing a threshold could accept)."""
    return attempt.confidence if attempt.answer is not None else None
