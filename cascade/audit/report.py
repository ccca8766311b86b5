"""`cascade report`'s figures: the promise of an audited config, from the runs and pairs in the store.

The stored runs are replayed, in commit order, through the same `Monitor` the server keeps live:
each run marked with its audit chance and whether it was chosen (`CascadeResult.audit_rate`,
`audited`, kept in the run's features), each audit's stored verdict resolving it. A run chosen for
an audit without a stored verdict (the process was killed mid-audit) stays unresolved and counts
against the promise, as a dropped audit does. Escalations are summed per tier on the side: free
labels about answers that were not served.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from cascade.audit.monitor import Monitor
from cascade.audit.tally import Interval
from cascade.config.schema import CascadeConfig
from cascade.errors import UserError
from cascade.store import ReferenceRecord, RunRecord, Store

PAGE = 500


@dataclass
class TierAgreement:
    """Lower-tier answers judged against the strongest tier's, by source."""

    audited: int = 0
    audited_agree: int = 0
    escalated: int = 0
    escalated_agree: int = 0


@dataclass
class VariantReport:
    """The promise of one config (or experiment variant) over the runs since the report's start."""

    variant: str | None
    runs: int
    answers: int
    agreement: Interval
    target: float | None
    cost_ratio: float | None
    escalation_rate: float
    served_by_strongest: float
    runs_usd: float
    audits_usd: float
    audits: dict[str, int]
    unresolved: int
    tiers: dict[str, TierAgreement] = field(default_factory=dict)

    @property
    def promise_holds(self) -> bool | None:
        """True when the interval is at or above the target, False when below it, None when it straddles it."""
        if self.target is None:
            return None
        if self.agreement.low >= self.target:
            return True
        return False if self.agreement.high < self.target else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["promise_holds"] = self.promise_holds
        return data


def promise_report(store: Store, config: CascadeConfig, since: str | None = None) -> list[VariantReport]:
    """Per variant (one entry without an experiment), the promise over `config`'s runs recorded since `since`."""
    if config.audit is None:
        raise UserError(f"config {config.name!r} has no audit: block, so nothing measures its agreement")
    audits: dict[str, ReferenceRecord] = {}
    tiers: dict[str | None, dict[str, TierAgreement]] = {}
    for record in _pairs(store, config.name, since):
        pair = record.pair
        if pair.source == "audit":
            audits[pair.run_id] = record
        judged = tiers.setdefault(pair.variant, {}).setdefault(pair.tier, TierAgreement())
        if pair.source == "audit" and pair.agree is not None:
            judged.audited += 1
            judged.audited_agree += pair.agree
        elif pair.source == "escalation":
            judged.escalated += 1
            judged.escalated_agree += bool(pair.agree)
    monitors: dict[str | None, Monitor] = {}
    for run in _runs(store, config.name, since):
        monitor = monitors.get(run.variant)
        if monitor is None:
            monitor = monitors[run.variant] = Monitor(config.audit, config.tiers[-1], config.name)
        _replay(monitor, run, audits.get(run.run_id))
    return [_summary(variant, m, tiers.get(variant, {})) for variant, m in monitors.items()]


def _replay(monitor: Monitor, run: RunRecord, audit: ReferenceRecord | None) -> None:
    result = run.result()
    monitor.served(result, result.audit_rate, result.audited, "text")
    if result.audited and audit is not None:
        pair = audit.pair
        outcome = ("agree" if pair.agree else "disagree") if pair.agree is not None else pair.note.split(":")[0]
        monitor.resolved(run.run_id, pair.agree, pair.cost_usd, outcome or "failed")


def _summary(variant: str | None, monitor: Monitor, tiers: dict[str, TierAgreement]) -> VariantReport:
    snap = monitor.snapshot()
    spend = snap.spend
    served_top = snap.promise.answers - snap.below
    return VariantReport(
        variant=variant,
        runs=spend.runs,
        answers=snap.promise.answers,
        agreement=snap.promise,
        target=snap.target,
        cost_ratio=spend.cost_ratio,
        escalation_rate=spend.escalated / max(spend.runs, 1),
        served_by_strongest=served_top / max(snap.promise.answers, 1),
        runs_usd=spend.runs_usd,
        audits_usd=spend.audits_usd,
        audits=dict(spend.audits),
        unresolved=snap.pending,
        tiers=tiers,
    )


def _runs(store: Store, config_name: str, since: str | None) -> Iterator[RunRecord]:
    cursor = 0
    while True:
        batch = store.runs(since_id=cursor, limit=PAGE, config_name=config_name, since=since)
        yield from batch
        if len(batch) < PAGE:
            return
        cursor = batch[-1].seq


def _pairs(store: Store, config_name: str, since: str | None) -> Iterator[ReferenceRecord]:
    cursor = 0
    while True:
        batch = store.reference_pairs(since_seq=cursor, limit=PAGE, config_name=config_name, since=since)
        yield from batch
        if len(batch) < PAGE:
            return
        cursor = batch[-1].seq
