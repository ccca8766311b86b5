"""The report of `cascade replay --config`: `replay`'s keys for exactly this config, plus its cost ratio
and EM difference against the strongest model alone, each with a paired bootstrap interval.

The operating point is the config's own decisions (its verifiers and router, item by item); the
curve and its metrics (APGR, AIQ, ...) sweep the gates' thresholds over the same confidences, so
they describe this config's verifiers, not a re-tuned one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cascade.eval.analysis import metrics as m
from cascade.eval.analysis.confidence import Scored
from cascade.eval.analysis.config_replay import ConfigRun
from cascade.eval.analysis.policies import CascadePolicy, PreparedCascade, single
from cascade.eval.analysis.replay import replay
from cascade.eval.analysis.replay_report import ConfigCascade, ReplayReport
from cascade.eval.analysis.verdict import verdict, vs_strongest
from cascade.eval.data.logs import LogTable


@dataclass(frozen=True)
class _Verifiers:
    """The confidence source of a replayed config: its own verifiers (already run)."""

    name: str = "config verifiers"

    def score(self, log: LogTable, tier: str, earlier: Sequence[str]) -> Scored:
        raise NotImplementedError("a replayed config's confidences come from its own verifiers (ConfigRun)")


@dataclass(frozen=True)
class _ConfigPolicy(CascadePolicy):
    run: ConfigRun | None = field(default=None, compare=False)

    def prepare(self, log: LogTable) -> PreparedCascade:
        assert self.run is not None
        run = self.run
        correct = np.stack([r.correct for r in run.runs], axis=1)
        cost = np.cumsum(np.stack([r.cost for r in run.runs], axis=1), axis=1)
        tokens = np.cumsum(np.stack([r.tokens for r in run.runs], axis=1), axis=1)
        return PreparedCascade(self, run.confidence[:, :-1], correct, cost, tokens)


def config_report(run: ConfigRun, *, seed: int = 0, n_resamples: int = 2000, source: str = "") -> ReplayReport:
    """`replay`'s report for this config on this log, its decisions as the operating point."""
    log, config = run.log, run.config
    models = list(dict.fromkeys(c for r in run.runs for c in r.spec.models))
    strong = max(models, key=lambda x: (log.correct(x).mean(), -log.cost(x).sum()))
    first = run.runs[0].spec.models
    weak = min(first, key=lambda x: log.cost(x).sum())
    policy = _ConfigPolicy(tuple(t.name for t in config.tiers), _Verifiers(), config.name, run)
    gates = tuple(t if t is not None else 0.0 for t in run.thresholds[:-1])
    report = replay(
        log, [policy], models=models, weak=weak, strong=strong, threshold=gates, seed=seed, n_resamples=n_resamples
    )
    reference = single(log, strong)
    report["cascade"] = _operating_point(run, seed, n_resamples)
    paired = vs_strongest(run.correct, run.cost, reference.correct, reference.cost, seed, n_resamples)
    report["metrics"] = {**report["policies"][0]["metrics"], **paired, "strongest": strong}
    report["verdict"] = verdict(report, paired, strong)
    report["config"] = {
        "path": config._source,
        "name": config.name,
        "tiers": [{"name": t.name, "models": list(r.spec.models)} for t, r in zip(config.tiers, run.runs, strict=True)],
        "thresholds": {t.name: th for t, th in zip(config.tiers, run.thresholds, strict=True)},
    }
    if source:
        report["source"]["path"] = source
    return report


def _operating_point(run: ConfigRun, seed: int, n_resamples: int) -> ConfigCascade:
    ci = m.bootstrap_ci(run.correct, n_resamples, seed=seed)
    tokens = None if np.isnan(run.tokens).any() else round(float(run.tokens.sum()))
    answered = {t.name: int((run.stop == j).sum()) for j, t in enumerate(run.config.tiers)}
    return {
        "policy": run.config.name,
        "tiers": [t.name for t in run.config.tiers],
        "confidence": "config verifiers",
        "em": float(run.correct.mean()),
        "em_ci": list(ci) if ci else None,
        "total_tokens": tokens,
        "cost_usd": float(run.cost.sum()),
        "escalation_rate": float((run.stop > 0).mean()),
        "answered_by": answered,
        "selection": "the config as written: its own verifiers, thresholds and router, no re-tuning",
    }
