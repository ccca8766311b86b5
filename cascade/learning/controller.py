"""An adaptive-threshold controller: keeps EM at a target while escalating as little as it can.

Feedback control on the rolling EM (the previous design) oscillates: the label delay and the window
put a lag in the loop, and EM is flat in the threshold for long stretches, then steep. Instead the
controller re-plays its last `window` labelled runs under every candidate threshold (counterfactual
evaluation) and picks the cheapest one whose estimated EM reaches `target_em + margin`:

- a run whose attempt would be accepted at threshold t scores that attempt (a gold label judges any
  attempt, the run's own answer included);
- a run that t would have sent further than it went (it stopped at a gate, t escalates it) is
  imputed from recent runs that did escalate at the same attempt: their final accuracy given whether
  the attempt they left was right, and the extra tokens they paid.

Confidences are often coarse (three agreement levels, say), so no single threshold may land on the
target; the controller then mixes the chosen threshold with a cheaper one, per query, in the share
that makes the estimated EM equal the target (`threshold(tier, unit)`, `unit` a stable per-query
number in [0, 1)). The threshold moves toward its choice by at most `step` per label, nothing moves
before `min_evidence` labels, and thresholds stay inside `[low, high]`.

Pure and I/O-free: the router turns stored runs into `RunEvidence` and persists `to_state()`.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade.decision.acceptance import accepts

_MAX_CANDIDATES = 100  # thresholds evaluated per label: distinct confidences, thinned to quantiles


@dataclass(frozen=True)
class ControllerSettings:
    """What the controller aims for and how fast it may move; see the module docstring."""

    target_em: float
    window: int = 200
    margin: float = 0.0
    step: float = 0.02
    min_evidence: int = 50
    low: float = 0.0
    high: float = 1.0
    initial: float | None = None  # None: start at `high`, the safe end (escalate the most)
    impute_neighbours: int = 0  # unjudged attempts: mean of this many judged ones nearest in confidence (0: all)

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high:
            raise ValueError(f"bounds must satisfy 0 <= low <= high, got [{self.low}, {self.high}]")
        if self.window < 1 or self.min_evidence < 0 or self.step < 0:
            raise ValueError("window must be >= 1; min_evidence and step >= 0")

    @property
    def start(self) -> float:
        return self.high if self.initial is None else min(self.high, max(self.low, self.initial))


@dataclass(frozen=True)
class RunEvidence:
    """What one labelled run tells about other thresholds, attempt by attempt in cascade order.

    `confidence[i]` is None for an attempt no gate judged (no answer, or the final tier's);
    `correct[i]` None where the feedback cannot judge that attempt; `tokens[i]` is cumulative.
    `reached_end`: the run got to the final tier, so no threshold could have sent it further.
    """

    confidence: tuple[float | None, ...]
    correct: tuple[bool | None, ...]
    tokens: tuple[float, ...]
    reached_end: bool

    def __post_init__(self) -> None:
        if not len(self.confidence) == len(self.correct) == len(self.tokens) >= 1:
            raise ValueError("need one confidence, correctness and token count per attempt, at least one")

    @property
    def final_correct(self) -> bool | None:
        return self.correct[-1]

    def to_json(self) -> list[Any]:
        return [list(self.confidence), list(self.correct), list(self.tokens), self.reached_end]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> RunEvidence:
        conf, correct, tokens, end = data
        return cls(
            tuple(None if c is None else float(c) for c in conf),
            tuple(None if c is None else bool(c) for c in correct),
            tuple(float(t) for t in tokens),
            bool(end),
        )


@dataclass(frozen=True)
class Estimate:
    """Estimated EM and mean tokens of the evidence window under each candidate threshold."""

    thresholds: np.ndarray
    em: np.ndarray
    tokens: np.ndarray


@dataclass(frozen=True)
class Plan:
    """Use `high` for a `share` of queries and `low` for the rest (`share` 1: a single threshold)."""

    high: float
    low: float
    share: float


def estimate(runs: Sequence[RunEvidence], candidates: Sequence[float], neighbours: int = 0) -> Estimate:
    """Counterfactual EM and tokens of `runs` had each candidate threshold gated every attempt."""
    thresholds = np.asarray(candidates, dtype=float)
    width = max(len(r.tokens) for r in runs)
    last = np.array([len(r.tokens) - 1 for r in runs])
    conf = _padded([r.confidence[: len(r.tokens) - r.reached_end] for r in runs], width, -np.inf)
    correct = _fill_unknown(_padded([r.correct for r in runs], width, np.nan), last)
    if neighbours > 0:
        raw = _padded([r.correct for r in runs], width, np.nan)
        correct = _fill_by_confidence(raw, correct, _padded([r.confidence for r in runs], width, np.nan), neighbours)
    tokens = _padded([r.tokens for r in runs], width, 0.0)
    rows = np.arange(len(runs))[:, None]
    accepted = accepts(conf[:, :, None], thresholds[None, None, :])  # run x attempt x candidate
    stops = accepted.any(axis=1)
    stop_at = np.where(stops, accepted.argmax(axis=1), last[:, None])
    em, spent = correct[rows, stop_at], tokens[rows, stop_at]
    past_end = ~stops & ~np.array([r.reached_end for r in runs])[:, None]
    if past_end.any():
        extra_em, extra_tokens = _escalation_outcomes(correct, tokens, last, runs)
        em = np.where(past_end, extra_em[:, None], em)
        spent = np.where(past_end, spent + extra_tokens[:, None], spent)
    return Estimate(thresholds, em.mean(axis=0), spent.mean(axis=0))


def _padded(rows: Sequence[Sequence[float | bool | None]], width: int, fill: float) -> np.ndarray:
    """Rows of unequal length as one float matrix; None and the padding become `fill`."""
    return np.array([[fill if v is None else float(v) for v in row] + [fill] * (width - len(row)) for row in rows])


def _fill_unknown(correct: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Attempts the feedback cannot judge take the mean known accuracy at their position (0.5 if none)."""
    used = np.arange(correct.shape[1])[None, :] <= last[:, None]
    known = used & ~np.isnan(correct)
    counts = known.sum(axis=0)
    means = np.where(counts > 0, np.nansum(np.where(known, correct, 0.0), axis=0) / np.maximum(counts, 1), 0.5)
    return np.where(used & np.isnan(correct), means[None, :], correct)


def _fill_by_confidence(raw: np.ndarray, filled: np.ndarray, conf: np.ndarray, k: int) -> np.ndarray:
    """Unjudged attempts with a confidence take the accuracy of the `k` judged ones nearest in confidence
    at the same position: with thumbs, what is unjudged is what the router escalated, whose accuracy
    the judged (mostly accepted, more confident) attempts overstate. Others keep `filled`."""
    out = filled.copy()
    for column in range(raw.shape[1]):
        judged = ~np.isnan(raw[:, column]) & ~np.isnan(conf[:, column])
        todo = np.flatnonzero(np.isnan(raw[:, column]) & ~np.isnan(conf[:, column]))
        if not judged.any() or not todo.size:
            continue
        near = np.argsort(np.abs(conf[todo, column][:, None] - conf[judged, column][None, :]), axis=1)[:, :k]
        out[todo, column] = raw[judged, column][near].mean(axis=1)
    return out


def _escalation_outcomes(
    correct: np.ndarray, tokens: np.ndarray, last: np.ndarray, runs: Sequence[RunEvidence]
) -> tuple[np.ndarray, np.ndarray]:
    """For each run, the final accuracy and extra tokens had it escalated past its last attempt.

    Learned from the window's runs that did go past the same position: accuracy conditioned on
    whether the attempt they left was right (one optimistic pseudo-count: escalation is tried before
    it is judged), tokens as their mean extra spend.
    """
    em, extra = np.ones(len(runs)), np.zeros(len(runs))
    for position in np.unique(last):
        went_past = last > position
        finals = correct[went_past, last[went_past]]
        left = correct[went_past, position] >= 0.5
        cost = (
            float((tokens[went_past, last[went_past]] - tokens[went_past, position]).mean()) if went_past.any() else 0.0
        )
        here = last == position
        for was_right in (True, False):
            judged = finals[left == was_right]
            rate = (judged.sum() + 1.0) / (judged.size + 1.0)
            em[here & ((correct[np.arange(len(runs)), last] >= 0.5) == was_right)] = rate
        extra[here] = cost
    return em, extra


def plan(found: Estimate, target: float) -> Plan:
    """The cheapest candidate reaching `target`, mixed with the cheaper candidate that gets there at least cost.

    No candidate reaches it: the one with the highest estimated EM, unmixed.
    """
    reach = found.em >= target - 1e-12
    if not reach.any():
        best = float(found.thresholds[int(np.argmax(found.em))])
        return Plan(best, best, 1.0)
    options = np.flatnonzero(reach)
    hi = int(options[np.lexsort((found.thresholds[options], found.tokens[options]))[0]])
    cheaper = np.flatnonzero(found.tokens < found.tokens[hi])
    if not cheaper.size:
        return Plan(float(found.thresholds[hi]), float(found.thresholds[hi]), 1.0)
    share = np.clip((target - found.em[cheaper]) / (found.em[hi] - found.em[cheaper]), 0.0, 1.0)
    cost = share * found.tokens[hi] + (1.0 - share) * found.tokens[cheaper]
    lo = int(np.argmin(cost))
    return Plan(float(found.thresholds[hi]), float(found.thresholds[cheaper[lo]]), float(share[lo]))


def query_unit(query: str) -> float:
    """A stable number in [0, 1) per query text: which side of a mixed plan the query falls on."""
    return int.from_bytes(hashlib.sha256(query.encode("utf-8")).digest()[:8], "big") / 2.0**64


class ThresholdController:
    """Per-tier thresholds driven by labelled runs; `threshold(tier, unit)` is what a router uses."""

    def __init__(self, settings: ControllerSettings, tiers: Sequence[str]) -> None:
        self.settings = settings
        self.thresholds = dict.fromkeys(tiers, settings.start)
        self.runs: deque[RunEvidence] = deque(maxlen=settings.window)
        self.outcomes: deque[int] = deque(maxlen=settings.window)
        self.mix = Plan(settings.start, settings.start, 1.0)
        self.n_observed = 0

    def threshold(self, tier: str, unit: float = 0.0) -> float:
        """The tier's threshold for a query whose `query_unit` is `unit` (0: the higher, safe side)."""
        value = self.thresholds.get(tier, self.settings.start)
        settled = math.isclose(value, self.mix.high)
        return value if not settled or unit < self.mix.share else min(value, self.mix.low)

    @property
    def rolling_em(self) -> float | None:
        """EM over the last `window` labelled outcomes; None before any."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else None

    def observe(self, run: RunEvidence) -> None:
        """One labelled run; a run whose final answer the feedback cannot judge changes nothing."""
        if run.final_correct is None:
            return
        self.n_observed += 1
        self.outcomes.append(int(run.final_correct))
        self.runs.append(run)
        if self.n_observed >= self.settings.min_evidence:
            self._move()

    def candidates(self) -> list[float]:
        """Thresholds with distinct outcomes on the window, inside the bounds (quantiles if too many)."""
        s = self.settings
        seen = np.unique([c for run in self.runs for c in run.confidence if c is not None and s.low <= c <= s.high])
        if seen.size > _MAX_CANDIDATES:
            seen = np.unique(np.quantile(seen, np.linspace(0.0, 1.0, _MAX_CANDIDATES), method="lower"))
        return sorted({float(c) for c in seen} | {s.low, s.high})

    def _move(self) -> None:
        s = self.settings
        goal = plan(estimate(list(self.runs), self.candidates(), s.impute_neighbours), s.target_em + s.margin)
        for tier, value in self.thresholds.items():
            self.thresholds[tier] = max(s.low, min(s.high, value + max(-s.step, min(s.step, goal.high - value))))
        self.mix = goal

    def to_state(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "runs": [run.to_json() for run in self.runs],
            "outcomes": list(self.outcomes),
            "mix": [self.mix.high, self.mix.low, self.mix.share],
            "n_observed": self.n_observed,
        }

    @classmethod
    def from_state(cls, settings: ControllerSettings, state: Mapping[str, Any]) -> ThresholdController:
        """Restore thresholds and evidence; `settings` come from config so they may change.

        A state saved by the earlier feedback controller (no `runs`) keeps its thresholds and
        gathers evidence afresh.
        """
        controller = cls(settings, list(state["thresholds"]))
        controller.thresholds = {
            k: min(settings.high, max(settings.low, float(v))) for k, v in state["thresholds"].items()
        }
        controller.runs.extend(RunEvidence.from_json(run) for run in state.get("runs", []))
        controller.outcomes.extend(int(v) for v in state["outcomes"])
        high, low, share = state.get("mix", [settings.start, settings.start, 1.0])
        controller.mix = Plan(float(high), float(low), float(share))
        controller.n_observed = int(state["n_observed"])
        return controller
