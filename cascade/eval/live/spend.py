"""What calling every tier on a set of prompts may cost, and a cap that stops the calls before they spend more.

The estimate is the worst case of every call the output cache cannot answer: its prompt at a bound
no tokenizer exceeds and its answer at the tier's `max_tokens`, at the tier's prices (the budgets'
own arithmetic, `cascade.metering`). The cap sits beneath the cache, so outputs already paid for
cost nothing, and each call reserves its worst case before it is made: a call that no longer fits
is not made, and the run stops with its outputs so far cached (a rerun with a larger cap resumes).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cascade.budget.metering import MemoryAccount, MeteredCompleter, cut_off_in_flight
from cascade.errors import BudgetExceededError, CallOverBudgetError
from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.runner import query_of
from cascade.io.conversation import conversation_of
from cascade.protocols import Completer
from cascade.run.engine import Cascade
from cascade.types import Completion, CompletionRequest, Usage


@dataclass(frozen=True)
class SpendEstimate:
    """The greedy calls of every tier on every prompt: how many, how many cached, their worst-case cost."""

    calls: int
    cached: int
    worst_usd: float
    unpriced: tuple[str, ...] = ()

    def describe(self) -> str:
        text = (
            f"{self.calls} model calls ({self.cached} already in the output cache): at most ${self.worst_usd:.4g} "
            "(every prompt at its token bound, every answer at max_tokens; a verifier's samples or judge calls "
            "come on top)"
        )
        if self.unpriced:
            text += f"; no price known for {', '.join(self.unpriced)}: counted as free"
        return text


def estimate_spend(
    cascade: Cascade, items: Sequence[Item], template: str | None, cache: CachingCompleter
) -> SpendEstimate:
    """The worst case of each tier's greedy call on each item that the cache does not hold."""
    meter = MeteredCompleter(cache.inner)
    calls = cached = 0
    worst: list[float] = []
    unpriced: set[str] = set()
    for tier in cascade.graph.tiers:
        for item in items:
            chat = conversation_of(query_of(item, template))
            for spec in tier.specs:
                request = tier.request(spec, chat, max_tokens=tier.config.max_tokens, index=0)
                calls += 1
                if cache.holds(request):
                    cached += 1
                    continue
                ask = meter.ask(request)
                if ask.input_price == ask.output_price == 0.0:
                    unpriced.add(request.model)
                worst.append(ask.usage(ask.max_completion).cost_usd)
    return SpendEstimate(calls, cached, math.fsum(worst), tuple(sorted(unpriced)))


class SpendCapReached(BudgetExceededError):
    """A call was not made: its worst case would have taken the spend past the cap."""


class SpendCap:
    """A completer for beneath the output cache: each call that reaches the provider reserves its worst
    case from one account first; `calls` counts the calls made, `spent` what they cost."""

    def __init__(self, inner: Completer, max_cost_usd: float | None = None):
        self.inner = inner
        self.meter = MeteredCompleter(inner)
        self.account = MemoryAccount("--max-cost-usd", max_cost_usd=max_cost_usd)
        self.calls = 0

    @property
    def spent(self) -> float:
        return self.account.spent.cost_usd

    async def complete(self, request: CompletionRequest) -> Completion:
        ask = self.meter.ask(request)
        try:
            hold = await self.account.reserve(ask)
        except CallOverBudgetError:
            raise self._reached(request) from None
        if hold.cap < request.max_tokens:  # a shorter answer would be cached as this request's: refuse instead
            await self.account.settle(hold, Usage())
            raise self._reached(request)
        self.calls += 1
        try:
            completion = await self.inner.complete(request)
        except BaseException as exc:
            await asyncio.shield(self.account.settle(hold, hold.usage if cut_off_in_flight(exc) else Usage()))
            raise
        usage = Usage(completion.prompt_tokens, completion.completion_tokens, completion.cost_usd)
        await self.account.settle(hold, usage)
        return completion

    def _reached(self, request: CompletionRequest) -> SpendCapReached:
        cap = self.account.max_cost_usd or 0.0
        return SpendCapReached(
            f"stopped before a call to {request.model} that could take the spend past --max-cost-usd {cap:g}: "
            f"${self.spent:.4g} spent on {self.calls} call(s), whose outputs are cached (a rerun with a larger cap "
            "or a smaller --limit goes on from them)"
        )
