"""Cost-benefit tuning: choose per-tier thresholds on a tuning split, by replaying the real cascade.

Every candidate is the actual cascade (same verifiers, router, budget) re-run on cached model
outputs, so what is tuned is exactly what runs; nothing is re-generated. Objectives:

- net benefit = value_per_correct · EM − price_per_token · tokens (per item), or with `use_cost`
  the tier prices instead of a flat token price;
- the cheapest thresholds whose EM is at least `min_em`.

The choice is then scored once on a separate split that tuning never saw.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade.config.schema import CascadeConfig, PluginSpec
from cascade.config.thresholds import ThresholdSettings
from cascade.errors import UserError
from cascade.eval.data.items import Item
from cascade.eval.live.runner import EvalRun, query_of, score_results
from cascade.protocols import Completer
from cascade.run.engine import Cascade

MAX_GRID = 12
MAX_COMBOS = 400  # candidates per subset of tiers: the grid is coarser when more tiers are tuned at once


@dataclass(frozen=True)
class Objective:
    """What a threshold choice is worth; `min_em` switches to cheapest-above-target."""

    value_per_correct: float = 1.0
    price_per_token: float = 0.0
    use_cost: bool = False
    min_em: float | None = None


@dataclass(frozen=True)
class Candidate:
    tiers: tuple[str, ...]
    thresholds: dict[str, float]
    em: float
    tokens_per_item: float
    cost_per_item: float

    def benefit(self, objective: Objective) -> float:
        spend = self.cost_per_item if objective.use_cost else self.tokens_per_item * objective.price_per_token
        return objective.value_per_correct * self.em - spend


def with_thresholds(
    config: CascadeConfig, thresholds: dict[str, float], tiers: Sequence[str] | None = None
) -> CascadeConfig:
    """A copy of `config` keeping only `tiers` (default: all), with these per-tier thresholds."""
    if config.router.type != "threshold":
        raise UserError(f"tuning needs the 'threshold' router, this config uses {config.router.type!r}")
    kept = [t for t in config.tiers if tiers is None or t.name in tiers]
    names = {t.name for t in kept}
    settings = ThresholdSettings.model_validate(config.router.params()).tuned(thresholds, names)
    router = PluginSpec.model_validate({"type": "threshold", **settings.model_dump()})
    update: dict[str, Any] = {"router": router, "tiers": kept}
    if config.pre_router is not None:
        dropped = {t.name for t in config.tiers} - names
        plugin = without_tiers(config.pre_router.model_dump(), [t.name for t in kept], dropped)
        update["pre_router"] = PluginSpec.model_validate(plugin)
    tuned = config.model_copy(update=update)
    tuned._source, tuned._lines = config._source, config._lines
    return tuned


def without_tiers(value: Any, kept: Sequence[str], dropped: Collection[str]) -> Any:
    """A plugin's settings with every mention of the `dropped` tiers taken out (a list item, a mapping's
    key or value), so a pre-router's rules still load once those tiers are gone: a rule that skipped
    one skips the rest it named, one that started at it starts at the first tier. A list left naming
    every `kept` tier loses the last one, as the engine runs the last tier of a plan that skips them all."""
    if isinstance(value, dict):
        return {k: without_tiers(v, kept, dropped) for k, v in value.items() if not _names(k, v, dropped=dropped)}
    if isinstance(value, list):
        items = [without_tiers(v, kept, dropped) for v in value if not _names(v, dropped=dropped)]
        named = all(isinstance(v, str) for v in items) and set(items) == set(kept)
        return [v for v in items if v != kept[-1]] if kept and named else items
    return value


def _names(*values: Any, dropped: Collection[str] = ()) -> bool:
    return any(isinstance(v, str) and v in dropped for v in values)


def grid_size(tiers_tuned: int) -> int:
    """Quantiles per tier so that a subset's grid (each tier: quantiles plus 0 and 1) stays within
    `MAX_COMBOS` (up to four tuned tiers; never below the lowest and highest confidence): every grid
    point replays the whole cascade, and their number grows as a power of the tiers tuned. A single
    gate is cheap to search finely, and a coarse grid can miss the one threshold that meets a target."""
    if tiers_tuned <= 1:
        return MAX_COMBOS - 2  # one gate: every distinct confidence seen (at most MAX_COMBOS)
    return max(2, min(MAX_GRID, int(MAX_COMBOS ** (1 / tiers_tuned) + 1e-9) - 2))


def grid(run: EvalRun, tier: str, size: int = MAX_GRID) -> list[float]:
    """Candidate thresholds for a tier: its observed confidences (quantiles of them when there are more
    than `size`), plus 0 and 1. Rounded down to 4 decimals, so a threshold still accepts the answer
    whose confidence it came from."""
    values = np.array([i.tiers[tier].confidence or 0.0 for i in run.log.items], dtype=float)
    distinct = np.unique(values)
    inner = distinct if distinct.size <= size else np.quantile(values, np.linspace(0, 1, size))
    return sorted({0.0, 1.0, *(math.floor(float(v) * 1e4) / 1e4 for v in inner)})


async def score(
    config: CascadeConfig, completer: Completer, items: Sequence[Item], template: str | None
) -> tuple[float, float, float]:
    """EM, tokens per item and cost per item of the cascade on `items` (cached calls only)."""
    cascade = Cascade(config, completer=completer)
    results = await cascade.abatch([query_of(i, template) for i in items], concurrency=8)
    em = float(np.mean(score_results(results, items)))
    n = max(len(items), 1)
    return em, sum(r.total_tokens for r in results) / n, sum(r.total_cost_usd for r in results) / n


async def search(
    config: CascadeConfig,
    completer: Completer,
    run: EvalRun,
    objective: Objective,
    template: str | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """Every subset of the non-final tiers (the strongest always stays), each with every grid point
    of its thresholds: a tier that never pays for itself is dropped rather than run for nothing."""
    optional = [t.name for t in config.tiers[:-1]]
    if not optional:
        raise UserError("a one-tier cascade has no threshold to tune")
    last = config.tiers[-1].name
    candidates = []
    for size in range(len(optional) + 1):
        for kept in itertools.combinations(optional, size):
            for combo in itertools.product(*(grid(run, name, grid_size(size)) for name in kept)):
                thresholds = dict(zip(kept, combo, strict=True))
                tuned = with_thresholds(config, thresholds, (*kept, last))
                em, tokens, cost = await score(tuned, completer, run.items, template)
                candidates.append(Candidate((*kept, last), thresholds, em, tokens, cost))
    return choose(candidates, objective), candidates


def choose(candidates: Sequence[Candidate], objective: Objective) -> Candidate:
    if objective.min_em is not None:
        feasible = [c for c in candidates if c.em >= objective.min_em]
        if feasible:
            return min(feasible, key=lambda c: (c.cost_per_item if objective.use_cost else c.tokens_per_item, -c.em))
        return max(candidates, key=lambda c: (c.em, -c.tokens_per_item))
    return max(candidates, key=lambda c: (c.benefit(objective), c.em))


def tuned_yaml(original: dict[str, Any], tiers: Sequence[str], thresholds: dict[str, float]) -> dict[str, Any]:
    """The original YAML mapping with only the kept `tiers` and the router's tuned thresholds."""
    data = dict(original)
    dropped = {t["name"] for t in data["tiers"]} - set(tiers)
    data["tiers"] = [t for t in data["tiers"] if t["name"] in tiers]
    if data.get("pre_router"):
        data["pre_router"] = without_tiers(data["pre_router"], list(tiers), dropped)
    router = dict(data.get("router") or {"type": "threshold"})
    written = ThresholdSettings.model_validate({k: v for k, v in router.items() if k != "type"})
    router["per_tier"] = written.tuned(thresholds, tiers).per_tier
    data["router"] = router
    return data
