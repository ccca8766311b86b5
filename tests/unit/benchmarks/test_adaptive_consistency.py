"""The adaptive self-consistency benchmark's own logic: claim rule, paired figures, cache reuse."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.types import Completion, CompletionRequest
from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("adaptive_consistency")


class SeedScript:
    """Answers '7' except on the seeds listed in `wrong`; counts calls."""

    def __init__(self, wrong: set[int]) -> None:
        self.wrong = wrong
        self.calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        text = "3 + 5 = 8" if request.seed in self.wrong else "3 + 4 = 7"
        return Completion(text, request.model, 10, 5)


def test_claim_rule() -> None:
    assert bench.claim_holds(0.5, [0.4, 0.6], 16, 8)
    assert not bench.claim_holds(0.5, [0.4, 0.6], 16, 8.5)  # less than 2x fewer samples
    assert not bench.claim_holds(0.35, [0.4, 0.6], 16, 4)  # outside fixed-k's interval


def test_paired_difference() -> None:
    fixed = bench.Run([True, True, False, False], [4] * 4, [1] * 4)
    adaptive = bench.Run([True, False, False, True], [2] * 4, [1] * 4)
    diff, interval = bench.paired_difference(adaptive, fixed, seed=0)
    assert diff == 0.0 and interval[0] <= 0.0 <= interval[1]


def test_item_seeds() -> None:
    a, b = Item("a-1", "q", ["7"], "number"), Item("a-2", "q", ["7"], "number")
    assert bench.item_seed(a, "shared") == bench.item_seed(b, "shared") == bench.TIER_SEED
    assert bench.item_seed(a, "item") != bench.item_seed(b, "item")
    assert bench.item_seed(a, "item") == bench.item_seed(a, "item")


@pytest.mark.parametrize("seeding", ["shared", "item"])
def test_adaptive_reads_a_prefix_of_the_fixed_samples(tmp_path: Path, seeding: str) -> None:
    items = [Item(f"x-{i}", f"question {i}?", ["7"], "number") for i in range(3)]
    script = SeedScript(wrong=set())
    cache = CachingCompleter(script, tmp_path / "c.sqlite")
    preset = bench.PRESETS["singleeq"]

    def method(k: int, low: int, stopping: dict[str, object]) -> bench.ConfigFor:
        return lambda seed: bench.build_config(preset, "fake/m", k, low, stopping, seed=seed)

    fixed = asyncio.run(bench.run_method(method(8, 8, {"rule": "fixed"}), cache, items, seeding))
    assert fixed.samples == [8, 8, 8] and fixed.correct == [True] * 3
    misses = cache.misses
    beta = asyncio.run(bench.run_method(method(8, 2, {"rule": "beta"}), cache, items, seeding))
    window = asyncio.run(bench.run_method(method(8, 2, {"rule": "window", "window": 4}), cache, items, seeding))
    assert beta.samples == window.samples == [4, 4, 4]  # unanimous: Beta(5,1) >= 0.95 at 4 samples
    assert cache.misses == misses == script.calls == 24
