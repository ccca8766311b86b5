"""Ensembles: several weak signals (logprobs, votes, a judge, format rules) make one confidence.

Members run one after another, in the configured order. When a member returns an answer (a
self-consistency vote), later members judge that answer: they get a context whose `answer` is the
voted one (`ctx.answers`/`ctx.samples` stay the shared lists, so later draws still land there).
The ensemble returns the last voted answer, the summed usage, per-member details, and (members
share one pool of samples) the largest `samples_used` and smallest `samples_saved` any member reports.

Modes: `weighted_mean` = sum(w*c)/sum(w). The vote modes are binary: a member votes yes when its
confidence >= its `threshold`; `all` gives 1.0 when every member votes yes, else 0.0; `any` 1.0 when
one does; `majority` the weighted share of yes votes (the plain share with default weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.config.schema import PluginSpec, TierConfig
from cascade.protocols import ChecksTier, Verifier, VerifyContext
from cascade.registry import BuildContext, register
from cascade.types import Usage, Verdict

Mode = Literal["weighted_mean", "all", "any", "majority"]


class MemberConfig(BaseModel):
    """A member verifier: its `type:` and own fields, plus the ensemble's `weight` and `threshold`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    weight: float = Field(default=1.0, ge=0.0)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    def spec(self) -> PluginSpec:
        return PluginSpec(type=self.type, **(self.model_extra or {}))


class EnsembleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "weighted_mean"
    members: list[MemberConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_weight(self) -> EnsembleConfig:
        if sum(m.weight for m in self.members) <= 0:
            raise ValueError("at least one member needs a weight above 0")
        return self


@dataclass(frozen=True)
class Member:
    name: str
    verifier: Verifier
    weight: float = 1.0
    threshold: float = 0.5


@dataclass(slots=True)
class VotedContext(VerifyContext):
    """A VerifyContext whose `answer` is an earlier member's vote rather than the first sample's."""

    voted: str | None = None

    @property
    def answer(self) -> str | None:
        return self.voted


def with_answer(ctx: VerifyContext, answer: str) -> VotedContext:
    if isinstance(ctx, VotedContext):
        return dataclasses.replace(ctx, voted=answer)
    shared = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(VerifyContext)}
    return VotedContext(**shared, voted=answer)


def combine(mode: Mode, members: Sequence[Member], verdicts: Sequence[Verdict]) -> float:
    """One confidence from the members' verdicts, by `mode` (see the module docstring)."""
    weights = [m.weight for m in members]
    if mode == "weighted_mean":
        return sum(w * v.confidence for w, v in zip(weights, verdicts, strict=True)) / sum(weights)
    votes = [v.confidence >= m.threshold for m, v in zip(members, verdicts, strict=True)]
    if mode == "all":
        return float(all(votes))
    if mode == "any":
        return float(any(votes))
    return sum(w for w, yes in zip(weights, votes, strict=True) if yes) / sum(weights)


class EnsembleVerifier:
    """Runs members in order, passing voted answers on, and combines their confidences."""

    def __init__(self, members: Sequence[Member], mode: Mode = "weighted_mean") -> None:
        self.members = list(members)
        self.mode = mode

    def tier_problem(self, tier: TierConfig) -> str | None:
        """The first member's objection to `tier`, named by the member."""
        for member in self.members:
            problem = member.verifier.tier_problem(tier) if isinstance(member.verifier, ChecksTier) else None
            if problem:
                return f"member {member.name!r}: {problem}"
        return None

    async def _run(self, ctx: VerifyContext) -> tuple[list[Verdict], str | None]:
        verdicts: list[Verdict] = []
        voted: str | None = None
        for member in self.members:
            verdict = await member.verifier.verify(ctx)
            verdicts.append(verdict)
            if verdict.answer is not None:
                voted = verdict.answer
                ctx = with_answer(ctx, voted)
        return verdicts, voted

    async def verify(self, ctx: VerifyContext) -> Verdict:
        verdicts, voted = await self._run(ctx)
        confidence = min(1.0, max(0.0, combine(self.mode, self.members, verdicts)))
        parts = [f"{m.name} {v.confidence:.2f} ({v.reason})" for m, v in zip(self.members, verdicts, strict=True)]
        details = {
            "mode": self.mode,
            "members": [_member_details(m, v) for m, v in zip(self.members, verdicts, strict=True)],
        }
        used = [v.samples_used for v in verdicts if v.samples_used is not None]
        saved = [v.samples_saved for v in verdicts if v.samples_saved is not None]
        return Verdict(
            confidence,
            f"{self.mode} {confidence:.2f}: " + "; ".join(parts),
            answer=voted,
            usage=sum((v.usage for v in verdicts), Usage()),
            samples_used=max(used) if used else None,
            samples_saved=min(saved) if saved else None,
            details=details,
        )


def _member_details(member: Member, verdict: Verdict) -> dict[str, object]:
    return {
        "type": member.name,
        "confidence": verdict.confidence,
        "reason": verdict.reason,
        "weight": member.weight,
        "vote": verdict.confidence >= member.threshold,
        "details": verdict.details,
    }


@register("verifier", "ensemble", EnsembleConfig)
def build_ensemble(config: EnsembleConfig, ctx: BuildContext) -> EnsembleVerifier:
    base = ctx.loc or ("verifier",)
    members = [
        Member(m.type, ctx.verifier(m.spec(), loc=(*base, "members", i)), m.weight, m.threshold)
        for i, m in enumerate(config.members)
    ]
    return EnsembleVerifier(members, config.mode)
