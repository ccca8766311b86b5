"""The Store protocol and the records it returns: what learners and the CLI code against.

Records are frozen dataclasses so a learner cannot mutate history by accident; a run's `attempts` are
the `Attempt`s as stored (the fields the store keeps; the others at their defaults).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from cascade.types import Attempt, CascadeResult

FeedbackKind = Literal["thumbs_up", "thumbs_down", "correction", "label"]
ReferenceSource = Literal["audit", "escalation"]
REFERENCE_SOURCES: tuple[str, ...] = get_args(ReferenceSource)
FEEDBACK_KINDS: tuple[str, ...] = get_args(FeedbackKind)
VALUED_KINDS = frozenset({"correction", "label"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One stored cascade run; `seq` orders runs by commit, a cursor for incremental learners."""

    seq: int
    run_id: str
    created_at: str
    config_name: str
    variant: str | None
    query: str
    answer: str | None
    accepted: bool
    final_tier: str | None
    total_tokens: int
    total_cost_usd: float
    features: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    route_reason: str = ""
    stop_reason: str = ""
    error: str | None = None

    def result(self) -> CascadeResult:
        """The run as the engine returned it (scrubbed text), e.g. to replay it through a new router."""
        return CascadeResult(
            query=self.query,
            answer=self.answer,
            accepted=self.accepted,
            final_tier=self.final_tier,
            attempts=list(self.attempts),
            route_reason=self.route_reason,
            stop_reason=self.stop_reason,
            run_id=self.run_id,
            error=self.error,
            tag=self.features.get("tag"),
            messages=self.features.get("messages"),
            tool_calls=self.features.get("tool_calls"),
            experiment=self.features.get("experiment"),
            variant=self.variant,
            audit_rate=self.features.get("audit_rate"),
            audited=bool(self.features.get("audited", False)),
        )


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One feedback event on a run: a thumb, a user's correction, or a gold label.

    `key` is the id of the API key that posted it (`key-…`, or `anonymous` on a server without
    keys); None when it was recorded without one (the Python API, `cascade feedback`): the operator's.
    """

    id: int
    run_id: str
    kind: FeedbackKind
    value: str | None
    user: str | None
    created_at: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRate:
    """At most `count` feedback events per key in any `window_s` seconds."""

    count: int
    window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class LabelledRun:
    """A run with its latest feedback read as a correctness label.

    `seq` is the feedback event's id, not the run's: feedback on an old run arrives late, and a
    learner resuming from `labelled_runs(since_seq=last.seq)` must still see it (the run comes
    back with its newer label).
    """

    run: RunRecord
    feedback: FeedbackRecord
    correct: bool

    @property
    def seq(self) -> int:
        return self.feedback.id


@dataclass(frozen=True, slots=True)
class ReferencePair:
    """A tier's answer judged against the reference: what the strongest tier answered to the same query.

    Labels without gold (`cascade.audit`): an `audit` sends an answer served below the last tier to
    the strongest tier as well, off the request path, for a sampled share of runs (`weight` is the
    inverse of that share, so audits re-weighted estimate all served answers); an `escalation` is
    free, the lower tiers' answers of a run that reached the strongest tier, against its answer
    (`weight` 1; these answers were not served). `agree` compares the two in the tier's answer
    format (`answer_format`); None when there is no verdict: the audit was dropped or its call
    failed (`note` says which). `confidence` and `threshold` are the judged attempt's, so learners
    can ask what another threshold would have done; `cost_usd` and `tokens` are what the reference
    call cost (an audit's own spend; 0 for an escalation, which the run paid).
    """

    run_id: str
    config_name: str
    source: ReferenceSource
    tier: str
    answer: str | None
    reference_tier: str
    reference: str | None
    agree: bool | None
    weight: float = 1.0
    served: bool = False
    confidence: float | None = None
    threshold: float | None = None
    answer_format: str = "first_line"
    variant: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    """A stored `ReferencePair`; `seq` orders pairs by commit (a learner's cursor)."""

    seq: int
    created_at: str
    pair: ReferencePair


@dataclass(frozen=True, slots=True)
class StateEntry:
    """A learner's saved state and its version: each save adds one, so a reader can tell it changed
    and a writer can save only over the version it started from (`compare_and_put_state`)."""

    value: dict[str, Any]
    version: int


@runtime_checkable
class Store(Protocol):
    """Runs, feedback and learned state; SQLite embedded or PostgreSQL shared by replicas."""

    def record_run(
        self,
        result: CascadeResult,
        *,
        config_name: str,
        variant: str | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> str: ...

    def add_feedback(
        self,
        run_id: str,
        *,
        kind: FeedbackKind,
        value: str | None = None,
        user: str | None = None,
        key: str | None = None,
        rate: FeedbackRate | None = None,
    ) -> int: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def feedback_for(self, run_id: str) -> list[FeedbackRecord]: ...

    def feedback_on(self, run_ids: Sequence[str]) -> list[FeedbackRecord]: ...

    def runs(
        self, *, since_id: int = 0, limit: int = 1000, config_name: str | None = None, since: str | None = None
    ) -> list[RunRecord]: ...

    def labelled_runs(
        self, *, since_seq: int = 0, limit: int = 1000, config_name: str | None = None, variant: str | None = None
    ) -> list[LabelledRun]: ...

    def runs_by_id(self, run_ids: Sequence[str]) -> list[RunRecord]: ...

    def add_reference_pairs(self, pairs: Sequence[ReferencePair]) -> list[int]: ...

    def reference_pairs(
        self,
        *,
        since_seq: int = 0,
        limit: int = 1000,
        config_name: str | None = None,
        variant: str | None = None,
        source: ReferenceSource | None = None,
        since: str | None = None,
    ) -> list[ReferenceRecord]: ...

    def reference_pairs_of(self, run_ids: Sequence[str], *, until_seq: int | None = None) -> list[ReferenceRecord]: ...

    def put_state(self, key: str, value: Mapping[str, Any]) -> int: ...

    def compare_and_put_state(self, key: str, value: Mapping[str, Any], *, expect_version: int) -> int | None: ...

    def get_state(self, key: str) -> dict[str, Any] | None: ...

    def get_state_entry(self, key: str) -> StateEntry | None: ...

    def state_version(self, key: str) -> int: ...

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool: ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def lease_holder(self, name: str) -> str | None: ...

    def check_writable(self) -> None:
        """StoreError unless this store can be written (check before paying for what it will record)."""
        ...

    def close(self) -> None: ...


def is_correct(kind: str, value: str | None, answer: str | None) -> bool:
    """Thumbs are the verdict; a correction or label is correct iff it matches the answer under EM."""
    from cascade.io.exact_match import normalize_answer

    if kind == "thumbs_up":
        return True
    if kind == "thumbs_down" or value is None or answer is None:
        return False
    return normalize_answer(value) == normalize_answer(answer)
