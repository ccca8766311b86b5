"""Ensemble tiers: several models answer the same prompt at once and their answers vote.

`vote` is the one decision rule, used live (an ensemble tier's generation) and offline (replaying
logged answers), so both decide identically: the answer with the largest summed weight wins, after
`cascade.io.answers.normalise` (so "Paris." and "paris" are one answer); members that failed or gave
no answer abstain; a tie goes to the answer of the member listed first. Weights that differ only by
floating-point rounding (0.1 + 0.2 against 0.3) count as tied. The vote's `share` is the winning
weight over the weight of every member called, abstainers included: the ensemble tier's default
confidence.

`generate` calls every member concurrently through the cascade's one completer (so its retries,
timeouts, cache and fake apply to each member) and returns one `EnsembleCompletion`: the voted
member's text, tokens and cost summed over all members, and every member's output. When every
member fails it raises `EnsembleFailedError` carrying the members, and the tier falls through.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cascade.errors import EnsembleFailedError, ProviderError
from cascade.io.answers import normalise
from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest, EnsembleCompletion, MemberOutput, MemberResult


@dataclass(frozen=True, slots=True)
class Vote:
    """A vote's outcome: the winning answer (as its first voter wrote it) and how strongly it won.

    `winner` is the index of the first member that gave the winning answer (None when every
    member abstained); `weight` is the winning answer's summed weight; `tally` maps each normalised
    answer to its summed weight, in the order the answers first appeared; `total` is the weight of
    every ballot, abstentions included.
    """

    answer: str | None
    winner: int | None
    weight: float
    share: float
    tally: dict[str, float]
    total: float


def vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Vote:
    """Weighted plurality of `answers` (None abstains); ties go to the answer listed first."""
    weights = [1.0] * len(answers) if weights is None else list(weights)
    if len(weights) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"weights must be finite and non-negative, got {weights}")
    tally: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, (answer, weight) in enumerate(zip(answers, weights, strict=True)):
        key = normalise(answer) if answer is not None else ""
        if key:
            tally[key] = math.fsum((tally.get(key, 0.0), weight))
            first.setdefault(key, index)
    total = math.fsum(weights)
    best: str | None = None
    for key, weight in tally.items():  # in order of first appearance, so a tie keeps the earlier
        if best is None or (weight > tally[best] and not math.isclose(weight, tally[best], rel_tol=1e-9)):
            best = key
    if best is None:
        return Vote(None, None, 0.0, 0.0, tally, total)
    winner, weight = first[best], tally[best]
    return Vote(answers[winner], winner, weight, min(1.0, weight / total) if total > 0 else 0.0, tally, total)


def agrees(answer: str | None, other: str | None) -> bool:
    """Whether two answers are the same answer for voting (None agrees with nothing)."""
    return answer is not None and other is not None and normalise(answer) == normalise(other) != ""


def vote_members(members: Sequence[MemberOutput]) -> Vote:
    """The vote of an ensemble's members, as the tier cast it."""
    return vote([m.answer for m in members], [m.weight for m in members])


async def generate(
    completer: Completer,
    requests: Sequence[CompletionRequest],
    weights: Sequence[float],
    read: Callable[[Completion], str | None],
) -> EnsembleCompletion:
    """Call every member at once, vote, and combine their usage into one completion.

    `read` is the tier's answer reader (its format, or the caller's JSON/tool contract).
    """
    started = time.perf_counter()
    outputs = await asyncio.gather(*(_call(completer, r, w, read) for r, w in zip(requests, weights, strict=True)))
    done = {i: o.completion for i, o in enumerate(outputs) if o.completion is not None}
    if not done:
        raise EnsembleFailedError(outputs)
    winner = vote_members(outputs).winner
    shown = done[winner if winner is not None else min(done)]
    return EnsembleCompletion(
        text=shown.text,
        model=shown.model,
        prompt_tokens=sum(c.prompt_tokens for c in done.values()),
        completion_tokens=sum(c.completion_tokens for c in done.values()),
        cost_usd=math.fsum(c.cost_usd for c in done.values()),
        latency_s=time.perf_counter() - started,
        token_logprobs=shown.token_logprobs,
        finish_reason=shown.finish_reason,
        tool_calls=shown.tool_calls,
        members=tuple(outputs),
    )


async def _call(
    completer: Completer, request: CompletionRequest, weight: float, read: Callable[[Completion], str | None]
) -> MemberOutput:
    started = time.perf_counter()
    try:
        completion = await completer.complete(request)
    except ProviderError as exc:
        return MemberOutput(request.model, weight, None, None, str(exc), time.perf_counter() - started)
    latency = time.perf_counter() - started
    return MemberOutput(request.model, weight, completion, read(completion), None, latency)


def member_results(members: Sequence[MemberOutput]) -> list[MemberResult]:
    """The members as the attempt records them (failed members cost nothing: providers bill none)."""
    return [
        MemberResult(
            model=m.model,
            weight=m.weight,
            answer=m.answer,
            prompt_tokens=m.completion.prompt_tokens if m.completion else 0,
            completion_tokens=m.completion.completion_tokens if m.completion else 0,
            cost_usd=m.completion.cost_usd if m.completion else 0.0,
            latency_s=m.latency_s,
            error=m.error,
        )
        for m in members
    ]
