"""`ScoringInput`: everything the correctness scorer may look at for one tier's answer, as one plain record.

The same record is built from a live `VerifyContext` (the `scorer` verifier), from a logged item
(replay, the optimizer) and from a stored run (training on users' labels), so a scorer trained
offline scores a live answer exactly as it scored the logged one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.protocols import VerifyContext


@dataclass(frozen=True, slots=True)
class ScoringInput:
    """One tier's answer to one query and what is known about it at run time.

    `members`/`member_weights`: the answers of an ensemble tier's members in listed order (None:
    the member failed or gave no answer); empty for a one-model tier. `earlier`: the answers of the
    tiers already called for this query, oldest first, and `earlier_members` their members' answers
    (an empty tuple for a one-model tier; or no entries at all when unknown). `logprobs`: the answer text's token
    logprobs; `first_top`: the logprobs of the most likely alternatives for the first answer
    token, best first (both None when the provider gives none).
    """

    query: str
    tier: str
    tier_index: int
    answer: str | None
    raw: str | None = None
    members: tuple[str | None, ...] = ()
    member_weights: tuple[float, ...] = ()
    earlier: tuple[str | None, ...] = ()
    earlier_members: tuple[tuple[str | None, ...], ...] = ()
    logprobs: tuple[float, ...] | None = None
    first_top: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.member_weights and len(self.member_weights) != len(self.members):
            raise ValueError("member_weights must give one weight per member")
        if self.earlier_members and len(self.earlier_members) != len(self.earlier):
            raise ValueError("earlier_members must give one tuple per earlier tier")

    @property
    def weights(self) -> tuple[float, ...]:
        """Each member's vote weight (1.0 when none were given)."""
        return self.member_weights or (1.0,) * len(self.members)

    def seen(self) -> list[str | None]:
        """Every individual model answer known at this point: each earlier tier's members' answers
        (or its answer, for a one-model tier), then this tier's members' (or its own answer)."""
        out: list[str | None] = []
        for i, answer in enumerate(self.earlier):
            members = self.earlier_members[i] if self.earlier_members else ()
            out += list(members) if members else [answer]
        return out + (list(self.members) if self.members else [self.answer])

    @classmethod
    def from_verify_context(cls, ctx: VerifyContext) -> ScoringInput:
        """The record of a live attempt: the answer being judged, its sample, members and earlier tiers."""
        sample = _answer_sample(ctx)
        members = tuple(getattr(ctx, "members", None) or ())
        previous = [a for a in ctx.previous if a.error is None]
        return cls(
            query=ctx.query,
            tier=ctx.tier.name,
            tier_index=ctx.tier_index,
            answer=ctx.answer,
            raw=sample.text if sample is not None else None,
            members=tuple(getattr(m, "answer", None) for m in members),
            member_weights=tuple(float(getattr(m, "weight", 1.0)) for m in members),
            earlier=tuple(a.answer for a in previous),
            earlier_members=tuple(_member_answers(a) for a in previous),
            logprobs=_tuple(getattr(sample, "token_logprobs", None)),
            first_top=_first_top(sample),
        )

    @classmethod
    def from_attempts(cls, query: str, attempts: Sequence[Any], index: int) -> ScoringInput:
        """The record of stored attempt `index` of a run (raw text and logprobs are not stored)."""
        attempt = attempts[index]
        members = list(getattr(attempt, "members", None) or [])
        previous = [a for a in attempts[:index] if a.error is None]
        return cls(
            query=query,
            tier=attempt.tier,
            tier_index=index,
            answer=attempt.answer,
            raw=attempt.answer,
            members=tuple(m.answer for m in members),
            member_weights=tuple(float(m.weight) for m in members),
            earlier=tuple(a.answer for a in previous),
            earlier_members=tuple(_member_answers(a) for a in previous),
        )


def _member_answers(attempt: Any) -> tuple[str | None, ...]:
    return tuple(m.answer for m in getattr(attempt, "members", None) or ())


def _answer_sample(ctx: VerifyContext) -> Any:
    """The first sample that gave the answer being judged (sample 0 unless a vote chose another)."""
    for sample, answer in zip(ctx.samples, ctx.answers, strict=False):
        if answer == ctx.answer:
            return sample
    return ctx.samples[0] if ctx.samples else None


def _tuple(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _first_top(sample: Any) -> tuple[float, ...] | None:
    """Logprobs of the first token's top alternatives, if the completion carries them.

    Completions may give them as a list per position (`top_logprobs[0]`), each entry a logprob or a
    `(token, logprob)` pair / mapping; only the values matter here.
    """
    top = getattr(sample, "top_logprobs", None)
    if not top:
        return None
    first = top[0]
    values = first.values() if isinstance(first, dict) else first
    out = [float(v[-1] if isinstance(v, tuple | list) else v) for v in values]
    return tuple(sorted(out, reverse=True)) or None
