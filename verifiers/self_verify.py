"""Self-verification (AutoMix, Madaan/Aggarwal et al. 2023): ask a model whether the answer is right.

A few short yes/no judgements from the tier's own model (or a named one) cost a handful of tokens
and catch answers the model itself recognises as wrong. Confidence is the share of "yes".
On an ensemble tier the default judge is the first member that gave the voted answer.
The judge's tokens and cost are reported in `Verdict.usage`. A judge that fails gives confidence 0
with the error as the reason, so the router escalates instead of the cascade crashing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cascade.config.schema import ModelSpec, TierConfig
from cascade.errors import ProviderError
from cascade.io.answers import yesno
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.run.ensemble import agrees
from cascade.types import Completion, CompletionRequest, Usage, Verdict

DEFAULT_PROMPT = "Question: {query}\nProposed answer: {answer}\n\nIs the answer correct? Answer yes or no."


class SelfVerifyConfig(BaseModel):
    """`temperature` None: 0 for one judgement, the tier's sample_temperature for several."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    samples: int = Field(default=1, ge=1, le=32)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int = Field(default=8, ge=1)
    prompt: str = DEFAULT_PROMPT

    @field_validator("prompt")
    @classmethod
    def _has_answer(cls, value: str) -> str:
        if "{answer}" not in value:
            raise ValueError("prompt must contain '{answer}'")
        return value


class SelfVerifyVerifier:
    """Asks `model` (None: the tier's model) `samples` times whether the answer is correct."""

    def __init__(
        self,
        model: str | None = None,
        samples: int = 1,
        temperature: float | None = None,
        max_tokens: int = 8,
        prompt: str = DEFAULT_PROMPT,
    ) -> None:
        self.model = model
        self.samples = samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prompt = prompt

    def judge_spec(self, ctx: VerifyContext) -> ModelSpec | None:
        """Which of the tier's models judges (with its endpoint, key and prices), or None for another model.

        Without a `model`, the tier's own model judges; on an ensemble tier, the first member that
        gave the voted answer judges it, as a model judges its own answer in AutoMix.
        """
        specs = ctx.tier.member_specs()
        if self.model is not None:
            return next((spec for spec in specs if spec.model == self.model), None)
        return specs[next((i for i, m in enumerate(ctx.members) if agrees(m.answer, ctx.answer)), 0)]

    def request(
        self, tier: TierConfig, query: str, answer: str, index: int, judge: ModelSpec | None = None
    ) -> CompletionRequest:
        """The i-th judge request; a tier model's endpoint, key and prices apply only to that model."""
        temperature = self.temperature
        if temperature is None:
            temperature = tier.sample_temperature if self.samples > 1 else 0.0
        content = self.prompt.replace("{query}", query).replace("{answer}", answer)
        return CompletionRequest(
            model=judge.model if judge else str(self.model),
            messages=[{"role": "user", "content": content}],
            max_tokens=self.max_tokens,
            temperature=temperature,
            seed=index if self.samples > 1 else None,
            timeout_s=tier.timeout_s,
            api_base=judge.resolved_api_base() if judge else None,
            api_key=judge.resolved_api_key() if judge else None,
            input_price=judge.prices.input_per_token if judge and judge.prices else None,
            output_price=judge.prices.output_per_token if judge and judge.prices else None,
            extra=dict(judge.extra or {}) if judge else {},
        )

    async def verify(self, ctx: VerifyContext) -> Verdict:
        answer = ctx.answer
        if answer is None:
            return Verdict(0.0, "self-verify: no answer to judge")
        judge = self.judge_spec(ctx)
        judgements: list[Completion] = []
        for index in range(self.samples):
            try:
                request = self.request(ctx.tier, ctx.query, answer, index, judge)
                judgements.append(await ctx.judge.complete(request))
            except ProviderError as exc:
                usage = Usage.of(judgements)
                return Verdict(0.0, f"self-verify judge failed: {exc}", usage=usage, details={"error": str(exc)})
        return _tally(judgements)


def _tally(judgements: list[Completion]) -> Verdict:
    votes = [yesno(j.text) for j in judgements]
    yes, no = votes.count("yes"), votes.count("no")
    confidence = yes / len(votes)
    reason = f"self-verify: {yes}/{len(votes)} judgements say yes"
    details = {"yes": yes, "no": no, "unclear": len(votes) - yes - no, "judge_model": judgements[0].model}
    return Verdict(confidence, reason, usage=Usage.of(judgements), details=details)


@register("verifier", "self_verify", SelfVerifyConfig)
def build_self_verify(config: SelfVerifyConfig, ctx: BuildContext) -> SelfVerifyVerifier:
    return SelfVerifyVerifier(config.model, config.samples, config.temperature, config.max_tokens, config.prompt)
