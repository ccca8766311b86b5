"""A learned correctness scorer as a verifier: confidence = the scorer's calibrated P(answer correct).

`verifier: {type: scorer, path: scorer.json}`; a relative path is read from the YAML file's folder,
where `cascade tune --logs` writes the scorer next to the config; `package://cascade/local/data/
default_scorer.json` names a file shipped inside an installed package (the local default's). The scorer sees what
`cascade.scoring.ScoringInput` records: the answer and its text, an ensemble's member answers,
earlier tiers' answers, token logprobs when the provider gives them, and the query; replay builds
the same record from logs, so a replayed cascade decides as the live one does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cascade.config.schema import TierConfig, resolve_data_path
from cascade.errors import ConfigError
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.scoring import ANY_TIER, Scorer, ScoringInput
from cascade.types import Verdict


class ScorerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)


class ScorerVerifier:
    """Scores each answer with a trained `Scorer`; the reason names the head used and its P(correct)."""

    def __init__(self, scorer: Scorer, name: str = "scorer") -> None:
        self.scorer = scorer
        self.name = name

    async def verify(self, ctx: VerifyContext) -> Verdict:
        inp = ScoringInput.from_verify_context(ctx)
        p = self.scorer.predict(inp)
        head = inp.tier if inp.tier in self.scorer.heads else ANY_TIER
        reason = f"scorer {self.name}: P(correct) {p:.3f} (head {head!r})"
        return Verdict(p, reason, details={"scorer": self.name, "head": head, "p_correct": p})


@register("verifier", "scorer", ScorerConfig)
def build_scorer(config: ScorerConfig, ctx: BuildContext) -> ScorerVerifier:
    try:
        path = resolve_data_path(config.path, ctx.config._source)
        scorer = Scorer.load(path)
    except ConfigError as exc:
        where = ctx.config.where((*ctx.loc, "path"))
        raise ConfigError(f"{where}: {exc}", source=ctx.config._source) from None
    unknown = [t.name for t in _tiers_judged(ctx) if not scorer.knows(t.name)]
    if unknown:
        where = ctx.config.where((*ctx.loc, "path"))
        heads = ", ".join(sorted(scorer.heads))
        message = f"{where}: {path.name} has no head for tier(s) {', '.join(unknown)} (heads: {heads}) and no '*' head"
        raise ConfigError(message, source=ctx.config._source)
    return ScorerVerifier(scorer, path.name)


def _tiers_judged(ctx: BuildContext) -> list[TierConfig]:
    """The tiers this verifier judges: its own tier, or every tier without a verifier of its own."""
    if len(ctx.loc) >= 2 and ctx.loc[0] == "tiers" and isinstance(ctx.loc[1], int):
        return [ctx.config.tiers[ctx.loc[1]]]
    return [t for t in ctx.config.tiers if t.verifier is None]
