"""The promise in `/metrics`: each audited cascade's agreement with its strongest tier, read at scrape time.

Per served config (`model`) and experiment variant (`variant`, empty without one), from the
cascade's monitor (`cascade.audit.monitor`), since this process started:

    cascade_agreement{bound="estimate|low|high"}   agreement with the reference, always-valid interval
    cascade_agreement_target                         the config's `min_agreement` (absent without one)
    cascade_agreement_answers                        answers the interval covers
    cascade_cost_ratio_vs_strongest                  runs + audits against the strongest tier on every run
    cascade_escalation_rate                          share of runs that escalated at least once
    cascade_audits_total{outcome}                    agree, disagree, failed, dropped
    cascade_audit_cost_usd_total                     audit spend (charged to no key)
    cascade_audits_pending                           audits in flight or waiting
    cascade_drift_alarm                              1 while the guard tightens thresholds
    cascade_drift_guard_level                        0 (configured thresholds) .. 4 (every query escalates)
    cascade_drift_alarms_total                       alarms raised
    cascade_drift_probes_total                       probes started by a label-free shift of the traffic below
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cascade.audit.auditor import Auditor
from cascade.audit.monitor import LEVELS
from cascade.run.engine import Cascade


class AuditCollector(Collector):
    """Reads every audited cascade's monitor when `/metrics` is scraped."""

    def __init__(self, cascades: Mapping[str, Cascade]) -> None:
        self.cascades = cascades

    def auditors(self) -> Iterator[tuple[str, str, Auditor]]:
        for name, cascade in self.cascades.items():
            arms = {id(a): a for a in [cascade, *cascade.variants.values()]}.values()
            for arm in arms:
                if arm.auditor is not None:
                    yield name, arm.auditor.variant or "", arm.auditor

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "variant"]
        g = {
            name: GaugeMetricFamily(f"cascade_{name}", text, labels=labels + extra)
            for name, text, extra in (
                ("agreement", "Agreement with the strongest tier, with its always-valid interval", ["bound"]),
                ("agreement_target", "The promised agreement (min_agreement)", []),
                ("agreement_answers", "Answers the agreement covers", []),
                ("cost_ratio_vs_strongest", "Cost incl. audits over the strongest tier on every run (estimate)", []),
                ("escalation_rate", "Share of runs that escalated at least once", []),
                ("audits_pending", "Audits in flight or waiting", []),
                ("drift_alarm", "1 while the drift guard tightens thresholds", []),
                ("drift_guard_level", f"Tightening level, 0 (as configured) to {LEVELS} (escalate all)", []),
            )
        }
        audits = CounterMetricFamily("cascade_audits", "Audits by outcome", labels=[*labels, "outcome"])
        spend = CounterMetricFamily("cascade_audit_cost_usd", "Audit spend in USD, charged to no key", labels=labels)
        alarms = CounterMetricFamily("cascade_drift_alarms", "Drift alarms raised", labels=labels)
        probes = CounterMetricFamily("cascade_drift_probes", "Probes after a shift of the traffic", labels=labels)
        for model, variant, auditor in self.auditors():
            snap, key = auditor.monitor.snapshot(), [model, variant]
            promise = snap.promise
            for bound, value in (("estimate", promise.estimate), ("low", promise.low), ("high", promise.high)):
                g["agreement"].add_metric([*key, bound], value)
            if snap.target is not None:
                g["agreement_target"].add_metric(key, snap.target)
            g["agreement_answers"].add_metric(key, promise.answers)
            if snap.spend.cost_ratio is not None:
                g["cost_ratio_vs_strongest"].add_metric(key, snap.spend.cost_ratio)
            g["escalation_rate"].add_metric(key, snap.spend.escalated / max(snap.spend.runs, 1))
            g["audits_pending"].add_metric(key, snap.pending)
            g["drift_alarm"].add_metric(key, float(snap.level > 0))
            g["drift_guard_level"].add_metric(key, snap.level)
            for outcome, count in snap.spend.audits.items():
                audits.add_metric([*key, outcome], count)
            spend.add_metric(key, snap.spend.audits_usd)
            alarms.add_metric(key, snap.alarms)
            probes.add_metric(key, snap.probes)
        yield from g.values()
        yield from (audits, spend, alarms, probes)
