"""A configured tier at run time: how it calls its model and how it records an attempt."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from cascade.answers import completion_pattern, extractor
from cascade.config import TierConfig
from cascade.protocols import Completer, Verifier, VerifyContext
from cascade.types import Attempt, Completion, CompletionRequest, Decision, Message, Usage, Verdict


def build_messages(tier: TierConfig, query: str) -> list[Message]:
    """System prompt, worked examples as chat turns, then the query in the tier's template."""
    prompt = tier.prompt
    messages: list[Message] = [{"role": "system", "content": prompt.system}] if prompt.system else []
    for example in prompt.examples:
        messages.append({"role": "user", "content": prompt.template.replace("{query}", example.question)})
        messages.append({"role": "assistant", "content": example.answer})
    messages.append({"role": "user", "content": prompt.template.replace("{query}", query)})
    return messages


def sample_seed(base: int | None, query: str, index: int) -> int | None:
    """Seed of sample `index` for `query`: the tier's own seed for the first (greedy) sample; for
    the samples drawn for voting, one mixed with the query, so sample i of one question does not
    share its random draws with sample i of every other question (that would correlate items and
    invalidate intervals computed over them)."""
    if index == 0:
        return base
    return ((base or 0) + zlib.crc32(query.encode("utf-8")) + index) % (1 << 31)


@dataclass
class TierRuntime:
    """One tier with its completer, verifier and answer extractor bound together."""

    config: TierConfig
    completer: Completer
    verifier: Verifier
    judge: Completer
    extract: Callable[[str], str | None]

    @classmethod
    def build(cls, config: TierConfig, completer: Completer, verifier: Verifier) -> TierRuntime:
        return cls(config, completer, verifier, completer, extractor(config.answer))

    async def sample(self, query: str, *, max_tokens: int, index: int) -> Completion:
        """Sample `index` 0 is the tier's greedy answer; later ones are drawn for voting."""
        tier = self.config
        seed = sample_seed(tier.seed, query, index)
        request = CompletionRequest(
            model=tier.model,
            messages=build_messages(tier, query),
            max_tokens=max_tokens,
            temperature=tier.temperature if index == 0 else tier.sample_temperature,
            stop=tuple(tier.stop),
            seed=seed,
            logprobs=tier.logprobs,
            timeout_s=tier.timeout_s,
            api_base=tier.resolved_api_base(),
            api_key=tier.resolved_api_key(),
            input_price=tier.prices.input_per_token if tier.prices else None,
            output_price=tier.prices.output_per_token if tier.prices else None,
            stop_pattern=completion_pattern(tier.answer),
            extra=dict(tier.extra),
        )
        return await self.completer.complete(request)

    async def verify(
        self,
        query: str,
        first: Completion,
        *,
        tier_index: int,
        previous: list[Attempt],
        max_tokens: int,
        before_draw: Callable[[list[Completion]], None] | None = None,
    ) -> tuple[list[Completion], Verdict, str | None]:
        """Judge the first sample with the tier's verifier, which may draw more (all returned).

        `before_draw` sees the samples so far and may refuse another (e.g. BudgetExceededError).
        Returns every sample, the verdict and the answer: the verifier's vote, else the first's.
        """
        samples, answers = [first], [self.extract(first.text)]

        async def draw() -> tuple[Completion, str | None]:
            if before_draw is not None:
                before_draw(samples)
            completion = await self.sample(query, max_tokens=max_tokens, index=len(samples))
            samples.append(completion)
            answers.append(self.extract(completion.text))
            return completion, answers[-1]

        ctx = VerifyContext(query, self.config, tier_index, samples, answers, previous, draw, self.judge, self.extract)
        verdict = await self.verifier.verify(ctx)
        return samples, verdict, verdict.answer if verdict.answer is not None else answers[0]

    def attempt(
        self, samples: list[Completion], verdict: Verdict, answer: str | None, decision: Decision, started: float
    ) -> Attempt:
        usage = Usage.of(samples) + verdict.usage
        return Attempt(
            tier=self.config.name,
            model=self.config.model,
            answer=answer,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_s=time.perf_counter() - started,
            model_latency_s=sum(s.latency_s for s in samples),
            confidence=verdict.confidence,
            threshold=decision.threshold,
            decision=decision.action,
            reason=f"{verdict.reason}; {decision.reason}" if verdict.reason else decision.reason,
            samples=len(samples),
            samples_saved=verdict.samples_saved or 0,
            verifier_details=verdict.details,
        )

    def failed_attempt(self, error: str, started: float) -> Attempt:
        return Attempt(
            tier=self.config.name,
            model=self.config.model,
            answer=None,
            latency_s=time.perf_counter() - started,
            decision="failed",
            reason=f"provider failed: {error}",
            error=error,
        )
