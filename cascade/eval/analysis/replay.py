"""Replay: sweep each policy's threshold over a log, trace the cost–EM curve, compute the field's metrics.

No model is called. The report (a JSON-ready dict) puts the cascade at an honestly chosen operating
point next to every tier alone, random mixing at the same cost, and the oracle; the curves and
per-policy metrics come along so plots and tables need nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade.errors import UserError
from cascade.eval.analysis import metrics as m
from cascade.eval.analysis.anchors import routellm_metrics, routerbench_aiq, routerbench_cost_end
from cascade.eval.analysis.cost_axis import cost_axis
from cascade.eval.analysis.definitions import METRIC_DEFINITIONS
from cascade.eval.analysis.policies import (
    CascadePolicy,
    Outcome,
    PreparedCascade,
    Threshold,
    hull_chain,
    make_confidence,
    oracle,
    random_mix,
    single,
)
from cascade.eval.analysis.replay_report import (
    Baseline,
    CascadeEntry,
    CurveMetrics,
    NamedPoint,
    NoMetrics,
    PolicyEntry,
    RandomEntry,
    RandomPoint,
    ReplayReport,
)
from cascade.eval.analysis.verdict import verdict, vs_strongest
from cascade.eval.data.external import LogOptions
from cascade.eval.data.formats import read_log
from cascade.eval.data.items import split
from cascade.eval.data.logs import LogTable

METRIC_KEYS = ("apgr", "cpt50", "cpt80", "aiq", "delta_ibc", "cost_reduction_at_matched_em", "oracle_saving_captured")


def no_metrics() -> NoMetrics:
    """The metrics of a report without a cascade policy: every one undefined."""
    return {
        "apgr": None,
        "cpt50": None,
        "cpt80": None,
        "aiq": None,
        "delta_ibc": None,
        "cost_reduction_at_matched_em": None,
        "oracle_saving_captured": None,
    }


def replay(
    log: LogTable,
    policies: Sequence[CascadePolicy],
    *,
    models: Sequence[str] | None = None,
    weak: str | None = None,
    strong: str | None = None,
    threshold: Threshold | None = None,
    tolerance: float = 0.0,
    seed: int = 0,
    n_resamples: int = 1000,
    max_points: int = 200,
) -> ReplayReport:
    """The replay report. Baselines and the oracle cover `models` (default: every model in the log;
    verifier-only models can stay out); `weak`/`strong` default to the first policy's end tiers.

    Without `threshold`, the cascade's operating point is cross-fitted: the items are split in two
    (seeded), the threshold is chosen on one half (cheapest with EM ≥ strong EM − tolerance there,
    else the best EM) and applied to the other, and vice versa — no item is scored by a threshold
    tuned on it.
    """
    if not len(log):
        raise UserError("no items to replay (all excluded?)")
    log, unit = cost_axis(log)
    models = list(models or log.models)
    singles = {model: single(log, model) for model in log.models}
    weak, strong = _pair(models, singles, policies, weak, strong)
    best = oracle(log, models)
    cost_range = _cost_range([singles[x] for x in models])
    ctx = _Context(singles[weak].point, singles[strong].point, best.cost_usd, cost_range, tolerance, strong)
    entries: list[PolicyEntry] = []
    operating = None
    for i, policy in enumerate(policies):
        prepared = policy.prepare(log)
        outcomes = prepared.sweep(prepared.thresholds(max_points))
        entries.append(_policy_entry(policy, outcomes, ctx))
        if i == 0:
            operating = _operating_point(prepared, outcomes, singles[strong], threshold, tolerance, seed)
    random_curve = [random_mix(log, weak, strong, p) for p in np.linspace(0, 1, 11)]
    random_curve_points: list[RandomPoint] = [
        {**_point(o), "strong_call_share": o.call_share(strong)} for o in random_curve
    ]
    random_entry: RandomEntry = {"curve": random_curve_points, "metrics": _curve_metrics(random_curve, ctx)}
    _add_routerbench([*entries, random_entry])
    ci = {"n_resamples": n_resamples, "seed": seed}
    baselines = {model: _baseline(singles[model], ci) for model in dict.fromkeys([*models, weak, strong])}
    cost = operating.cost_usd if operating else None
    baselines["random"] = _baseline(_random_at(log, weak, strong, singles, cost), ci)
    baselines["oracle"] = _baseline(best, ci)
    report: ReplayReport = {
        "source": {
            "path": log.source,
            "format": log.fmt,
            "notes": log.notes,
            "tokens_estimated": log.tokens_estimated,
            "cost_unit": unit,
        },
        "n_items": len(log),
        "excluded_items": log.excluded,
        "models": models,
        "verifier_only_models": [x for x in log.models if x not in models],
        "weak": weak,
        "strong": strong,
        "settings": {"tolerance": tolerance, "seed": seed, "bootstrap_resamples": n_resamples},
        "cascade": _cascade_entry(policies[0], operating, ci) if operating else None,
        "baselines": baselines,
        "metrics": entries[0]["metrics"] if entries else no_metrics(),
        "metric_definitions": METRIC_DEFINITIONS,
        "policies": entries,
        "random": random_entry,
    }
    if operating:
        reference = singles[strong]
        paired = vs_strongest(operating.correct, operating.cost, reference.correct, reference.cost, seed, n_resamples)
        report["verdict"] = verdict(report, paired, strong)
    return report


@dataclass(frozen=True)
class _Context:
    """What every curve is measured against."""

    weak: m.Point
    strong: m.Point
    oracle_cost: float
    cost_range: tuple[float, float]
    tolerance: float
    strong_model: str


def _pair(
    models: list[str],
    singles: dict[str, Outcome],
    policies: Sequence[CascadePolicy],
    weak: str | None,
    strong: str | None,
) -> tuple[str, str]:
    if policies:
        weak, strong = weak or policies[0].tiers[0], strong or policies[0].tiers[-1]
    weak = weak or min(models, key=lambda x: singles[x].cost_usd)
    strong = strong or max(models, key=lambda x: (singles[x].em, -singles[x].cost_usd))
    for name in (weak, strong):
        if name not in singles:
            raise UserError(f"unknown model {name!r}; the log has: {', '.join(singles)}")
    return weak, strong


def _cost_range(outcomes: list[Outcome]) -> tuple[float, float]:
    costs = [o.cost_usd for o in outcomes]
    return min(costs), max(costs)


def _curve_metrics(outcomes: Sequence[Outcome], ctx: _Context) -> CurveMetrics:
    """Every metric of one curve; the matched-EM point also gives the oracle saving captured."""
    curve = [o.point for o in outcomes]
    ibc = m.delta_ibc(curve, ctx.weak, ctx.strong)
    matched = m.cost_reduction_at_matched_em(curve, ctx.strong, ctx.tolerance)
    captured = m.oracle_saving_captured(curve[matched.index][0], ctx.strong[0], ctx.oracle_cost) if matched else None
    return {
        "apgr": m.apgr(curve, ctx.weak, ctx.strong),
        "cpt50": m.cpt(curve, ctx.weak, ctx.strong, 0.5),
        "cpt80": m.cpt(curve, ctx.weak, ctx.strong, 0.8),
        "aiq": m.aiq(curve, ctx.cost_range),
        "delta_ibc": ibc.value if ibc else None,
        "cost_reduction_at_matched_em": matched.value if matched else None,
        "oracle_saving_captured": captured,
        "delta_ibc_point": _point(outcomes[ibc.index]) if ibc else None,
        "matched_point": _point(outcomes[matched.index]) if matched else None,
        "aiq_cost_range": list(ctx.cost_range),
        "cost_axis": "normalised cost (cost - cost_weak) / (cost_strong - cost_weak)",
        "routellm": routellm_metrics(
            [(o.call_share(ctx.strong_model), o.em) for o in outcomes], ctx.weak[1], ctx.strong[1]
        ).as_dict(),
    }


def _add_routerbench(entries: Sequence[PolicyEntry | RandomEntry]) -> None:
    """RouterBench's AIQ of every curve in the report, compared together over [0, the common cost end]."""
    curves = [[(p["cost_usd"], p["em"]) for p in entry["curve"]] for entry in entries]
    end = routerbench_cost_end(curves)
    for entry, value in zip(entries, routerbench_aiq(curves), strict=True):
        entry["metrics"]["routerbench"] = {"aiq": value, "cost_end": end}


def _point(outcome: Outcome) -> NamedPoint:
    return {**outcome.summary(), "name": outcome.name}


def _policy_entry(policy: CascadePolicy, outcomes: list[Outcome], ctx: _Context) -> PolicyEntry:
    curve = [o.point for o in outcomes]
    return {
        "name": policy.label,
        "tiers": list(policy.tiers),
        "confidence": policy.confidence.name,
        "verifiers": list(getattr(policy.confidence, "verifiers", ())),
        "curve": [{**o.summary(), "strong_call_share": o.call_share(ctx.strong_model)} for o in outcomes],
        "pareto": m.pareto_frontier(curve),
        "metrics": _curve_metrics(outcomes, ctx),
    }


def _operating_point(
    prepared: PreparedCascade,
    outcomes: list[Outcome],
    strong: Outcome,
    threshold: Threshold | None,
    tolerance: float,
    seed: int,
) -> Outcome:
    if threshold is not None:
        return _with(prepared.at(threshold), selection="given threshold")
    n = len(strong.correct)
    if n < 2:
        chosen = _choose(outcomes, strong.em - tolerance)
        return _with(chosen, selection="chosen on the same item (fewer than 2 items: no held-out half)")
    halves = split(list(range(n)), [0.5, 0.5], seed)
    parts, thresholds = [], []
    for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
        target = strong.subset(fit).em - tolerance
        chosen = _choose([o.subset(fit) for o in outcomes], target)
        thresholds.append(chosen.threshold)
        parts.append((held, prepared.at(chosen.threshold if chosen.threshold is not None else 0.0)))
    return _merge(parts, n, thresholds)


def _choose(outcomes: Sequence[Outcome], target_em: float) -> Outcome:
    """Cheapest outcome with EM ≥ target; if none, the best EM (cheaper on ties)."""
    index = m.matched_point([o.point for o in outcomes], target_em)
    if index is not None:
        return outcomes[index]
    return max(outcomes, key=lambda o: (o.em, -o.cost_usd))


def _merge(parts: list[tuple[list[int], Outcome]], n: int, thresholds: list[Threshold | None]) -> Outcome:
    arrays = {k: np.zeros(n) for k in ("correct", "cost", "tokens", "escalated")}
    calls: dict[str, np.ndarray] = {}
    for held, outcome in parts:
        idx = np.asarray(held, dtype=int)
        for key, values in arrays.items():
            values[idx] = getattr(outcome, key)[idx]
        for model, called in outcome.calls.items():
            calls.setdefault(model, np.zeros(n))[idx] = called[idx]
    selection = "cross-fitted: threshold chosen on one half of the items, applied to the other"
    return Outcome(
        parts[0][1].name,
        arrays["correct"],
        arrays["cost"],
        arrays["tokens"],
        arrays["escalated"],
        extra={"thresholds": thresholds, "selection": selection},
        calls=calls,
    )


def _with(outcome: Outcome, *, selection: str) -> Outcome:
    return Outcome(
        outcome.name,
        outcome.correct,
        outcome.cost,
        outcome.tokens,
        outcome.escalated,
        outcome.threshold,
        {**outcome.extra, "selection": selection},
        outcome.calls,
    )


def _random_at(log: LogTable, weak: str, strong: str, singles: dict[str, Outcome], cost: float | None) -> Outcome:
    """Random weak/strong mixing at the cascade's cost (p = 0.5 when there is no cascade)."""
    span = singles[strong].cost_usd - singles[weak].cost_usd
    p = 0.5 if cost is None or abs(span) < 1e-12 else (cost - singles[weak].cost_usd) / span
    return random_mix(log, weak, strong, float(np.clip(p, 0.0, 1.0)))


def _baseline(outcome: Outcome, ci: dict[str, int]) -> Baseline:
    ci_range = m.bootstrap_ci(outcome.correct, ci["n_resamples"], seed=ci["seed"])
    return {**outcome.summary(), "em_ci": list(ci_range) if ci_range else None}


def _cascade_entry(policy: CascadePolicy, outcome: Outcome, ci: dict[str, int]) -> CascadeEntry:
    label, tiers, confidence = policy.label, list(policy.tiers), policy.confidence.name
    return {"policy": label, "tiers": tiers, "confidence": confidence, **_baseline(outcome, ci)}


def default_policies(
    log: LogTable,
    tiers: Sequence[str] | None = None,
    confidence: str | None = None,
    verifiers: Sequence[str] | None = None,
    candidates: LogTable | None = None,
) -> list[CascadePolicy]:
    """The cascades worth replaying on a log (empty when the log supports no confidence).

    `tiers` given: that cascade. Otherwise the models on the (cost, EM) convex hull, cheapest first,
    plus the two-tier cascade from its cheapest to its best model. `candidates` (default `log`) is
    where verifier models for agreement may come from.
    """
    source_log = candidates or log
    chain = list(tiers) if tiers else hull_chain(log)
    if len(chain) < 2:
        return []
    chains = [chain] if tiers or len(chain) == 2 else [chain, [chain[0], chain[-1]]]
    policies = []
    for tiers_ in chains:
        source = make_confidence(source_log, tiers_, confidence, verifiers)
        if source is not None:
            policies.append(CascadePolicy(tuple(tiers_), source))
    return policies


def replay_file(
    path: str | Path,
    *,
    fmt: str | None = None,
    models: Sequence[str] | None = None,
    confidence: str | None = None,
    verifiers: Sequence[str] | None = None,
    log_options: LogOptions | None = None,
    **options: Any,
) -> ReplayReport:
    """Read a log, build the default policies, replay. `models` are the cascade's tiers in order
    (and the baselines); `options` go to `replay` (threshold, tolerance, seed, ...)."""
    full = read_log(path, fmt, **(log_options or {}))
    chosen = list(models or full.models)
    policies = default_policies(full.select(chosen), models, confidence, verifiers, candidates=full)
    extra = [v for p in policies for v in getattr(p.confidence, "verifiers", ()) if v not in chosen]
    log = full.select(list(dict.fromkeys([*chosen, *extra])))
    return replay(log, policies, models=chosen, **options)
