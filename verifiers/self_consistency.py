"""Self-consistency (Wang et al. 2023) with adaptive stopping: vote over samples, stop once settled.

The tier's first answer is sample 1; more are drawn through `ctx.draw()` until the stopping rule
is satisfied (after at least `min_samples`) or `max_samples` is reached. Each sample stopped short
of the limit is reported as `samples_saved`.

Confidence is the majority's share of the non-None answers (Wang et al.'s consistency score),
which a router can threshold directly; the Beta posterior P(top beats runner-up) is in `details`.
The drawn samples' tokens are counted by the attempt itself, so `Verdict.usage` stays zero.
A draw that fails (budget, provider) ends sampling; the vote uses what was drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.config.schema import TierConfig
from cascade.errors import RunError
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.types import Verdict
from verifiers.stopping import StoppingConfig, StopRule, beta_top_probability, stop_after_samples, stop_when_beta


class SelfConsistencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_samples: int = Field(default=8, ge=1)
    min_samples: int = Field(default=2, ge=1)
    stopping: StoppingConfig = Field(default_factory=StoppingConfig)

    @model_validator(mode="after")
    def _ordered(self) -> SelfConsistencyConfig:
        if self.min_samples > self.max_samples:
            raise ValueError("min_samples must not exceed max_samples")
        return self


def majority(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most frequent non-None answer and its count; ties go to the one seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0
    return max(counts.items(), key=lambda item: item[1])


class SelfConsistencyVerifier:
    """Draws samples until `rule` stops it (after `min_samples`) or `max_samples`, then votes."""

    def __init__(self, max_samples: int = 8, min_samples: int = 2, rule: StopRule | None = None) -> None:
        self.max_samples = max_samples
        self.stop = stop_after_samples(max_samples) | (stop_after_samples(min_samples) & (rule or stop_when_beta()))

    def tier_problem(self, tier: TierConfig) -> str | None:
        if not tier.is_ensemble:
            return None
        return (
            "self_consistency draws more samples of one model; an ensemble tier's members already vote "
            "(its default verifier 'vote' scores that vote)"
        )

    async def _sample(self, ctx: VerifyContext) -> tuple[list[str | None], str | None]:
        answers = list(ctx.answers)
        while not answers or not self.stop(answers):
            try:
                _, answer = await ctx.draw()
            except RunError as exc:
                return answers, f"sampling stopped early: {exc}"
            answers.append(answer)
        return answers, None

    async def verify(self, ctx: VerifyContext) -> Verdict:
        answers, interrupted = await self._sample(ctx)
        confidence, winner, reason, details = tally(answers)
        if interrupted:
            reason, details["interrupted"] = f"{reason}; {interrupted}", interrupted
        used = len(answers)
        return Verdict(
            confidence,
            reason,
            answer=winner,
            samples_used=used,
            samples_saved=max(0, self.max_samples - used),
            details=details,
        )


def tally(answers: Sequence[str | None]) -> tuple[float, str | None, str, dict[str, Any]]:
    """Confidence (the majority's share of non-None answers), the winner, a reason and the vote details."""
    winner, top = majority(answers)
    counts = Counter(a for a in answers if a is not None)
    voters = sum(counts.values())
    if not voters:
        return 0.0, None, f"no sample answered ({len(answers)} drawn)", {"votes": {}, "unanswered": len(answers)}
    runner_up = sorted(counts.values(), reverse=True)[1] if len(counts) > 1 else 0
    details = {
        "votes": dict(counts),
        "unanswered": len(answers) - voters,
        "beta_posterior": beta_top_probability(top, runner_up),
    }
    return top / voters, winner, f"{top}/{voters} samples agree on {winner!r} ({len(answers)} drawn)", details


@register("verifier", "self_consistency", SelfConsistencyConfig)
def build_self_consistency(config: SelfConsistencyConfig, ctx: BuildContext) -> SelfConsistencyVerifier:
    return SelfConsistencyVerifier(config.max_samples, config.min_samples, config.stopping.build())
