"""The promise, watched live: agreement with the reference, its interval, cost, and the drift guard.

One `Monitor` per cascade (per experiment variant) in each process. The engine tells it every
finished run (`served`) and the auditor every verdict (`resolved`); it keeps

- the promise since it started: agreement of the served answers with the strongest tier's, its
  always-valid interval (`Tally`), the cost ratio against calling the strongest tier for every run
  (estimated from the same traffic: the strongest tier's cost where it ran, audits' cost re-weighted
  where it did not), the escalation rate and the audits' own spend;
- the drift guard, when the config sets `min_agreement`. Stretches start every `WINDOW` answers
  (the last `WINDOWS` are kept); when the interval of any of them (Bonferroni over them and the
  whole) for the traffic's agreement (conditional: what a request there could expect, so a short
  unlucky stretch does not count as drift) lies entirely below the target, the promise is broken
  there with high confidence: the alarm. The guard then escalates every answer (`level` =
  `LEVELS`, see `cascade.audit.guard`), so every run reaches the strongest tier and its lower
  tiers' answers are judged for free (escalations). From those it knows, for each tighter level,
  what would have been served, and relaxes to the loosest level whose agreement, as future traffic
  will see it (the conditional interval), is proven at or above the target. Each change is logged
  and shown in the metrics.

Audits sample, so at a low rate they see a sudden break late (at 5%, a tier that starts getting a
quarter of what it serves wrong shows a disagreeing audit every ~100 answers; a proof takes about
four). A silent model swap usually shows at once in label-free signals every run carries: the lower
tiers' verifier confidences and the share of answers accepted below the strongest tier. So a
`ShiftTest` (`cascade.audit.shift`: Kolmogorov-Smirnov and Fisher tests of recent answers against
a baseline of the first answers served, at a stated false-trigger rate per answer) makes the guard
escalate everything for a probe of at most `PROBE_RUNS` runs: every run then judges the lower tiers
for free, and the probe either proves the promise broken (the alarm, as above) or is lifted,
costing a few escalations (it goes on, up to `PROBE_MAX_RUNS`, while its runs' agreement stays
below the target without proof yet). A lifted probe or a relaxed alarm records a new baseline.

Heavy arithmetic (the intervals) runs only when a disagreement is seen or every `CHECK_EVERY` runs
while tightened, never per request otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from cascade.audit.agreement import answer_format, same_answer
from cascade.audit.shift import Shift, ShiftTest
from cascade.audit.tally import Interval, Tally
from cascade.config.audit import AuditConfig
from cascade.config.schema import TierConfig
from cascade.types import Attempt, CascadeResult

log = logging.getLogger("cascade.audit")

LEVELS = 4
"""Tightening levels: k raises each lower tier's threshold t to t + (1 - t) k / LEVELS; LEVELS escalates all."""
WINDOW = 50
WINDOWS = 8
CHECK_EVERY = 10
PROBE_RUNS = 50
PROBE_MAX_RUNS = 200  # a probe whose runs point to a break, without proof yet, goes on up to this many


def tightened(threshold: float, level: int) -> float:
    """The bar a lower tier's answer must reach at guard `level` (above 1: nothing passes)."""
    if level >= LEVELS:
        return float("inf")
    return threshold + (1.0 - threshold) * level / LEVELS


@dataclass
class Spend:
    """Money: what runs and audits cost, and the estimated cost of the strongest tier on every run."""

    runs_usd: float = 0.0
    audits_usd: float = 0.0
    strongest_usd: float = 0.0  # estimate: the strongest tier's cost where it ran, audits re-weighted where not
    runs: int = 0
    escalated: int = 0
    audits: dict[str, int] = field(default_factory=lambda: {"agree": 0, "disagree": 0, "failed": 0, "dropped": 0})

    @property
    def cost_ratio(self) -> float | None:
        return (self.runs_usd + self.audits_usd) / self.strongest_usd if self.strongest_usd > 0 else None


@dataclass(frozen=True)
class Snapshot:
    """What the metrics and reports show for one cascade."""

    promise: Interval
    below: int  # answers served below the strongest tier (the ones audits sample)
    target: float | None
    level: int
    alarms: int
    probes: int  # probes started by a sudden rise of answers accepted below the strongest tier
    spend: Spend
    pending: int


class Monitor:
    """See the module docstring; thread-safe (runs end on the serving loop, verdicts on the audit thread)."""

    def __init__(self, config: AuditConfig, reference: TierConfig, name: str) -> None:
        self.config = config
        self.reference = reference
        self.name = name
        self.level = 0
        self.alarms = 0
        self._lock = threading.Lock()
        self._runs = 0
        self._promise = Tally()
        self._windows: deque[Tally] = deque(maxlen=WINDOWS)
        self._pending: dict[str, tuple[int, float]] = {}
        self._spend = Spend()
        self._would_be: list[Tally] = []  # per level below the current one, since the alarm
        self._shift = ShiftTest(config.false_probe_rate)
        self.probes = 0
        self._probe = 0  # runs left in a probe (0: none)

    def served(self, result: CascadeResult, audit_rate: float | None, audited: bool, output_kind: str) -> None:
        """Count a finished run; `audit_rate` is set for answers served below the strongest tier."""
        with self._lock:
            index, self._runs = self._runs, self._runs + 1
            self._spend.runs += 1
            self._spend.runs_usd += result.total_cost_usd
            self._spend.escalated += any(a.decision == "escalate" for a in result.attempts)
            if result.answer is None:
                return
            top = _reference_attempt(result, self.reference.name)
            if top is not None:
                self._spend.strongest_usd += top.cost_usd
            if index % WINDOW == 0:
                self._windows.append(Tally(start=index))
            below = audit_rate is not None
            for tally in self._tallies(index):
                tally.serve(below, audit_rate)
                if audited and audit_rate is not None:
                    tally.unresolved += 1 / audit_rate
            if audited and audit_rate is not None:
                self._pending[result.run_id] = (index, audit_rate)
            if self.level > 0 and top is not None:
                self._count_would_be(result, top, output_kind)
            elif self.level == 0 and self.config.min_agreement is not None:
                self._watch_shift(result, below)

    def resolved(self, run_id: str, agree: bool | None, cost_usd: float, outcome: str) -> None:
        """An audit's verdict (None: dropped or failed; it keeps counting against the promise)."""
        with self._lock:
            found = self._pending.pop(run_id, None)
            self._spend.audits[outcome] = self._spend.audits.get(outcome, 0) + 1
            self._spend.audits_usd += cost_usd
            if found is None:
                return
            index, rate = found
            if agree is not None:
                self._spend.strongest_usd += cost_usd / rate
                for tally in self._tallies(index):
                    tally.unresolved -= 1 / rate
                    if not agree:
                        tally.seen += 1 / rate
                        tally.known += 1
            if agree is False:
                self._check_alarm()

    def snapshot(self) -> Snapshot:
        with self._lock:
            promise = self._promise.interval(self.config.alpha)
            spend = Spend(**{**self._spend.__dict__, "audits": dict(self._spend.audits)})
            below, target = self._promise.below, self.config.min_agreement
            return Snapshot(promise, below, target, self.level, self.alarms, self.probes, spend, len(self._pending))

    # -- the guard -----------------------------------------------------------------------------
    def _tallies(self, index: int) -> list[Tally]:
        return [self._promise, *(w for w in self._windows if w.start <= index)]

    def _check_alarm(self) -> None:
        target = self.config.min_agreement
        if target is None or self.level >= LEVELS:
            return
        alpha = self.config.alpha / (len(self._windows) + 1)
        for tally in [self._promise, *self._windows]:
            interval = tally.interval(alpha, conditional=True)
            if interval.high < target:
                self.alarms += 1
                self._probe = 0
                self._tighten(LEVELS)
                log.warning(
                    "%s: drift alarm: agreement with %r over the last %d answers is %.3f [%.3f, %.3f], below the "
                    "promised %.3f; escalating every query until the evidence says the promise holds again",
                    self.name, self.reference.name, interval.answers, interval.estimate, interval.low,
                    interval.high, target,
                )  # fmt: skip
                return

    def _tighten(self, level: int) -> None:
        self.level = level
        self._would_be = [Tally() for _ in range(level)]

    def _watch_shift(self, result: CascadeResult, below: bool) -> None:
        """Start a probe when the traffic below the strongest tier changed (see the module docstring)."""
        confidences = {
            a.tier: a.confidence
            for a in result.attempts
            if a.tier != self.reference.name and a.confidence is not None and a.decision != "failed"
        }
        shift = self._shift.add(below, confidences)
        if shift is not None:
            self._start_probe(shift)

    def _start_probe(self, shift: Shift) -> None:
        self.probes += 1
        log.warning(
            "%s: %s; escalating every query for up to %d runs to check the lower tiers against %r",
            self.name, shift.describe(), PROBE_RUNS, self.reference.name,
        )  # fmt: skip
        self._tighten(LEVELS)
        self._probe = PROBE_RUNS

    def _count_would_be(self, result: CascadeResult, top: Attempt, output_kind: str) -> None:
        """What each looser level would have served on this run, judged against the strongest tier's answer."""
        form = answer_format(self.reference, output_kind)
        lower = [a for a in result.attempts if a is not top and a.answer is not None and a.decision != "failed"]
        for level, tally in enumerate(self._would_be):
            served = next((a for a in lower if _passes(a, level)), None)
            tally.serve(served is not None, 1.0)
            if served is not None and not same_answer(served.answer, top.answer, form):
                tally.seen += 1
                tally.known += 1
        if self._probe > 0:
            self._settle_probe()
        elif self._runs % CHECK_EVERY == 0:
            self._maybe_relax()

    def _settle_probe(self) -> None:
        """During a probe: the alarm once the configured thresholds are proven to break the promise,
        else, after `PROBE_RUNS` runs (up to `PROBE_MAX_RUNS` while their estimate stays below the
        target), back to them."""
        target = self.config.min_agreement
        assert target is not None, "probes run only with a target"
        self._probe -= 1
        interval = self._would_be[0].interval(self.config.alpha, conditional=True)
        if interval.high < target:
            self.alarms += 1
            self._probe = 0
            log.warning(
                "%s: drift alarm: as configured, %d probed runs would agree with %r at %.3f [%.3f, %.3f], below "
                "the promised %.3f; escalating every query until the evidence says the promise holds again",
                self.name, interval.answers, self.reference.name, interval.estimate, interval.low, interval.high,
                target,
            )  # fmt: skip
        elif self._probe == 0 and interval.estimate < target and interval.answers < PROBE_MAX_RUNS:
            self._probe = 1  # the runs point to a break: keep probing until it is proven or they stop pointing
        elif self._probe == 0:
            log.warning(
                "%s: probe lifted: %d runs gave no proof of a broken promise (agreement as configured %.3f "
                "[%.3f, %.3f])", self.name, interval.answers, interval.estimate, interval.low, interval.high,
            )  # fmt: skip
            self._tighten(0)
            self._windows.clear()
            self._shift.reset()

    def _maybe_relax(self) -> None:
        target = self.config.min_agreement
        assert target is not None, "the guard tightens only with a target"
        alpha = self.config.alpha / LEVELS
        for level, tally in enumerate(self._would_be):
            interval = tally.interval(alpha, conditional=True)
            if interval.low >= target:
                log.warning(
                    "%s: drift guard relaxed to level %d of %d: on the last %d runs, what it would serve agrees "
                    "with %r at %.3f [%.3f, %.3f] >= %.3f",
                    self.name, level, LEVELS, interval.answers, self.reference.name, interval.estimate,
                    interval.low, interval.high, target,
                )  # fmt: skip
                self._tighten(level)
                self._windows.clear()
                if level == 0:
                    self._shift.reset()
                return


def _passes(attempt: Attempt, level: int) -> bool:
    """Whether a lower tier's answer would have been accepted at guard `level`."""
    threshold = attempt.threshold
    return threshold is not None and (attempt.confidence or 0.0) >= tightened(threshold, level)


def _reference_attempt(result: CascadeResult, reference: str) -> Attempt | None:
    """The strongest tier's attempt of a run, if it answered."""
    for attempt in reversed(result.attempts):
        if attempt.tier == reference and attempt.answer is not None and attempt.decision != "failed":
            return attempt
    return None
