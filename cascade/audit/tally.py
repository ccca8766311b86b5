"""A stretch of served answers as the promise counts it: how many, how many could disagree, what audits saw.

An answer of the strongest tier agrees with the reference by definition; one served below it may
not, and is seen only when audited (with probability `rate`, so it counts 1/rate: inverse
propensity). `Tally.interval` turns the counts into the agreement's always-valid interval
(`cascade.audit.sequence`). The live monitor and `cascade report` both fill tallies, so the server
and the report say the same thing about the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.audit.sequence import disagreement_bounds


@dataclass(frozen=True, slots=True)
class Interval:
    """Agreement with the reference over `answers` served answers: the estimate and its interval."""

    answers: int
    estimate: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass
class Tally:
    """Counts over a stretch of served answers (see the module docstring)."""

    start: int = 0  # index of the first run in the stretch
    answers: int = 0  # runs that served an answer
    below: int = 0  # of them, served below the strongest tier
    seen: float = 0.0  # inverse-propensity sum of audited disagreements
    known: int = 0  # audited disagreements, counted once each
    unresolved: float = 0.0  # inverse-propensity sum of audits chosen but without a verdict (yet)
    rate: float = 1.0  # the smallest audit rate among the answers served below

    def serve(self, below: bool, rate: float | None) -> None:
        self.answers += 1
        if below:
            self.below += 1
            if rate is not None:
                self.rate = min(self.rate, rate)

    def interval(self, alpha: float, *, conditional: bool = False) -> Interval:
        """The agreement's estimate and always-valid (1 - alpha) interval; [0, 1] before any answer."""
        if self.answers == 0:
            return Interval(0, 1.0, 0.0, 1.0)
        # realised: only answers served below can disagree; conditional: any answer might have been
        ceiling = self.answers if conditional else self.below
        bounds = disagreement_bounds(
            self.seen, self.unresolved, ceiling, self.rate, known=self.known, alpha=alpha, conditional=conditional
        )
        n = self.answers
        return Interval(n, 1 - bounds.estimate / n, max(0.0, 1 - bounds.high / n), min(1.0, 1 - bounds.low / n))
