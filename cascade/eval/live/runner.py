"""Live evaluation: every tier alone and the whole cascade on the same items, through one cache.

Each tier is first run alone on every item (the baselines, and a log that `cascade replay` can
re-analyse); then the cascade runs on the same items through the same cache, so its tier calls
are the very outputs the baselines saw and cost nothing the second time. Re-running an
evaluation, or tuning thresholds on it, calls no model again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cascade.completers import progress
from cascade.errors import ProviderError
from cascade.eval.data.items import Item
from cascade.eval.data.logs import LogItem, LogTable, TierLog
from cascade.io.conversation import conversation_of
from cascade.io.exact_match import exact_match
from cascade.run.engine import Cascade
from cascade.run.tiers import TierRuntime
from cascade.types import CascadeResult

Progress = Callable[[str, int], None]


@dataclass
class EvalRun:
    """Per-tier outputs (as a replayable log) and the cascade's own results, item by item."""

    items: list[Item]
    log: LogTable
    results: list[CascadeResult]
    correct: list[bool]


def query_of(item: Item, template: str | None) -> str:
    """The text sent to the cascade: the item's prompt, optionally inside a dataset template."""
    return template.replace("{question}", item.prompt) if template else item.prompt


async def run_tier_alone(tier: TierRuntime, item: Item, query: str) -> TierLog:
    """One tier's greedy answer to one item, scored and judged by the tier's own verifier, under
    the budget its budget policy gives the query when the tier answers first."""
    allotment, chat = tier.allot(query, 0, []), conversation_of(query)
    progress.tier_called(tier.config.name, tier.config.label)
    try:
        first = await tier.sample(chat, max_tokens=allotment.max_tokens, index=0, allotment=allotment)
    except ProviderError:
        # A failed call answers nothing: scored wrong, costing what the provider billed (nothing).
        return TierLog(correct=False, cost_usd=0.0, tokens=0, answer=None, confidence=0.0)
    samples, verdict, answer = await tier.verify(
        chat, first, tier_index=0, previous=[], max_tokens=allotment.max_tokens, allotment=allotment
    )
    tokens = sum(s.total_tokens for s in samples) + verdict.usage.prompt_tokens + verdict.usage.completion_tokens
    cost = sum(s.cost_usd for s in samples) + verdict.usage.cost_usd
    correct = exact_match(answer, item.answers, item.task)
    return TierLog(correct, cost, tokens, answer, verdict.confidence, first.completion_tokens)


async def evaluate(
    cascade: Cascade,
    items: Sequence[Item],
    *,
    template: str | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> EvalRun:
    """Run each tier alone, then the cascade, on `items`; `progress(stage, done)` after each item."""
    gate = asyncio.Semaphore(concurrency)
    tiers = cascade.graph.tiers
    rows = await run_tiers_alone(cascade, items, template=template, concurrency=concurrency, progress=progress)

    async def whole(i: int) -> CascadeResult:
        async with gate:
            result = await cascade.arun(query_of(items[i], template))
        if progress:
            progress("cascade", 1)
        return result

    results = list(await asyncio.gather(*(whole(i) for i in range(len(items)))))
    correct = score_results(results, items)
    log_items = [
        LogItem(item.id, query_of(item, template), row, item.task) for item, row in zip(items, rows, strict=True)
    ]
    log = LogTable([t.config.name for t in tiers], log_items, source=cascade.config.name, fmt="cascade")
    return EvalRun(list(items), log, results, correct)


async def run_tiers_alone(
    cascade: Cascade,
    items: Sequence[Item],
    *,
    template: str | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> list[dict[str, TierLog]]:
    """Per item, each tier's answer alone (tier by tier, so a tier's calls finish before the next's)."""
    gate = asyncio.Semaphore(concurrency)
    rows: list[dict[str, TierLog]] = [{} for _ in items]

    async def alone(i: int, tier: TierRuntime) -> None:
        async with gate:
            rows[i][tier.config.name] = await run_tier_alone(tier, items[i], query_of(items[i], template))
        if progress:
            progress(tier.config.name, 1)

    for tier in cascade.graph.tiers:
        await asyncio.gather(*(alone(i, tier) for i in range(len(items))))
    return rows


def score_results(results: Sequence[CascadeResult], items: Sequence[Item]) -> list[bool]:
    """Exact match of each result's answer against its item's gold answers."""
    return [exact_match(r.answer, item.answers, item.task) for r, item in zip(results, items, strict=True)]


def cache_path_for(config_source: str | None, dataset: str | Path, root: Path | None = None) -> Path:
    """One cache file per config and dataset, under `.cascade-cache/` of the working directory."""
    name = f"{Path(config_source or 'cascade').stem}--{Path(dataset).stem}.sqlite"
    return (root or Path(".cascade-cache")) / name
