"""The report of a live evaluation: the cascade as it really ran, next to replayed baselines.

Baselines (each tier alone, random mixing, oracle) and the field's metrics come from replaying
the per-tier log with the tiers' own verifier confidences (`cascade.eval.analysis.replay`); the `cascade`
entry is the measured run itself, with bootstrap intervals over items.
"""

from __future__ import annotations

import numpy as np

from cascade.eval.analysis.confidence import LoggedConfidence
from cascade.eval.analysis.cost_axis import TOKENS
from cascade.eval.analysis.metrics import bootstrap_ci
from cascade.eval.analysis.policies import CascadePolicy
from cascade.eval.analysis.replay import replay
from cascade.eval.analysis.replay_report import MeasuredCascade, ReplayReport
from cascade.eval.analysis.verdict import verdict, vs_strongest
from cascade.eval.live.runner import EvalRun

N_RESAMPLES = 1000


def live_report(run: EvalRun, *, seed: int = 0) -> ReplayReport:
    policy = CascadePolicy(tuple(run.log.models), LoggedConfidence(), name="cascade (replayed)")
    report = replay(run.log, [policy], seed=seed, n_resamples=N_RESAMPLES)
    report["replayed_cascade"] = report.get("cascade")
    entry = cascade_entry(run, seed)
    in_tokens = report["source"]["cost_unit"] == TOKENS  # a tier had no price: every cost is in tokens
    if in_tokens:
        entry["cost_usd"] = float(entry["total_tokens"])
    report["cascade"] = entry
    strong = report["strong"]
    cost = np.array([r.total_tokens if in_tokens else r.total_cost_usd for r in run.results], dtype=float)
    strong_cost = run.log.tokens(strong) if in_tokens else run.log.cost(strong)
    correct = np.array(run.correct, dtype=float)
    paired = vs_strongest(correct, cost, run.log.correct(strong), strong_cost, seed, N_RESAMPLES)
    report["verdict"] = verdict(report, paired, strong)
    return report


def cascade_entry(run: EvalRun, seed: int) -> MeasuredCascade:
    """EM, tokens, cost, escalation and latency of the measured cascade run, with 95% intervals."""
    results = run.results
    n = max(len(results), 1)
    correct = np.array(run.correct, dtype=float)
    tokens = np.array([r.total_tokens for r in results], dtype=float)
    cost = np.array([r.total_cost_usd for r in results], dtype=float)
    # Model time as the completions recorded it: a cached re-run must not report cache-lookup latency.
    latency = np.array([sum(a.model_latency_s for a in r.attempts) for r in results], dtype=float)
    tiers = [t for t in run.log.models if any(a.tier == t for r in results for a in r.attempts)]
    reached = {t: sum(any(a.tier == t for a in r.attempts) for r in results) / n for t in tiers}
    answered_by = {t: sum(r.final_tier == t for r in results) / n for t in tiers}
    return {
        "policy": " → ".join(tiers) + " (measured)",
        "selection": "the config's own thresholds, run live on these items",
        "em": float(correct.mean()) if correct.size else 0.0,
        "em_ci": bootstrap_ci(correct, N_RESAMPLES, seed=seed),
        "total_tokens": int(tokens.sum()),
        "tokens_per_item_ci": bootstrap_ci(tokens, N_RESAMPLES, seed=seed),
        "cost_usd": float(cost.sum()),
        "escalation_rate": sum(len(r.attempts) > 1 for r in results) / n,
        "reached_tier": reached,
        "answered_by_tier": answered_by,
        "accepted_rate": sum(r.accepted for r in results) / n,
        "errors": sum(r.error is not None for r in results),
        "latency_s_mean": float(latency.mean()) if latency.size else 0.0,
        "latency_s_ci": bootstrap_ci(latency, N_RESAMPLES, seed=seed),
        "samples_saved": sum(a.samples_saved for r in results for a in r.attempts),
    }
