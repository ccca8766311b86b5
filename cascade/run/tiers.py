"""A configured tier at run time: how it calls its model and how it records an attempt."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cascade.config.schema import ModelSpec, TierConfig
from cascade.errors import BudgetExceededError, EnsembleFailedError, ProviderError
from cascade.io.answers import answer_tokens, completion_pattern, extractor, openai_logprobs
from cascade.io.conversation import Conversation
from cascade.io.structured import Reading, unique_call_ids
from cascade.local.catalog import default_prices
from cascade.protocols import BudgetContext, BudgetPolicy, Completer, Verifier, VerifyContext
from cascade.run.ensemble import generate as generate_ensemble
from cascade.run.ensemble import member_results
from cascade.types import (
    Allotment,
    Attempt,
    Completion,
    CompletionRequest,
    Decision,
    EarlyExitTrace,
    EnsembleCompletion,
    Message,
    Usage,
    Verdict,
)


def build_messages(tier: TierConfig, chat: Conversation, budget_sentence: str | None = None) -> list[Message]:
    """The tier's prompt around the caller's conversation (the composition `cascade.io.conversation` documents).

    One system message (the tier's `system`, the caller's system messages, the JSON format
    instruction), the worked examples as chat turns, the history, the query in the tier's
    template (then the budget policy's sentence, after a blank line: the part that varies per
    query comes last, so a provider's prompt cache keeps the rest), then the turns after the query
    (tool calls and their results).

    The worked examples show short text answers to a question asked from scratch: they are left
    out of a structured request (JSON, tools) and of a turn that goes on after the question (a
    tool's result to answer from), where a small model would copy them (local.yaml's "42").
    """
    prompt = tier.prompt
    system = [part for part in (prompt.system, chat.system, chat.output.instruction()) if part]
    messages: list[Message] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    for example in () if chat.output.structured or chat.after else prompt.examples:
        messages.append({"role": "user", "content": prompt.template.replace("{query}", example.question)})
        messages.append({"role": "assistant", "content": example.answer})
    messages.extend(dict(m) for m in chat.history)
    turn = prompt.template.replace("{query}", chat.query) + (f"\n\n{budget_sentence}" if budget_sentence else "")
    messages.append({**chat.messages[chat.query_index], "content": turn})
    messages.extend(dict(m) for m in chat.after)
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
    """One tier with its completer, verifier and answer extractor bound together.

    `specs` are the models the tier calls: one, or an ensemble's members (`cascade.run.ensemble`).
    """

    config: TierConfig
    completer: Completer
    verifier: Verifier
    judge: Completer
    extract: Callable[[str], str | None]
    specs: list[ModelSpec] = field(default_factory=list)
    verifier_type: str | None = None  # the config's `type:` of `verifier`, shown with its verdicts
    budget_policy: BudgetPolicy | None = None  # sets max_tokens (and how the model is told) per query

    def __post_init__(self) -> None:
        self.specs = self.specs or self.config.member_specs()

    @classmethod
    def build(
        cls,
        config: TierConfig,
        completer: Completer,
        verifier: Verifier,
        verifier_type: str | None = None,
        budget_policy: BudgetPolicy | None = None,
    ) -> TierRuntime:
        read = extractor(config.answer)
        return cls(
            config, completer, verifier, completer, read, verifier_type=verifier_type, budget_policy=budget_policy
        )

    def allot(self, query: str, tier_index: int, previous: Sequence[Attempt]) -> Allotment:
        """This query's token budget: the budget policy's, else the tier's `max_tokens`."""
        if self.budget_policy is None:
            return Allotment(self.config.max_tokens)
        return self.budget_policy.allot(BudgetContext(query, self.config, tier_index, tuple(previous)))

    def request(
        self, spec: ModelSpec, chat: Conversation, *, max_tokens: int, index: int, allotment: Allotment | None = None
    ) -> CompletionRequest:
        """The call of one of the tier's models (`spec`: its endpoint, key and prices) for sample `index`,
        under `allotment` (its budget sentence and reasoning knob; the cap is `max_tokens`).

        A structured request (JSON, tools) drops the tier's stop sequences and answer-format early
        stop: they are made for short text answers and would cut a JSON object or a tool call short.
        The caller's own stop sequences and logprobs apply to every call.
        """
        tier, output = self.config, chat.output
        given = spec.prices
        prices = (given.input_per_token, given.output_per_token) if given else default_prices(spec.model)
        sentence, knobs = (allotment.sentence, allotment.extra) if allotment is not None else (None, {})
        stop = () if output.structured else tuple(tier.stop)
        logprobs = tier.logprobs or output.logprobs is not None
        return CompletionRequest(
            model=spec.model,
            messages=build_messages(tier, chat, sentence),
            max_tokens=max_tokens,
            temperature=tier.temperature if index == 0 else tier.sample_temperature,
            stop=tuple(dict.fromkeys([*stop, *output.stop])),
            seed=sample_seed(tier.seed, chat.query, index),
            logprobs=logprobs,
            timeout_s=tier.timeout_s,
            api_base=spec.resolved_api_base(),
            api_key=spec.resolved_api_key(),
            input_price=prices[0] if prices else None,
            output_price=prices[1] if prices else None,
            stop_pattern=None if output.structured else completion_pattern(tier.answer),
            extra={**(spec.extra or {}), **knobs},
            response_format=output.response_format,
            tools=output.tools if output.may_call_tools else (),
            tool_choice=output.tool_choice if output.may_call_tools else None,
            top_logprobs=max(tier.top_logprobs if tier.logprobs else 0, output.logprobs or 0),
            early_exit=tier.early_exit,
        )

    def requests(
        self, chat: Conversation, *, max_tokens: int, index: int, allotment: Allotment | None = None
    ) -> list[CompletionRequest]:
        """Sample `index`'s calls: one per model of the tier (an ensemble's members)."""
        return [
            self.request(spec, chat, max_tokens=max_tokens, index=index, allotment=allotment) for spec in self.specs
        ]

    async def sample(
        self,
        chat: Conversation,
        *,
        max_tokens: int,
        index: int,
        on_text: Callable[[str], None] | None = None,
        allotment: Allotment | None = None,
    ) -> Completion:
        """Sample `index` 0 is the tier's greedy answer; later ones are drawn for voting."""
        requests = self.requests(chat, max_tokens=max_tokens, index=index, allotment=allotment)
        return await self.call(requests, chat, on_text=on_text)

    async def call(
        self, requests: Sequence[CompletionRequest], chat: Conversation, *, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        """Make a sample's calls (built by `requests`, capped by the budget).

        An ensemble tier calls every member at once and returns their vote (an EnsembleCompletion).
        `on_text` gets a single model's text as it is written (see `streams_live`).
        """
        if not self.config.is_ensemble:
            return await self.completer.complete(replace(requests[0], on_text=on_text))
        weights = [spec.weight for spec in self.specs]
        return await generate_ensemble(self.completer, requests, weights, lambda c: self.read(c, chat).answer)

    def streams_live(self, chat: Conversation) -> bool:
        """Whether this tier's text can be streamed as written when its answer is final: one model
        (an ensemble's answer is a vote), answering in text (JSON and tool calls are checked whole
        first), without logprobs (they come with the whole answer)."""
        return not self.config.is_ensemble and not chat.output.structured and chat.output.logprobs is None

    def read(self, completion: Completion, chat: Conversation) -> Reading:
        """The completion's answer under the caller's output contract (the tier's format for text)."""
        return chat.output.read(completion, self.extract)

    async def verify(
        self,
        chat: Conversation,
        first: Completion,
        *,
        tier_index: int,
        previous: list[Attempt],
        max_tokens: int,
        before_draw: Callable[[list[Completion]], None] | None = None,
        allotment: Allotment | None = None,
    ) -> tuple[list[Completion], Verdict, str | None]:
        """Judge the first sample with the tier's verifier, which may draw more (all returned).

        `before_draw` sees the samples so far and may refuse another (e.g. BudgetExceededError).
        Returns every sample, the verdict and the answer: the verifier's vote, else the first's.
        """
        samples, answers = [first], [self.read(first, chat).answer]

        async def draw() -> tuple[Completion, str | None]:
            if before_draw is not None:
                before_draw(samples)
            completion = await self.sample(chat, max_tokens=max_tokens, index=len(samples), allotment=allotment)
            samples.append(completion)
            answers.append(self.read(completion, chat).answer)
            return completion, answers[-1]

        extract = self.extract
        if chat.output.structured:
            extract = lambda text: chat.output.read_text(text, self.extract).answer  # noqa: E731
        members = list(first.members) if isinstance(first, EnsembleCompletion) else []
        ctx = VerifyContext(
            query=chat.query,
            tier=self.config,
            tier_index=tier_index,
            samples=samples,
            answers=answers,
            previous=previous,
            draw=draw,
            judge=self.judge,
            extract=extract,
            conversation=chat,
            members=members,
        )
        verdict = await self.verifier.verify(ctx)
        return samples, verdict, verdict.answer if verdict.answer is not None else answers[0]

    def answer_details(self, samples: list[Completion], answer: str | None, chat: Conversation) -> dict[str, Any]:
        """What an attempt records of the sample behind `answer` (the first whose reading it is): its
        tool calls (ids unique in the conversation), why the model stopped, and the answer's token logprobs
        when the caller asked for them."""
        for sample in samples if answer is not None else ():
            reading = self.read(sample, chat)
            if reading.answer != answer:
                continue
            details: dict[str, Any] = {"finish_reason": sample.finish_reason}
            if chat.output.may_call_tools and reading.tool_calls:
                details["tool_calls"] = unique_call_ids(reading.tool_calls, chat.tool_call_ids)
            wanted = chat.output.logprobs
            if wanted is not None and sample.tokens is not None and sample.token_logprobs is not None:
                last = self.config.answer.format == "final"
                spelled = "" if reading.tool_calls else reading.answer or ""  # tool calls: every token
                positions = answer_tokens(sample.tokens, spelled, last=last)
                details["logprobs"] = openai_logprobs(
                    sample.tokens, sample.token_logprobs, sample.top_logprobs, positions, wanted
                )
            return details
        return {}

    def attempt(
        self,
        samples: list[Completion],
        verdict: Verdict,
        answer: str | None,
        decision: Decision,
        started: float,
        details: Mapping[str, Any] | None = None,
    ) -> Attempt:
        """The attempt's record; `details` (`answer_details`) are those of the sample behind the answer."""
        usage = Usage.of(samples) + verdict.usage
        first = samples[0]
        return Attempt(
            tier=self.config.name,
            model=self.config.label,
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
            members=member_results(first.members) if isinstance(first, EnsembleCompletion) else [],
            early_exit=EarlyExitTrace.of(samples[0], self.config.max_tokens) if self.config.early_exit else None,
            verifier=self.verifier_type,
            **(details or {}),
        )

    def invalid_attempt(self, first: Completion, why: str, chat: Conversation, started: float) -> Attempt:
        """An output that breaks the requested format: no answer, no verifier call, escalate."""
        decision = Decision("escalate", f"invalid {chat.output.kind} output: {why}")
        record = self.attempt([first], Verdict(0.0, ""), None, decision, started)
        return record.model_copy(update={"invalid": why, "verifier": None})

    def truncated_attempt(self, first: Completion, chat: Conversation, started: float, max_tokens: int) -> Attempt:
        """An answer cut off at the token cap (`finish_reason: length`): it is kept, but not judged,
        and the query escalates to a tier with a bigger budget."""
        why = f"truncated: the answer hit max_tokens={max_tokens} (finish_reason length); a bigger budget next"
        answer = self.read(first, chat).answer
        record = self.attempt([first], Verdict(0.0, ""), answer, Decision("escalate", why), started)
        return record.model_copy(update={"confidence": None, "verifier": None})

    def failed_attempt(self, error: str | ProviderError, started: float) -> Attempt:
        """The attempt of a tier whose call failed (after retries); an ensemble's lists each member's error."""
        members = error.members if isinstance(error, EnsembleFailedError) else ()
        return Attempt(
            tier=self.config.name,
            model=self.config.label,
            answer=None,
            latency_s=time.perf_counter() - started,
            decision="failed",
            reason=f"{'over budget' if isinstance(error, BudgetExceededError) else 'provider failed'}: {error}",
            error=str(error),
            members=member_results(members),
        )
