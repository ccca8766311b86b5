"""Offline policies over a logged table: each tier alone, random mixing, the oracle, and cascades.

Each policy yields an `Outcome`: per-item correctness, cost and tokens, so EM, totals, confidence
intervals and item splits all come from the same arrays. A cascade pays for every tier it calls and
every verifier it consults, as a live cascade would.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cascade.decision.acceptance import stopping_tier
from cascade.errors import UserError
from cascade.eval.analysis.confidence import (
    AgreementConfidence,
    ConfidenceSource,
    HeuristicConfidence,
    LoggedConfidence,
)
from cascade.eval.analysis.metrics import Point, upper_hull
from cascade.eval.analysis.replay_report import OutcomeExtra, OutcomeSummary
from cascade.eval.data.logs import LogTable

Threshold = float | tuple[float, ...]


@dataclass(frozen=True)
class Outcome:
    """What a policy did on every item. Fractional `correct` is an expectation (random mixing).

    `calls` maps each model the policy may call to whether it was called on each item (as a tier or
    a verifier; fractional for random mixing), so shares of calls can be read per model."""

    name: str
    correct: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    escalated: np.ndarray
    threshold: Threshold | None = None
    extra: OutcomeExtra = field(default_factory=lambda: OutcomeExtra())
    calls: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def em(self) -> float:
        return float(self.correct.mean()) if self.correct.size else 0.0

    @property
    def cost_usd(self) -> float:
        return float(self.cost.sum())

    @property
    def total_tokens(self) -> int | None:
        """None when any item's token count is unknown."""
        return None if np.isnan(self.tokens).any() else round(float(self.tokens.sum()))

    @property
    def escalation_rate(self) -> float:
        return float(self.escalated.mean()) if self.escalated.size else 0.0

    @property
    def point(self) -> Point:
        return (self.cost_usd, self.em)

    def call_share(self, model: str) -> float:
        """Share of items on which `model` was called (0 for a model the policy never calls)."""
        called = self.calls.get(model)
        return float(called.mean()) if called is not None and called.size else 0.0

    def subset(self, indices: Sequence[int] | np.ndarray) -> Outcome:
        idx = np.asarray(indices, dtype=int)
        return replace(
            self,
            correct=self.correct[idx],
            cost=self.cost[idx],
            tokens=self.tokens[idx],
            escalated=self.escalated[idx],
            calls={model: called[idx] for model, called in self.calls.items()},
        )

    def summary(self) -> OutcomeSummary:
        """The report's per-policy fields."""
        data: OutcomeSummary = {
            "em": self.em,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "escalation_rate": self.escalation_rate,
        }
        if self.threshold is not None:
            data["threshold"] = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        return {**data, **self.extra}


def single(log: LogTable, model: str) -> Outcome:
    """One tier answers everything."""
    n = len(log)
    calls = {model: np.ones(n)}
    return Outcome(model, log.correct(model), log.cost(model), log.tokens(model), np.zeros(n), calls=calls)


def random_mix(log: LogTable, weak: str, strong: str, p: float, seed: int | None = None) -> Outcome:
    """Each item goes to `strong` with probability p, else to `weak` (RouteLLM's random router).

    Without a seed the outcome is the exact expectation over the coin flips (fractional per item);
    with one, a single seeded draw.
    """
    if seed is None:
        w = np.full(len(log), float(p))
    else:
        w = (np.random.default_rng(seed).random(len(log)) < p).astype(float)
    mix = {
        attr: (1 - w) * getattr(log, attr)(weak) + w * getattr(log, attr)(strong)
        for attr in ("correct", "cost", "tokens")
    }
    calls = {weak: 1 - w, strong: w}
    return Outcome("random", mix["correct"], mix["cost"], mix["tokens"], w, extra={"p": float(p)}, calls=calls)


def oracle(log: LogTable, models: Sequence[str] | None = None) -> Outcome:
    """Per item, the cheapest model that is correct — the bound no router passes.

    Items no model gets right go to the cheapest model (and stay wrong): an oracle knows
    escalating cannot help there. `escalated` marks items not answered by their cheapest model.
    """
    models = list(models or log.models)
    cost = np.stack([log.cost(m) for m in models], axis=1)
    correct = np.stack([log.correct(m) for m in models], axis=1)
    tokens = np.stack([log.tokens(m) for m in models], axis=1)
    cheapest = cost.argmin(axis=1)
    masked = np.where(correct > 0, cost, np.inf)
    choice = np.where(np.isfinite(masked.min(axis=1)), masked.argmin(axis=1), cheapest)
    rows = np.arange(len(log))
    picked = [models[i] for i in choice]
    return Outcome(
        "oracle",
        correct[rows, choice],
        cost[rows, choice],
        tokens[rows, choice],
        (choice != cheapest).astype(float),
        extra={"picks": {m: picked.count(m) for m in models}},
        calls={m: (choice == i).astype(float) for i, m in enumerate(models)},
    )


@dataclass(frozen=True)
class CascadePolicy:
    """Tiers in order; a non-final tier's answer is accepted when its confidence ≥ its threshold."""

    tiers: tuple[str, ...]
    confidence: ConfidenceSource
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or " → ".join(t.rsplit("/", 1)[-1] for t in self.tiers)

    def prepare(self, log: LogTable) -> PreparedCascade:
        """Score every tier once; thresholds are then swept without recomputing anything."""
        n, last = len(log), len(self.tiers) - 1
        scored = [self.confidence.score(log, tier, self.tiers[:j]) for j, tier in enumerate(self.tiers[:last])]
        confidence = np.stack([s.confidence for s in scored], axis=1) if scored else np.zeros((n, 0))
        correct = np.stack([log.correct(t) for t in self.tiers], axis=1)
        cost, tokens = np.zeros((n, last + 1)), np.zeros((n, last + 1))
        calls: list[frozenset[str]] = []
        for stop in range(last + 1):
            called = set(self.tiers[: stop + 1]).union(*(s.calls for s in scored[: min(stop + 1, last)]))
            calls.append(frozenset(called))
            for model in sorted(called):  # a fixed order: float sums equal from run to run
                cost[:, stop] += log.cost(model)
                tokens[:, stop] += log.tokens(model)
        return PreparedCascade(self, confidence, correct, cost, tokens, tuple(calls))


@dataclass(frozen=True)
class PreparedCascade:
    """Per item: confidence of each non-final tier, and correctness/cost/tokens if stopping at each tier;
    per stopping tier, the models called up to there (tiers and verifiers; empty: not tracked)."""

    policy: CascadePolicy
    confidence: np.ndarray
    correct: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    calls: tuple[frozenset[str], ...] = ()

    def at(self, threshold: Threshold) -> Outcome:
        """The cascade with one shared threshold, or one per non-final tier."""
        stop = stopping_tier(self.confidence, threshold)
        rows = np.arange(len(stop))
        return Outcome(
            self.policy.label,
            self.correct[rows, stop],
            self.cost[rows, stop],
            self.tokens[rows, stop],
            (stop > 0).astype(float),
            threshold,
            calls=self._calls(stop),
        )

    def _calls(self, stop: np.ndarray) -> dict[str, np.ndarray]:
        models = sorted(set().union(*self.calls))
        return {m: np.isin(stop, [i for i, c in enumerate(self.calls) if m in c]).astype(float) for m in models}

    def thresholds(self, max_points: int = 200) -> list[Threshold]:
        """Every distinct outcome: all per-tier combinations when there are at most `max_points`,
        else one shared threshold (quantiles if still too many). Each gate also gets a value above
        every confidence (always escalate)."""
        gates = [_levels(self.confidence[:, j]) for j in range(self.confidence.shape[1])]
        if not gates:
            return [0.0]
        if math.prod(len(g) for g in gates) <= max_points and len(gates) > 1:
            return [tuple(combo) for combo in itertools.product(*gates)]
        shared: list[Threshold] = list(_levels(self.confidence.ravel(), max_points))
        return shared

    def sweep(self, thresholds: Sequence[Threshold] | None = None) -> list[Outcome]:
        """Outcomes at each threshold, cheapest first."""
        outcomes = [self.at(t) for t in (thresholds if thresholds is not None else self.thresholds())]
        return sorted(outcomes, key=lambda o: (o.cost_usd, -o.em))


def _levels(values: np.ndarray, max_points: int = 0) -> list[float]:
    levels = np.unique(values)
    if max_points and levels.size > max_points - 1:
        levels = np.unique(np.quantile(values, np.linspace(0, 1, max_points - 1), method="lower"))
    return [float(v) for v in levels] + [math.nextafter(float(levels[-1]), math.inf)]


def hull_chain(log: LogTable, models: Sequence[str] | None = None) -> list[str]:
    """The tiers worth cascading through: single models on the non-decreasing convex hull of
    (cost, EM), cheapest first — the others are beaten by mixing two hull models."""
    models = list(models or log.models)
    points = {m: single(log, m).point for m in models}
    hull = upper_hull(list(points.values()))
    chain = [min((m for m in models if points[m] == p), key=models.index) for p in hull]
    return chain


def make_confidence(
    log: LogTable, tiers: Sequence[str], kind: str | None = None, verifiers: Sequence[str] | None = None
) -> ConfidenceSource | None:
    """The confidence source for replaying `tiers` on `log` (None: the log supports none).

    `kind` None picks the best the log allows: logged confidence, else agreement with a verifier
    (default: the cheapest model outside the cascade), else the response heuristic.
    """
    gates = list(tiers[:-1])
    if kind is None:
        if all(log.has_confidence(t) for t in gates):
            return LoggedConfidence()
        if not all(log.has_answers(t) for t in tiers):
            return None
        kind = "agreement" if verifiers or spare_models(log, tiers) else "heuristic"
    if kind == "logged":
        _require(all(log.has_confidence(t) for t in gates), "no logged confidence for the cascade's tiers")
        return LoggedConfidence()
    _require(all(log.has_answers(t) for t in tiers), f"--confidence {kind} needs logged responses for every tier")
    if kind == "heuristic":
        return HeuristicConfidence()
    if kind != "agreement":
        raise UserError(f"unknown confidence {kind!r}; one of: agreement, logged, heuristic")
    chosen = list(verifiers or spare_models(log, tiers)[:1])
    _require(bool(chosen), "agreement needs a verifier model outside the cascade (--verifiers); the log has none")
    _require(all(log.has_answers(v) for v in chosen), "agreement verifiers need logged responses")
    return AgreementConfidence(tuple(chosen))


def spare_models(log: LogTable, tiers: Sequence[str]) -> list[str]:
    """Models outside the cascade, cheapest first: candidate verifiers for agreement."""
    others = [model for model in log.models if model not in tiers and log.has_answers(model)]
    return sorted(others, key=lambda model: float(np.nansum(log.cost(model))))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)
