"""Every tier's cached output on a family's split, as the calibration and the benchmark read them.

Outputs come from the shared output cache that `local_collect.py` filled, through a completer that
refuses to call any model: an item some tier has no output for yet is left out (and counted), so
analysis can run while collection goes on, and never pays for a call.

The reasoning tier was collected with answer probes recorded but never acted on (`early_exit:
stop: false`). Its full reasoning is that completion minus its probes (probes are rolled back, so
the reasoning text is the one an unprobed run generates: `tests/integration/test_local_probing.py`),
and any exit rule is replayed from the recorded probes (`exit_at`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.support.capped_replay import priced
from benchmarks.support.local_families import FAMILIES, splits
from cascade import load_config
from cascade.config.schema import EarlyExitConfig
from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.io.conversation import conversation_of
from cascade.io.exact_match import exact_match
from cascade.local.decoding import converged
from cascade.protocols import Completer
from cascade.run.tiers import TierRuntime
from cascade.types import Completion, CompletionRequest, Probe

COLLECT_CONFIG = Path(__file__).resolve().parent / "local_collect.yaml"
DEFAULT_CACHE = Path("/work/cache/local/default.sqlite")
QUICK = ("smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b")
THINK = "qwen2.5-1.5b-think"
TIERS = (*QUICK, THINK)


def tier_runtime(config_path: Path, name: str, completer: Completer) -> TierRuntime:
    """A tier of the config that only samples (collection never verifies)."""
    config = load_config(config_path)
    tier = config.tiers[config.tier_index(name)]
    return TierRuntime.build(tier, completer, verifier=None)  # type: ignore[arg-type]


class NotCollected(Exception):
    """The output cache has no output for this request (yet)."""


class CacheOnly:
    async def complete(self, request: CompletionRequest) -> Completion:
        raise NotCollected(request.model)


class ReplayedExit:
    """A completer for the cascade under test: answers from the output cache only, and the
    reasoning tier from its run collected with probes recorded (`recorded`: the collection's
    probing, `stop: false`): with an exit rule (`early_exit.stop`) by replaying the rule as
    `exit_at` does, without probing as that run minus its probes (`without_probes`). What was
    never collected raises `NotCollected`.

    The rule must probe where the recording did (same `every`, `suffix`, `max_tokens`) with a floor
    at least the recording's, else the replay would not be what a live run does: refused.
    """

    def __init__(self, cache: Completer, recorded: EarlyExitConfig, budgets: Sequence[int] = ()) -> None:
        self.cache = cache
        self.recorded = recorded
        self.budgets = sorted(budgets)

    async def complete(self, request: CompletionRequest) -> Completion:
        """A request whose token cap the cascade's budget lowered is served by the output collected
        with a larger cap (`budgets`) when that output stopped within the lower one: greedy
        decoding makes the same tokens, and a cap never reached changes nothing."""
        try:
            return await self._replayed(request)
        except NotCollected:
            for budget in (b for b in self.budgets if b > request.max_tokens):
                try:
                    longer = await self._replayed(replace(request, max_tokens=budget))
                except NotCollected:
                    continue
                if longer.completion_tokens <= request.max_tokens:
                    return longer
            raise

    async def _replayed(self, request: CompletionRequest) -> Completion:
        rule = request.early_exit
        if rule is None:
            try:
                return await self.cache.complete(request)
            except NotCollected:
                probed = await self.cache.complete(replace(request, early_exit=self.recorded))
                return priced(without_probes(probed), request)
        if not rule.stop:
            return await self.cache.complete(request)
        same = ("every", "suffix", "max_tokens")
        if any(getattr(rule, k) != getattr(self.recorded, k) for k in same) or rule.min_prob < self.recorded.min_prob:
            raise ValueError(f"exit rule {rule} cannot be replayed on probes recorded with {self.recorded}")
        recorded = await self.cache.complete(replace(request, early_exit=self.recorded))
        e = exit_at(recorded, rule)
        reason = "early_exit" if e.exited else recorded.finish_reason
        probes = tuple(as_live(p, rule.min_prob) for p in recorded.probes[: e.probes])
        replayed = replace(
            recorded,
            text=e.text,
            prompt_tokens=e.prompt_tokens,
            completion_tokens=e.completion_tokens,
            token_logprobs=None,
            top_logprobs=None,
            finish_reason=reason,
            probes=probes,
        )
        return priced(replayed, request)


@dataclass(frozen=True)
class Output:
    """One tier's answer to one item: the completion, the extracted answer, whether it is right."""

    completion: Completion
    answer: str | None
    correct: bool
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.completion.total_tokens


@dataclass(frozen=True)
class ItemOutputs:
    """An item and each tier's output; the reasoning tier's is its full reasoning (probes taken out),
    `recorded` the completion as collected, with its probes."""

    family: str
    item: Item
    query: str
    outputs: dict[str, Output]
    recorded: Completion | None = None


def without_probes(completion: Completion) -> Completion:
    """The full reasoning's own completion: a recorded-probes run minus what its probes cost."""
    probes = completion.probes
    return replace(
        completion,
        prompt_tokens=completion.prompt_tokens - sum(p.prompt_tokens for p in probes),
        completion_tokens=completion.completion_tokens - sum(p.completion_tokens for p in probes),
        probes=(),
    )


def price(tier: TierRuntime, completion: Completion) -> float:
    prices = tier.config.prices
    assert prices is not None, "every local tier has prices"
    return completion.prompt_tokens * prices.input_per_token + completion.completion_tokens * prices.output_per_token


def output_of(tier: TierRuntime, completion: Completion, item: Item) -> Output:
    answer = tier.extract(completion.text)
    return Output(completion, answer, exact_match(answer, item.answers, item.task), price(tier, completion))


async def _load(family: str, split: str, tiers: Sequence[str], cache: CachingCompleter) -> list[ItemOutputs]:
    runtimes = {name: tier_runtime(COLLECT_CONFIG, name, cache) for name in tiers}
    calibration, report = splits(FAMILIES[family])
    rows = []
    for item in calibration if split == "calibration" else report:
        query = FAMILIES[family].query(item)
        outputs, recorded = {}, None
        for name, tier in runtimes.items():
            try:
                completion = await tier.sample(conversation_of(query), max_tokens=tier.config.max_tokens, index=0)
            except NotCollected:
                continue
            if name == THINK:
                recorded, completion = completion, without_probes(completion)
            outputs[name] = output_of(tier, completion, item)
        rows.append(ItemOutputs(family, item, query, outputs, recorded))
    return rows


def load(family: str, split: str, tiers: Sequence[str] = TIERS, cache_path: Path = DEFAULT_CACHE) -> list[ItemOutputs]:
    """Each item of the split with every tier's output that has been collected."""
    cache = CachingCompleter(CacheOnly(), cache_path)
    try:
        return asyncio.run(_load(family, split, tiers, cache))
    finally:
        cache.close()


def complete(rows: Sequence[ItemOutputs], tiers: Sequence[str]) -> list[ItemOutputs]:
    """The items every one of `tiers` has answered."""
    return [row for row in rows if all(t in row.outputs for t in tiers)]


@dataclass(frozen=True)
class Exit:
    """Where a replayed exit rule stops a recorded reasoning: its text and the tokens it spent."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    exited: bool
    probes: int


def exit_at(recorded: Completion, rule: EarlyExitConfig) -> Exit:
    """Replay `rule` on a reasoning recorded with probes (whose floor was at most `rule.min_prob`).

    Probes happen at the same places (same `every` and suffix); a live probe is cut at its first
    token below `rule.min_prob`, so its cost is counted up to that token. Without an exit, the
    result is the full reasoning plus the probes it paid for.
    """
    full = without_probes(recorded)
    kept: list[Probe] = []
    for probe in recorded.probes:
        kept.append(as_live(probe, rule.min_prob))
        if rule.stop and converged(kept, rule):
            reasoning = probe.at_token - full.prompt_tokens
            text = recorded.text[: probe.at_char] + f"{rule.suffix} {kept[-1].answer}."
            return Exit(text, *_with(kept, full.prompt_tokens, reasoning), True, len(kept))
    return Exit(recorded.text, *_with(kept, full.prompt_tokens, full.completion_tokens), False, len(kept))


def _with(probes: Sequence[Probe], prompt: int, reasoning: int) -> tuple[int, int]:
    return prompt + sum(p.prompt_tokens for p in probes), reasoning + sum(p.completion_tokens for p in probes)


def as_live(probe: Probe, floor: float) -> Probe:
    """The probe as a live run with this floor makes it: cut at its first token below the floor."""
    if floor <= 0:
        return probe
    below = next((i for i, lp in enumerate(probe.logprobs) if lp < math.log(floor)), None)
    if below is None:
        return probe
    tokens = min(probe.completion_tokens, below + 1)
    return replace(probe, logprobs=probe.logprobs[: below + 1], completion_tokens=tokens, complete=False)
