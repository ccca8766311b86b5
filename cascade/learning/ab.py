"""A/B tests of cascade variants: per-variant EM, tokens and cost, and a verdict that survives peeking.

    # experiment: in the YAML assigns each run and records its variant; by hand:
    variant = assign(user_id, {"control": 1, "cheap_first": 1}, salt="exp-7")
    store.record_run(result, config_name="prod", variant=variant)
    report = ab_report(store, config_name="prod", criterion=Criterion(value_per_correct=0.002))

The criterion is EM alone, or with a declared `value_per_correct` (USD) the net benefit of a run:
value × correct − its cost (or `price_per_token` × its tokens, for unpriced local models), which is
how the product trades EM against tokens. The leading variant wins when it beats every other on
that criterion at `alpha` split across the comparisons (Bonferroni), by either test:

- sequential (default): an always-valid confidence sequence (`cascade.learning.sequential`), so the
  report may be read after every label and the false-positive rate stays at `alpha`;
- fixed horizon (`horizon=N`): one classical test on the first N labelled runs of every variant,
  computed only once each has them (statsmodels: the pooled two-proportion z-test for EM, Welch's t
  for net benefit); looking earlier shows no verdict, so peeking cannot inflate it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cascade.config.variants import assign, unit_hash
from cascade.learning import fixed_horizon
from cascade.learning.sequential import TIGHT_AT, ab_increments, compare
from cascade.store import Store
from cascade.store.paging import iter_labelled, iter_runs

__all__ = ["ABReport", "Comparison", "Criterion", "VariantStats", "ab_report", "assign", "decide", "unit_hash"]
_PAGE = 1000
two_proportion_z = fixed_horizon.two_proportion_z


@dataclass(frozen=True)
class Criterion:
    """What a run is worth: EM alone, or net benefit = value × correct − cost, in USD per run."""

    value_per_correct: float | None = None
    price_per_token: float | None = None

    @property
    def metric(self) -> str:
        return "EM" if self.value_per_correct is None else "net benefit (USD/run)"

    def outcomes(self, correct: np.ndarray, tokens: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Per labelled run, in units of right answers (so EM and net benefit share one scale)."""
        if self.value_per_correct is None:
            return correct.astype(float)
        spend = tokens * self.price_per_token if self.price_per_token is not None else cost
        return correct - spend / self.value_per_correct

    def shown(self, value: float) -> float:
        """A difference in outcome units as reported: EM points, or USD per run."""
        return value if self.value_per_correct is None else value * self.value_per_correct


@dataclass
class VariantStats:
    """One variant's runs; the `label_*` lists hold one entry per labelled run, in label order."""

    name: str
    runs: int = 0
    tokens: float = 0.0
    cost_usd: float = 0.0
    outcomes: list[int] = field(default_factory=list)
    label_tokens: list[float] = field(default_factory=list)
    label_cost: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # each label's place in the stream (feedback seq)
    weight: float | None = None  # the declared share of traffic, when the experiment says

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

    def scores(self, criterion: Criterion) -> np.ndarray:
        n = self.labelled
        tokens = np.asarray(self.label_tokens or [self.mean_tokens or 0.0] * n, dtype=float)
        cost = np.asarray(self.label_cost or [self.mean_cost_usd or 0.0] * n, dtype=float)
        return criterion.outcomes(np.asarray(self.outcomes, dtype=float), tokens, cost)

    def positions(self) -> np.ndarray:
        """Where each label sits in the shared stream; spread evenly when the store gave no order."""
        if len(self.order) == self.labelled:
            return np.asarray(self.order, dtype=float)
        return (np.arange(self.labelled) + 0.5) / max(self.labelled, 1)

    def first(self, n: int) -> VariantStats:
        """The variant as it was at its n-th labelled run (for a fixed-horizon test)."""
        keep = np.argsort(self.positions(), kind="stable")[:n]

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in keep] if len(values) == self.labelled else list(values)

        return replace(
            self, outcomes=pick(self.outcomes), label_tokens=pick(self.label_tokens),
            label_cost=pick(self.label_cost), order=pick(self.order),
        )  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """`a` against `b`: the criterion's difference with its interval and p-value, and EM's."""

    a: str
    b: str
    metric: str
    diff: float
    ci: tuple[float, float]
    p_value: float
    significant: bool
    em_diff: float
    em_ci: tuple[float, float]
    method: str


@dataclass(frozen=True)
class ABReport:
    """Every variant's stats, the leader's comparisons with the rest, and the verdict."""

    variants: list[VariantStats]
    comparisons: list[Comparison]
    alpha: float
    winner: str | None
    verdict: str
    method: str = "always-valid sequential"
    criterion: Criterion = Criterion()


def decide(
    variants: Sequence[VariantStats],
    alpha: float = 0.05,
    min_labelled: int = 20,
    *,
    criterion: Criterion | None = None,
    horizon: int | None = None,
    tight_at: float = TIGHT_AT,
) -> ABReport:
    """Compare the variant leading on the criterion with each other one; it wins only if it beats them all."""
    criterion = criterion or Criterion()
    method = f"fixed horizon ({horizon} labelled runs per variant)" if horizon else "always-valid sequential"

    def report(comparisons: list[Comparison], winner: str | None, verdict: str) -> ABReport:
        return ABReport(list(variants), comparisons, alpha, winner, verdict, method, criterion)

    if len(variants) < 2:
        return report([], None, "not yet significant: need at least two variants")
    need = horizon or min_labelled
    short = [v.name for v in variants if v.labelled < need]
    if short:
        what = f"the fixed horizon of {horizon}" if horizon else f"{min_labelled}"
        return report([], None, f"not yet significant: fewer than {what} labelled runs for {', '.join(short)}")
    judged = [v.first(horizon) for v in variants] if horizon else list(variants)
    ranked = sorted(judged, key=lambda v: (float(v.scores(criterion).mean()), v.name), reverse=True)
    per_test = alpha / (len(ranked) - 1)
    pair = fixed_pair if horizon else _sequential_pair
    comparisons = [pair(ranked[0], other, per_test, criterion, min_labelled, tight_at) for other in ranked[1:]]
    worst = max(c.p_value for c in comparisons)
    if all(c.significant for c in comparisons):
        return report(comparisons, ranked[0].name, f"{ranked[0].name} wins on {criterion.metric} (p={worst:.3g})")
    verdict = f"not yet significant: {ranked[0].name} leads on {criterion.metric} but p={worst:.3g} ≥ {per_test:.3g}"
    return report(comparisons, None, verdict)


def _sequential_pair(
    a: VariantStats, b: VariantStats, alpha: float, criterion: Criterion, min_labelled: int, tight_at: float
) -> Comparison:
    """The always-valid comparison of a and b on the criterion, and on EM alongside."""
    where = np.concatenate([a.positions(), b.positions()])
    order = np.argsort(where, kind="stable")
    is_a = (np.arange(len(where)) < a.labelled)[order]
    start = _first_look(is_a, min_labelled)
    share = _share(a, b)

    def sequence(y_a: np.ndarray, y_b: np.ndarray) -> tuple[float, tuple[float, float], float]:
        found = compare(
            ab_increments(np.concatenate([y_a, y_b])[order], is_a, share), alpha, start=start, tight_at=tight_at
        )
        return found.estimate, (found.lower, found.upper), found.p_value

    diff, ci, p = sequence(a.scores(criterion), b.scores(criterion))
    em_diff, em_ci, _ = sequence(np.asarray(a.outcomes, float), np.asarray(b.outcomes, float))
    shown = (criterion.shown(ci[0]), criterion.shown(ci[1]))
    return Comparison(
        a.name, b.name, criterion.metric, criterion.shown(diff), shown, p, ci[0] > 0, em_diff, em_ci, "always-valid"
    )


def fixed_pair(
    a: VariantStats, b: VariantStats, alpha: float, criterion: Criterion, _min_labelled: int = 0, _tight: float = 0.0
) -> Comparison:
    """The classical comparison of a and b at the fixed horizon (statsmodels)."""
    em = fixed_horizon.proportions(a.correct, a.labelled, b.correct, b.labelled, alpha)
    if criterion.value_per_correct is None:
        diff, ci, p = em
    else:
        diff, ci, p = fixed_horizon.means(a.scores(criterion), b.scores(criterion), alpha)
        diff, ci = criterion.shown(diff), (criterion.shown(ci[0]), criterion.shown(ci[1]))
    return Comparison(a.name, b.name, criterion.metric, diff, ci, p, p < alpha and diff > 0, em[0], em[1], "fixed")


def _first_look(is_a: np.ndarray, min_labelled: int) -> int:
    """The first label at which both arms have `min_labelled` runs: the report's first look."""
    counts_a, counts_b = np.cumsum(is_a), np.cumsum(~is_a)
    ready = np.flatnonzero((counts_a >= min_labelled) & (counts_b >= min_labelled))
    return int(ready[0]) + 1 if ready.size else len(is_a)


def _share(a: VariantStats, b: VariantStats) -> float:
    """a's share of the pair's traffic: the declared split if known, else the runs each got."""
    if a.weight and b.weight:
        return a.weight / (a.weight + b.weight)
    total = a.runs + b.runs
    return a.runs / total if total and a.runs and b.runs else a.labelled / (a.labelled + b.labelled)


def variant_stats(
    store: Store,
    config_name: str | None = None,
    *,
    experiment: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[VariantStats]:
    """Per-variant totals over every stored run with a variant, joined with the runs' latest labels."""
    stats: dict[str, VariantStats] = {}

    def keep(run_variant: str | None, features: Mapping[str, object], run_config: str) -> bool:
        return (
            run_variant is not None
            and (config_name is None or run_config == config_name)
            and (experiment is None or features.get("experiment") == experiment)
        )

    for run in iter_runs(store, config_name=config_name, page=_PAGE):
        if keep(run.variant, run.features, run.config_name) and run.variant is not None:
            entry = stats.setdefault(run.variant, VariantStats(run.variant, weight=(weights or {}).get(run.variant)))
            entry.runs += 1
            entry.tokens += run.total_tokens
            entry.cost_usd += run.total_cost_usd
    for item in iter_labelled(store, page=_PAGE):
        found = stats.get(item.run.variant or "")
        if found is not None and keep(item.run.variant, item.run.features, item.run.config_name):
            found.outcomes.append(int(item.correct))
            found.label_tokens.append(float(item.run.total_tokens))
            found.label_cost.append(float(item.run.total_cost_usd))
            found.order.append(item.seq)
    return sorted(stats.values(), key=lambda v: v.name)


def ab_report(
    store: Store,
    config_name: str | None = None,
    alpha: float = 0.05,
    min_labelled: int = 20,
    *,
    criterion: Criterion | None = None,
    horizon: int | None = None,
    experiment: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> ABReport:
    stats = variant_stats(store, config_name, experiment=experiment, weights=weights)
    return decide(stats, alpha, min_labelled, criterion=criterion, horizon=horizon)
