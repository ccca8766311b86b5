"""Learning while serving: learners as pure state → state steps, kept in step with the store.

A component that learns from labelled runs (the `adaptive` and `bandit` routers, the `learned`
pre-router) implements `OnlineLearner`:

- `advance(state, store, limit)` learns at most `limit` new labelled runs on top of a saved
  `state` (None: nothing learned yet) and returns the next state, cursor included. It never
  touches the model that is serving requests, so it can run in a worker thread.
- `adopt(state)` swaps a state in for serving (in the event loop's thread, between requests).

`LearnerSync` drives one learner against the store. The process holding the learner's lease calls
`step`: start from the newest saved state, advance, save with compare-and-set on the version it
started from. Any other process calls `refresh` and adopts the newer state when the version moved.
Compare-and-set is what makes it safe: if a lease expires mid-step (a long pause) and two
processes learn at once, only one save lands and the other starts again from it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cascade.store import Store

log = logging.getLogger("cascade.learning")

State = Mapping[str, Any]
DEFAULT_LIMIT = 500  # labelled runs one step learns at most: bounds the work between two saves


@dataclass(frozen=True)
class Advance:
    """What one step learned: the next state, how many labelled runs it took in, whether it caught up."""

    state: dict[str, Any]
    learned: int
    caught_up: bool


@dataclass(frozen=True)
class Scope:
    """Which stored runs are a learner's evidence: those of its config and, in an experiment, its variant."""

    config_name: str | None = None
    variant: str | None = None

    def key(self, base: str) -> str:
        """`base` namespaced by the variant, so variants of one experiment never share a state."""
        return f"{base}@{self.variant}" if self.variant else base


@runtime_checkable
class OnlineLearner(Protocol):
    """A component that learns from the store's labelled runs; see the module docstring."""

    @property
    def state_key(self) -> str: ...

    @property
    def store_dsn(self) -> str | None:
        """The store it learns from (None: the default store, or the one its cascade records to)."""

    def advance(self, state: State | None, store: Store, limit: int) -> Advance: ...

    def adopt(self, state: State) -> None: ...


class LearnerSync:
    """One learner kept in step with its saved state; `version` is the state it serves now."""

    def __init__(self, learner: OnlineLearner, store: Store, *, version: int = -1) -> None:
        self.learner = learner
        self.store = store
        self.version = version

    @property
    def lease(self) -> str:
        return f"learn:{self.learner.state_key}"

    def refresh(self) -> dict[str, Any] | None:
        """The saved state if it is newer than the one served (adopt it), else None."""
        if self.store.state_version(self.learner.state_key) == self.version:
            return None
        entry = self.store.get_state_entry(self.learner.state_key)
        if entry is None:
            return None
        self.version = entry.version
        return entry.value

    def step(self, limit: int = DEFAULT_LIMIT) -> tuple[dict[str, Any] | None, Advance | None]:
        """Learn up to `limit` labelled runs from the newest saved state and save the result.

        Returns the state to adopt (None: the served one is current) and what the step learned
        (None when another process saved first: the next step starts from its state).
        """
        entry = self.store.get_state_entry(self.learner.state_key)
        base, version = (entry.value, entry.version) if entry else (None, 0)
        moved = self.learner.advance(base, self.store, limit)
        if moved.learned == 0:
            return self._adopt_if_new(base, version), moved
        saved = self.store.compare_and_put_state(self.learner.state_key, moved.state, expect_version=version)
        if saved is None:
            log.info("learner %s: another process saved first; starting again from its state", self.lease)
            return None, None
        self.version = saved
        return moved.state, moved

    def _adopt_if_new(self, base: State | None, version: int) -> dict[str, Any] | None:
        if base is None or version == self.version:
            return None
        self.version = version
        return dict(base)


def catch_up(learner: OnlineLearner, store: Store, limit: int = DEFAULT_LIMIT, *, version: int = -1) -> int:
    """Learn every labelled run the store has beyond the saved state, `limit` at a time; returns how many.

    Each step is saved before the next starts, so a process killed midway resumes from its last
    save: nothing learned twice, no feedback skipped.
    """
    sync, learned = LearnerSync(learner, store, version=version), 0
    while True:
        state, moved = sync.step(limit)
        if state is not None:
            learner.adopt(state)
        if moved is not None:
            learned += moved.learned
            if moved.caught_up:
                return learned


def holder_id() -> str:
    """Who holds a lease: host, process and a random suffix (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def learners_of(components: Iterable[object]) -> list[OnlineLearner]:
    """The components that learn online, each once (several cascades may share nothing else)."""
    seen: list[OnlineLearner] = []
    for component in components:
        if isinstance(component, OnlineLearner) and all(component is not s for s in seen):
            seen.append(component)
    return seen
