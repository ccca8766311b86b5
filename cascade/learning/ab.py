"""A/B tests of cascade configs: stable traffic splits, per-variant EM/tokens/cost, significance.

    variant = assign(user_id, {"control": 1, "cheap_first": 1}, salt="exp-7")
    store.record_run(result, config_name="prod", variant=variant)
    report = ab_report(store, config_name="prod")   # after feedback has labelled some runs

Assignment hashes `salt:key` with sha256 (Python's `hash` is salted per process, so replicas
would disagree). The winner must beat every other variant on EM by a two-proportion z-test at
`alpha` split across comparisons (Bonferroni); otherwise the report says "not yet significant".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cascade.errors import UserError
from cascade.store import Store
from cascade.store.paging import iter_labelled, iter_runs

_PAGE = 1000


def assign(key: str, variants: Mapping[str, float] | Sequence[str], salt: str = "") -> str:
    """The variant `key` always gets: variants split [0, 1) in proportion to their weights."""
    weights = dict(variants) if isinstance(variants, Mapping) else dict.fromkeys(variants, 1.0)
    total = sum(weights.values())
    if not weights or total <= 0 or any(w < 0 for w in weights.values()):
        raise UserError("A/B variants need non-negative weights with a positive sum")
    point = unit_hash(f"{salt}:{key}") * total
    for name, weight in weights.items():
        point -= weight
        if point < 0:
            return name
    return next(name for name, w in reversed(weights.items()) if w > 0)


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) that depends only on `key` (first 64 bits of its sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


@dataclass
class VariantStats:
    """One variant's runs; `outcomes` holds 1/0 per labelled run (latest feedback wins)."""

    name: str
    runs: int = 0
    tokens: float = 0.0
    cost_usd: float = 0.0
    outcomes: list[int] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        return sum(self.outcomes)

    @property
    def em(self) -> float | None:
        return self.correct / self.labelled if self.outcomes else None

    @property
    def mean_tokens(self) -> float | None:
        return self.tokens / self.runs if self.runs else None

    @property
    def mean_cost_usd(self) -> float | None:
        return self.cost_usd / self.runs if self.runs else None


@dataclass(frozen=True)
class Comparison:
    """`a` against `b` on EM: difference, z-test p-value and bootstrap interval of the difference."""

    a: str
    b: str
    diff: float
    z: float
    p_value: float
    ci: tuple[float, float]
    significant: bool


@dataclass(frozen=True)
class ABReport:
    """Every variant's stats, the leader's comparisons with the rest, and the verdict."""

    variants: list[VariantStats]
    comparisons: list[Comparison]
    alpha: float
    winner: str | None
    verdict: str


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic of k1/n1 − k2/n2 and its two-sided p-value."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def bootstrap_diff_ci(
    a: Sequence[int], b: Sequence[int], n_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) − mean(b), each arm resampled on its own."""
    if not a or not b:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    da = xa[rng.integers(0, xa.size, (n_resamples, xa.size))].mean(axis=1)
    db = xb[rng.integers(0, xb.size, (n_resamples, xb.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(da - db, [tail, 100 - tail])
    return float(lo), float(hi)


def compare(a: VariantStats, b: VariantStats, alpha: float) -> Comparison:
    z, p = two_proportion_z(a.correct, a.labelled, b.correct, b.labelled)
    diff = (a.em or 0.0) - (b.em or 0.0)
    ci = bootstrap_diff_ci(a.outcomes, b.outcomes, level=1 - alpha)
    return Comparison(a.name, b.name, diff, z, p, ci, significant=p < alpha and diff > 0)


def decide(variants: Sequence[VariantStats], alpha: float = 0.05, min_labelled: int = 20) -> ABReport:
    """Compare the best-EM variant with each other one; it wins only if it beats them all."""
    ranked = sorted(variants, key=lambda v: (v.em if v.em is not None else -1.0, v.name), reverse=True)
    if len(ranked) < 2:
        return ABReport(list(variants), [], alpha, None, "not yet significant: need at least two variants")
    short = [v.name for v in ranked if v.labelled < min_labelled]
    per_test = alpha / (len(ranked) - 1)
    comparisons = [compare(ranked[0], other, per_test) for other in ranked[1:]]
    if short:
        verdict = f"not yet significant: fewer than {min_labelled} labelled runs for {', '.join(short)}"
        return ABReport(list(variants), comparisons, alpha, None, verdict)
    if all(c.significant for c in comparisons):
        worst = max(c.p_value for c in comparisons)
        return ABReport(list(variants), comparisons, alpha, ranked[0].name, f"{ranked[0].name} wins (p={worst:.3g})")
    worst = max(c.p_value for c in comparisons)
    verdict = f"not yet significant: {ranked[0].name} leads but p={worst:.3g} ≥ {per_test:.3g}"
    return ABReport(list(variants), comparisons, alpha, None, verdict)


def variant_stats(store: Store, config_name: str | None = None) -> list[VariantStats]:
    """Per-variant totals over every stored run with a variant, joined with the runs' labels."""
    stats: dict[str, VariantStats] = {}
    for run in iter_runs(store, config_name=config_name, page=_PAGE):
        if run.variant is not None:
            entry = stats.setdefault(run.variant, VariantStats(run.variant))
            entry.runs += 1
            entry.tokens += run.total_tokens
            entry.cost_usd += run.total_cost_usd
    for item in iter_labelled(store, page=_PAGE):
        found = stats.get(item.run.variant or "")
        if found is not None and (config_name is None or item.run.config_name == config_name):
            found.outcomes.append(int(item.correct))
    return sorted(stats.values(), key=lambda v: v.name)


def ab_report(store: Store, config_name: str | None = None, alpha: float = 0.05, min_labelled: int = 20) -> ABReport:
    return decide(variant_stats(store, config_name), alpha, min_labelled)
