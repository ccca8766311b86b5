"""Serving smaller caps from one greedy recording: under greedy decoding a cap changes nothing but
where generation stops, so a request with a smaller cap is the recording's first tokens."""

from __future__ import annotations

from dataclasses import replace

from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest


class NotRecorded(Exception):
    """The output cache holds no output for this request, and nothing may be called."""


class RecordedOnly:
    """The inner completer of a cache that must not call any model."""

    async def complete(self, request: CompletionRequest) -> Completion:
        raise NotRecorded(request.model)


class CappedReplay:
    """Greedy requests with a cap below `record_cap` are served from (or recorded at) `record_cap`
    and cut; `cache` is a `CachingCompleter` over a live completer or `RecordedOnly`."""

    def __init__(self, cache: Completer, record_cap: int) -> None:
        self.cache, self.record_cap = cache, record_cap
        self.derived = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        if request.temperature != 0 or request.max_tokens >= self.record_cap:
            return await self.cache.complete(request)
        recorded = await self.cache.complete(replace(request, max_tokens=self.record_cap))
        cut = truncated(recorded, request.max_tokens)
        if cut is None:
            return await self.cache.complete(request)
        self.derived += cut is not recorded
        return priced(cut, request)


def priced(completion: Completion, request: CompletionRequest) -> Completion:
    """The completion's cost at the request's prices (a replay changes its token counts)."""
    cost = completion.prompt_tokens * (request.input_price or 0.0)
    return replace(completion, cost_usd=cost + completion.completion_tokens * (request.output_price or 0.0))


def truncated(completion: Completion, cap: int) -> Completion | None:
    """`completion` as a call with `cap` would have ended it; None when the recording cannot say
    (its kept tokens must spell its text: a split UTF-8 character has no exact cut)."""
    if completion.completion_tokens <= cap:
        return completion
    tokens = [position[0][0] for position in completion.top_logprobs or () if position]
    if len(tokens) < cap or not "".join(tokens).startswith(completion.text):
        return None
    return replace(
        completion,
        text="".join(tokens[:cap]),
        completion_tokens=cap,
        finish_reason="length",
        token_logprobs=completion.token_logprobs[:cap] if completion.token_logprobs else None,
        top_logprobs=completion.top_logprobs[:cap],
    )
