"""What learners learn from: stored runs judged by the reference (audits, escalations) or by feedback.

A learner reads, from cursors it saves with its state, the reference pairs (`store.reference_pairs`,
written by `cascade.audit`) and the feedback (`store.labelled_runs`) of its own config and variant.
Each becomes a `Judged` run: a verdict on every attempt a judge could tell (1 right, 0 wrong), who
judged, and how many runs of the traffic it stands for.

- **The reference** judges each lower attempt by its pair's agreement with the strongest tier's
  answer; the strongest tier's own answer is right by definition. An audited run stands for
  1 / the audit rate runs, and its audit says what escalating the served answer would have cost.
- **Feedback** judges as it always has: a label or correction every attempt, a thumb the answer
  given. Attempts it cannot judge take the reference's verdict when the run has one, so a thumb on
  an escalated run still learns whether the cheap answer agreed (without it, thumbs-only feedback
  never judges the answers the router escalated, and the threshold swings).

Where a key's verdict and the reference judged the same answer, the key agreed or not (`checks`):
that is how keys earn trust (`cascade.learning.trust`). Each pair of events is checked once, when
the later of the two is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

from pydantic import Field, model_validator

from cascade.learning.online import Scope
from cascade.learning.trust import OPERATOR, TrustPolicy
from cascade.store import LabelledRun, RunRecord, Store
from cascade.store.base import FeedbackRecord, ReferenceRecord, is_correct
from cascade.types import Attempt

Source = Literal["feedback", "escalations", "audits"]
SOURCES: tuple[Source, ...] = get_args(Source)
_PAIR_SOURCE = {"escalation": "escalations", "audit": "audits"}
R = TypeVar("R", ReferenceRecord, FeedbackRecord)


class EvidenceConfig(TrustPolicy):
    """What a learner learns from (`learn_from`) and how much API keys' feedback counts (`TrustPolicy`)."""

    learn_from: tuple[Source, ...] = Field(default=SOURCES, min_length=1)

    @model_validator(mode="after")
    def _trust_needs_a_reference(self) -> EvidenceConfig:
        if self.trust_keys == "earned" and not {"escalations", "audits"} & set(self.learn_from):
            raise ValueError(
                "keys earn trust by agreeing with escalations or audits, and learn_from has neither: no key's "
                "feedback would count; add them, or set trust_keys: all to trust every key"
            )
        return self


@dataclass(frozen=True)
class Judged:
    """One run with a verdict per attempt (None: no judge could tell) from the reference or one judge.

    `judge` is None for the reference, else the key's id (`OPERATOR` for feedback without a key).
    `weight`: runs of the traffic it stands for. `escalation_tokens`: an audited run's reference
    call, what escalating its served answer to the strongest tier costs (None otherwise).
    """

    run: RunRecord
    correct: tuple[float | None, ...]
    judge: str | None = None
    weight: float = 1.0
    audited: bool = False
    escalation_tokens: int | None = None

    @property
    def attempts(self) -> list[Attempt]:
        return self.run.attempts


@dataclass(frozen=True)
class Cursors:
    """Where a learner has read up to: the last feedback id and the last reference pair's seq."""

    feedback: int = 0
    references: int = 0


@dataclass
class Step:
    """One read: runs judged by the reference, runs judged by feedback, and keys checked against it."""

    references: list[Judged] = field(default_factory=list)
    feedback: list[Judged] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    cursors: Cursors = field(default_factory=Cursors)
    caught_up: bool = True
    consumed: int = 0  # records the cursors moved past (some judge no run of this learner's)


def read_step(store: Store, scope: Scope, cursors: Cursors, limit: int, sources: Iterable[Source]) -> Step:
    """At most `limit` reference pairs and `limit` feedback events after `cursors`, judged."""
    wanted = set(sources)
    step = Step(cursors=cursors)
    if wanted & {"escalations", "audits"}:
        _read_references(store, scope, limit, wanted, step)
    if "feedback" in wanted:
        _read_feedback(store, scope, limit, wanted, step)
    return step


def _read_references(store: Store, scope: Scope, limit: int, wanted: set[Source], step: Step) -> None:
    found = store.reference_pairs(
        since_seq=step.cursors.references, limit=limit, config_name=scope.config_name, variant=scope.variant
    )
    step.caught_up = len(found) < limit
    if not step.caught_up and len({r.pair.run_id for r in found}) > 1:  # the last run's pairs may go on
        found = [r for r in found if r.pair.run_id != found[-1].pair.run_id]
    if not found:
        return
    step.cursors, step.consumed = Cursors(step.cursors.feedback, found[-1].seq), step.consumed + len(found)
    pairs = [r for r in found if _PAIR_SOURCE[r.pair.source] in wanted]
    runs = {run.run_id: run for run in store.runs_by_id([r.pair.run_id for r in pairs])}
    earlier = _by_run(f for f in store.feedback_on(list(runs)) if f.id <= step.cursors.feedback)
    for run_id, of_run in _by_run(pairs).items():
        if run_id in runs:
            judged = by_reference(runs[run_id], of_run)
            step.references.append(judged)
            for event in earlier.get(run_id, []):
                step.checks += agreements(event, runs[run_id], judged)


def _read_feedback(store: Store, scope: Scope, limit: int, wanted: set[Source], step: Step) -> None:
    items = store.labelled_runs(
        since_seq=step.cursors.feedback, limit=limit, config_name=scope.config_name, variant=scope.variant
    )
    step.caught_up = step.caught_up and len(items) < limit
    if not items:
        return
    step.cursors, step.consumed = Cursors(items[-1].seq, step.cursors.references), step.consumed + len(items)
    known = store.reference_pairs_of([i.run.run_id for i in items], until_seq=step.cursors.references)
    references = _by_run(r for r in known if _PAIR_SOURCE[r.pair.source] in wanted)
    for item in items:
        reference = by_reference(item.run, references[item.run.run_id]) if item.run.run_id in references else None
        step.feedback.append(by_feedback(item, reference))
        if reference is not None:
            step.checks += agreements(item.feedback, item.run, reference)


def by_reference(run: RunRecord, pairs: Sequence[ReferenceRecord]) -> Judged:
    """The run as its reference pairs judge it (see the module docstring)."""
    agree = {r.pair.tier: _float(r.pair.agree) for r in pairs}
    strongest = {r.pair.reference_tier for r in pairs if r.pair.source == "escalation" and r.pair.reference}
    correct = tuple(1.0 if a.tier in strongest else agree.get(a.tier) for a in run.attempts)
    audits = [r.pair for r in pairs if r.pair.source == "audit"]
    answered = [p for p in audits if p.agree is not None]
    return Judged(
        run,
        correct,
        weight=max((r.pair.weight for r in pairs), default=1.0),
        audited=bool(audits),
        escalation_tokens=answered[0].tokens if answered else None,
    )


def by_feedback(item: LabelledRun, reference: Judged | None = None) -> Judged:
    """The run as its latest feedback judges it, the reference filling in what the feedback cannot tell."""
    own = feedback_verdicts(item.run, item.feedback)
    fill = reference.correct if reference is not None else (None,) * len(own)
    correct = tuple(mine if mine is not None else theirs for mine, theirs in zip(own, fill, strict=True))
    return Judged(item.run, correct, judge=item.feedback.key or OPERATOR)


def feedback_verdicts(run: RunRecord, feedback: FeedbackRecord) -> tuple[float | None, ...]:
    """A label or correction judges every attempt; a thumb the attempts that gave the final answer."""
    kind, value = feedback.kind, feedback.value
    if kind in ("label", "correction") and value is not None:
        return tuple(float(is_correct(kind, value, a.answer)) for a in run.attempts)
    verdict = float(is_correct(kind, value, run.answer))
    return tuple(verdict if a.answer == run.answer else None for a in run.attempts)


def agreements(feedback: FeedbackRecord, run: RunRecord, reference: Judged) -> list[tuple[str, bool]]:
    """For each attempt both judged: (the feedback's key, whether its verdict agrees with the reference's)."""
    key = feedback.key or OPERATOR
    return [
        (key, (mine >= 0.5) == (theirs >= 0.5))
        for mine, theirs in zip(feedback_verdicts(run, feedback), reference.correct, strict=True)
        if mine is not None and theirs is not None
    ]


def _by_run(records: Iterable[R]) -> dict[str, list[R]]:
    grouped: dict[str, list[R]] = {}
    for record in records:
        run_id = record.pair.run_id if isinstance(record, ReferenceRecord) else record.run_id
        grouped.setdefault(run_id, []).append(record)
    return grouped


def _float(value: bool | None) -> float | None:
    return None if value is None else float(value)
