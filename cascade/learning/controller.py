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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cascade.decision.acceptance import accepts
from cascade.learning.pools import EvidencePools, mixed
from cascade.learning.run_evidence import RunEvidence as RunEvidence
from cascade.learning.trust import OPERATOR, KeyTrust, TrustPolicy

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
    trust: TrustPolicy = field(default_factory=TrustPolicy)  # how much API keys' feedback counts
    representative: bool = True  # references (escalations and audits together) stand for the traffic
    caution: float = 0.0  # plan on EM lowered by this many standard errors (few audits: a wide error)

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high:
            raise ValueError(f"bounds must satisfy 0 <= low <= high, got [{self.low}, {self.high}]")
        if self.window < 1 or self.min_evidence < 0 or self.step < 0:
            raise ValueError("window must be >= 1; min_evidence and step >= 0")

    @property
    def start(self) -> float:
        return self.high if self.initial is None else min(self.high, max(self.low, self.initial))


@dataclass(frozen=True)
class Estimate:
    """Estimated EM and mean tokens of the evidence window under each candidate threshold, and the
    EM's standard error (weighted runs: the sandwich form, so a few heavy audits show as uncertain)."""

    thresholds: np.ndarray
    em: np.ndarray
    tokens: np.ndarray
    se: np.ndarray | None = None

    def cautious(self, z: float) -> Estimate:
        """The estimate with EM lowered by `z` standard errors: what `plan` should trust."""
        if z == 0.0 or self.se is None:
            return self
        return replace(self, em=self.em - z * self.se)


@dataclass(frozen=True)
class Plan:
    """Use `high` for a `share` of queries and `low` for the rest (`share` 1: a single threshold)."""

    high: float
    low: float
    share: float


def estimate(runs: Sequence[RunEvidence], candidates: Sequence[float], neighbours: int = 0) -> Estimate:
    """Counterfactual EM and tokens of `runs` had each candidate threshold gated every attempt."""
    thresholds = np.asarray(candidates, dtype=float)
    weights = np.array([r.weight for r in runs], dtype=float)
    width = max(len(r.tokens) for r in runs)
    last = np.array([len(r.tokens) - 1 for r in runs])
    conf = _padded([r.confidence[: len(r.tokens) - r.reached_end] for r in runs], width, -np.inf)
    correct = _fill_unknown(_padded([r.correct for r in runs], width, np.nan), last, weights)
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
        extra_em, extra_tokens = _escalation_outcomes(correct, tokens, last, weights)
        em = np.where(past_end, extra_em[:, None], em)
        spent = np.where(past_end, spent + extra_tokens[:, None], spent)
    total, w = weights.sum(), weights[:, None]  # weights of 1: exactly the plain means
    mean = (em * w).sum(axis=0) / total
    se = np.sqrt(((em - mean) ** 2 * w**2).sum(axis=0)) / total
    return Estimate(thresholds, mean, (spent * w).sum(axis=0) / total, se)


def _padded(rows: Sequence[Sequence[float | bool | None]], width: int, fill: float) -> np.ndarray:
    """Rows of unequal length as one float matrix; None and the padding become `fill`."""
    return np.array([[fill if v is None else float(v) for v in row] + [fill] * (width - len(row)) for row in rows])


def _fill_unknown(correct: np.ndarray, last: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Attempts no judge could tell take the (weighted) mean known accuracy at their position (0.5 if none)."""
    used = np.arange(correct.shape[1])[None, :] <= last[:, None]
    known = used & ~np.isnan(correct)
    counts = (known * weights[:, None]).sum(axis=0)
    sums = np.where(known, correct, 0.0) * weights[:, None]
    means = np.where(counts > 0, sums.sum(axis=0) / np.where(counts > 0, counts, 1.0), 0.5)
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
    correct: np.ndarray, tokens: np.ndarray, last: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each run, the final accuracy and extra tokens had it escalated past its last attempt.

    Learned from the window's runs that did go past the same position: accuracy conditioned on
    whether the attempt they left was right (one optimistic pseudo-count: escalation is tried before
    it is judged), tokens as their mean extra spend.
    """
    n = len(last)
    em, extra = np.ones(n), np.zeros(n)
    for position in np.unique(last):
        went_past = last > position
        finals, w = correct[went_past, last[went_past]], weights[went_past]
        left = correct[went_past, position] >= 0.5
        paid = tokens[went_past, last[went_past]] - tokens[went_past, position]
        cost = float((paid * w).sum() / w.sum()) if went_past.any() else 0.0
        here = last == position
        for was_right in (True, False):
            same = left == was_right
            rate = ((finals[same] * w[same]).sum() + 1.0) / (w[same].sum() + 1.0)
            em[here & ((correct[np.arange(n), last] >= 0.5) == was_right)] = rate
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
    """Per-tier thresholds driven by judged runs; `threshold(tier, unit)` is what a router uses.

    Runs arrive judged by the reference (`observe_reference`) or by feedback (`observe`, naming the
    judge: an API key's id, or `OPERATOR`); they are kept in `EvidencePools` and mixed by how much
    each judge may count (`cascade.learning.trust`, whose record of keys is `self.trust`).
    """

    def __init__(self, settings: ControllerSettings, tiers: Sequence[str], trust: KeyTrust | None = None) -> None:
        self.settings = settings
        self.thresholds = dict.fromkeys(tiers, settings.start)
        self.trust = trust or KeyTrust(settings.trust)
        self.evidence = EvidencePools(settings.window, self.trust, settings.representative)
        self.outcomes: deque[float] = deque(maxlen=settings.window)
        self.mix = Plan(settings.start, settings.start, 1.0)
        self.n_observed = 0
        self._serial = 0  # names runs observed without an id

    @property
    def runs(self) -> list[RunEvidence]:
        """Every run in the pools, reference first."""
        return list(self.evidence)

    def threshold(self, tier: str, unit: float = 0.0) -> float:
        """The tier's threshold for a query whose `query_unit` is `unit` (0: the higher, safe side)."""
        value = self.thresholds.get(tier, self.settings.start)
        settled = math.isclose(value, self.mix.high)
        return value if not settled or unit < self.mix.share else min(value, self.mix.low)

    @property
    def rolling_em(self) -> float | None:
        """Mean final correctness over the last `window` judged runs; None before any."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else None

    def observe(self, run: RunEvidence, *, run_id: str | None = None, judge: str = OPERATOR) -> None:
        """One run judged by feedback; a run whose final answer the feedback cannot judge changes nothing."""
        if run.final_correct is None:
            return
        self.evidence.add_feedback(judge, run_id or f"run-{self._serial}", run)
        self._serial += 1
        self._observed(run, self.evidence.item_weight(judge))

    def observe_reference(self, run: RunEvidence, *, run_id: str) -> None:
        """One run judged against the strongest tier's answer (an escalation, or an audit)."""
        self.evidence.add_reference(run_id, run)
        self._observed(run, self.evidence.item_weight(None))

    def _observed(self, run: RunEvidence, weight: float) -> None:
        """A run that counts moves the thresholds by at most `step` times its weight; one that does not
        yet (a key with no trust, references before any audit) is kept and changes nothing."""
        if weight <= 0.0:
            return
        self.n_observed += 1
        if run.final_correct is not None:
            self.outcomes.append(float(run.final_correct))
        if self.n_observed >= self.settings.min_evidence:
            self._move(weight)

    def candidates(self, pools: Sequence[tuple[float, list[RunEvidence]]] | None = None) -> list[float]:
        """Thresholds with distinct outcomes on the pools that count, inside the bounds (quantiles if too many)."""
        s = self.settings
        runs = [run for _, pool in (self.evidence.weighted() if pools is None else pools) for run in pool]
        seen = np.unique([c for run in runs for c in run.confidence if c is not None and s.low <= c <= s.high])
        if seen.size > _MAX_CANDIDATES:
            seen = np.unique(np.quantile(seen, np.linspace(0.0, 1.0, _MAX_CANDIDATES), method="lower"))
        return sorted({float(c) for c in seen} | {s.low, s.high})

    def estimate(self) -> Estimate | None:
        """The pools' estimates mixed by their weights; None while no pool counts."""
        pools = self.evidence.weighted()
        if not pools:
            return None
        candidates, k = self.candidates(pools), self.settings.impute_neighbours
        found = [(weight, estimate(runs, candidates, k)) for weight, runs in pools]
        if len(found) == 1:
            return found[0][1]
        em, tokens = mixed([(w, e.em) for w, e in found]), mixed([(w, e.tokens) for w, e in found])
        total = sum(w for w, _ in found)
        se = np.sqrt(sum((w / total * e.se) ** 2 for w, e in found if e.se is not None))
        return Estimate(found[0][1].thresholds, em, tokens, se)

    def _move(self, weight: float = 1.0) -> None:
        s = self.settings
        found = self.estimate()
        if found is None:
            return
        goal, step = plan(found.cautious(s.caution), s.target_em + s.margin), s.step * min(1.0, weight)
        for tier, value in self.thresholds.items():
            self.thresholds[tier] = max(s.low, min(s.high, value + max(-step, min(step, goal.high - value))))
        self.mix = goal

    def to_state(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            **self.evidence.to_state(),
            "outcomes": list(self.outcomes),
            "mix": [self.mix.high, self.mix.low, self.mix.share],
            "n_observed": self.n_observed,
            "serial": self._serial,
        }

    @classmethod
    def from_state(
        cls, settings: ControllerSettings, state: Mapping[str, Any], trust: KeyTrust | None = None
    ) -> ThresholdController:
        """Restore thresholds and evidence (`trust`, the record of keys, is saved by its owner);
        `settings` come from config so they may change.

        A state saved by the earlier feedback controller (no `runs`) keeps its thresholds and
        gathers evidence afresh; one saved before pools (`runs`) keeps them as the operator's.
        """
        controller = cls(settings, list(state["thresholds"]), trust)
        controller.thresholds = {
            k: min(settings.high, max(settings.low, float(v))) for k, v in state["thresholds"].items()
        }
        controller.evidence = EvidencePools.from_state(
            settings.window, controller.trust, state, settings.representative
        )
        controller.outcomes.extend(float(v) for v in state["outcomes"])
        high, low, share = state.get("mix", [settings.start, settings.start, 1.0])
        controller.mix = Plan(float(high), float(low), float(share))
        controller.n_observed = int(state["n_observed"])
        controller._serial = int(state.get("serial", 0))
        return controller
