"""Cross-tier agreement: two different models giving the same answer is strong evidence for it.

On a higher tier, the answer is compared with what the tiers below answered (`ctx.previous`),
after normalising case, whitespace and punctuation (a dot between digits and a leading minus are
kept, so 3.5 and 35 stay different). Previous attempts that gave no answer are ignored.

`against: previous` compares with the most recent answered attempt, `any` with at least one,
`all` with every one. With nothing to compare (the first tier, or no earlier answer) confidence
is `no_previous`, 0.5 by default: no evidence either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cascade.io.answers import normalise
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.types import Verdict

Against = Literal["previous", "any", "all"]


class AgreementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    against: Against = "previous"
    no_previous: float = Field(default=0.5, ge=0.0, le=1.0)


def agrees(answer: str, others: Sequence[str], against: Against) -> bool:
    mine = normalise(answer)
    matches = [normalise(other) == mine for other in others]
    if against == "previous":
        return matches[-1]
    return any(matches) if against == "any" else all(matches)


class AgreementVerifier:
    """Confidence 1.0 when the answer agrees with earlier tiers' answers, else 0.0."""

    def __init__(self, against: Against = "previous", no_previous: float = 0.5) -> None:
        self.against = against
        self.no_previous = no_previous

    async def verify(self, ctx: VerifyContext) -> Verdict:
        others = [a.answer for a in ctx.previous if a.answer is not None]
        if not others:
            return Verdict(self.no_previous, "agreement: no earlier answer to compare with")
        if ctx.answer is None:
            return Verdict(0.0, "agreement: no answer to compare")
        compared = others[-1:] if self.against == "previous" else others
        ok = agrees(ctx.answer, compared, self.against)
        reason = f"agreement: {'agrees' if ok else 'disagrees'} with {self.against} answer(s) {compared}"
        return Verdict(1.0 if ok else 0.0, reason, details={"compared": compared, "against": self.against})


@register("verifier", "agreement", AgreementConfig)
def build_agreement(config: AgreementConfig, ctx: BuildContext) -> AgreementVerifier:
    return AgreementVerifier(config.against, config.no_previous)
