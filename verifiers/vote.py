"""The ensemble's own vote as confidence: the winning answer's share of the members' weight.

The default verifier of an ensemble tier (`models: [...]`). Three members of weight 1 where two
agree give 2/3; a member that failed or gave no answer abstains but still counts in the total,
so a vote that only one of three members could cast is weak evidence (1/3), not certainty.
The vote itself is `cascade.run.ensemble.vote`, the function offline replay uses too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cascade.config.schema import TierConfig
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.run.ensemble import vote_members
from cascade.types import Verdict


class VoteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoteVerifier:
    """Confidence = winning weight / total weight of the members called."""

    def tier_problem(self, tier: TierConfig) -> str | None:
        if tier.is_ensemble:
            return None
        return "verifier 'vote' scores an ensemble's vote, and this tier has one model (use 'models:')"

    async def verify(self, ctx: VerifyContext) -> Verdict:
        result = vote_members(ctx.members)
        abstained = [m.model for m in ctx.members if m.answer is None]
        details = {"tally": result.tally, "total_weight": result.total, "abstained": abstained}
        if result.answer is None:
            return Verdict(0.0, f"vote: none of {len(ctx.members)} members answered", details=details)
        distinct = len(result.tally)
        reason = f"vote: weight {result.weight:g} of {result.total:g} for {result.answer!r} ({distinct} distinct)"
        return Verdict(result.share, reason, details=details)


@register("verifier", "vote", VoteConfig)
def build_vote(config: VoteConfig, ctx: BuildContext) -> VoteVerifier:
    return VoteVerifier()
