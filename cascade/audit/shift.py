"""A label-free drift trigger: has the traffic the lower tiers see changed since the baseline was recorded?

Audits sample, so at 5% they prove a break late (a tier that starts disagreeing with the reference
on a quarter of what it serves shows one disagreeing audit per ~100 answers; a proof takes about
four). A provider's silent model swap usually shows at once in what every run carries without any
label: the lower tiers' verifier confidences (a weaker model that the verifier rates *higher* is
exactly the dangerous case) and the share of answers accepted below the strongest tier.

`ShiftTest` records a baseline from the first `BASELINE` answers served, then every `CHECK_EVERY`
answers compares each of the `RECENT` latest stretches of answers against it:

- each lower tier's confidence distribution: two-sample Kolmogorov-Smirnov (`scipy.stats.ks_2samp`,
  two-sided: any reshaping means the tuned thresholds' agreement is no longer known);
- the share accepted below: one-sided Fisher exact test (more accepted than in the baseline).

False alarms are controlled by a stated rate, not a fitted constant: each check spends
`false_rate * CHECK_EVERY` of level, split equally (Bonferroni) over its windows and tests, so on
traffic that did not change (exchangeable answers) the expected number of triggers per answer is at
most `false_rate`, however the tests depend on each other (KS and Fisher are conservative with ties).
A trigger only starts the monitor's probe, which proves or lifts a break with the reference's own
answers; its price is the probe's escalations, which is what `false_rate` bounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import fisher_exact, ks_2samp

BASELINE = 300
"""Answers recorded before testing: the monitor's warm-up (a tuning sample's size)."""
RECENT = (25, 50, 100, 200)
"""Recent stretches compared with the baseline: short ones catch a jump, long ones a modest shift."""
CHECK_EVERY = 10
FALSE_RATE = 1 / 5000
"""Expected false triggers per answer served on unchanged traffic, by default (`audit.false_probe_rate`)."""


@dataclass(frozen=True)
class Shift:
    """Why the test fired: which signal, over how many recent answers, its p-value and the level it beat."""

    signal: str  # "share below" or "confidence of <tier>"
    window: int
    p_value: float
    level: float
    recent: float  # the recent stretch's share below, or its mean confidence
    baseline: float

    def describe(self) -> str:
        return (
            f"{self.signal} over the last {self.window} answers is {self.recent:.3f} against {self.baseline:.3f} "
            f"in the baseline (p = {self.p_value:.2g} < {self.level:.2g})"
        )


@dataclass(frozen=True)
class _Answer:
    below: bool
    confidences: Mapping[str, float]  # lower tier -> its verifier's confidence on this run


class ShiftTest:
    """See the module docstring. Not thread-safe: the monitor calls it under its lock."""

    def __init__(self, false_rate: float = FALSE_RATE, baseline: int = BASELINE) -> None:
        if not 0 < false_rate < 1:
            raise ValueError(f"false_rate must be in (0, 1), got {false_rate}")
        self.false_rate = false_rate
        self.size = baseline
        self._baseline: list[_Answer] = []
        self._base_below = 0  # the baseline's answers accepted below, and each tier's confidences:
        self._base_confidences: dict[str, list[float]] = {}  # derived once, when the baseline is full
        self._recent: deque[_Answer] = deque(maxlen=max(RECENT))
        self._since_check = 0

    @property
    def recording(self) -> bool:
        """Still recording the baseline (nothing is tested yet)."""
        return len(self._baseline) < self.size

    def reset(self) -> None:
        """Record a new baseline (the traffic after a lifted probe or a relaxed alarm is the new normal)."""
        self._baseline.clear()
        self._base_confidences.clear()
        self._recent.clear()
        self._since_check = 0

    def add(self, below: bool, confidences: Mapping[str, float]) -> Shift | None:
        """Count one answer served; a `Shift` when this check rejects unchanged traffic."""
        answer = _Answer(below, dict(confidences))
        if self.recording:
            self._baseline.append(answer)
            if not self.recording:
                self._summarise_baseline()
            return None
        self._recent.append(answer)
        self._since_check += 1
        if self._since_check < CHECK_EVERY:
            return None
        self._since_check = 0
        return self.check()

    def _summarise_baseline(self) -> None:
        self._base_below = sum(a.below for a in self._baseline)
        for tier in sorted({t for a in self._baseline for t in a.confidences}):
            self._base_confidences[tier] = [a.confidences[tier] for a in self._baseline if tier in a.confidences]

    def check(self) -> Shift | None:
        """The most significant shift among this check's tests, if any beats its share of the level."""
        windows = [w for w in RECENT if w <= len(self._recent)]
        if not windows:
            return None
        level = self.false_rate * CHECK_EVERY / (len(windows) * (len(self._base_confidences) + 1))
        found: Shift | None = None
        latest = list(self._recent)
        for window in windows:
            recent = latest[-window:]
            for shift in [_share_shift(recent, self._base_below, len(self._baseline), level), *(
                _confidence_shift(recent, tier, before, level) for tier, before in self._base_confidences.items()
            )]:  # fmt: skip
                if shift is not None and (found is None or shift.p_value < found.p_value):
                    found = shift
        return found


def _share_shift(recent: list[_Answer], before: int, baseline: int, level: float) -> Shift | None:
    now = sum(a.below for a in recent)
    table = [[now, len(recent) - now], [before, baseline - before]]
    p = float(fisher_exact(table, alternative="greater").pvalue)
    share, base = now / len(recent), before / baseline
    return Shift("share accepted below", len(recent), p, level, share, base) if p < level else None


def _confidence_shift(recent: list[_Answer], tier: str, before: list[float], level: float) -> Shift | None:
    now = [a.confidences[tier] for a in recent if tier in a.confidences]
    if len(now) < min(RECENT) or len(before) < min(RECENT):
        return None
    p = float(ks_2samp(now, before).pvalue)
    if p >= level:
        return None
    return Shift(f"confidence of {tier!r}", len(recent), p, level, sum(now) / len(now), sum(before) / len(before))
