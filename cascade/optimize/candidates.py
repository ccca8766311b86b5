"""Candidate cascades over logged models, and what each would have done on every tuning item.

A `Structure` is a chain of gate tiers (one model or an ensemble, each with a verifier: the
ensemble's `vote`, `agreement` with the tier before, or the learned `scorer`; a config's tier tuned
on prompts keeps the verifier its config sets) ending at a final tier. `Prepared` holds per item
each gate's confidence and what stopping at each tier gives, so any thresholds are evaluated by
array operations. Scorer confidences are out-of-fold: each item's
score comes from a scorer fitted on the other folds only, never from one that saw the item.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cascade.decision.acceptance import stopping_tier
from cascade.eval.analysis.offline_tiers import TierRun, TierSpec, agreement, chain_inputs
from cascade.eval.data.logs import LogTable
from cascade.scoring.train import FitOptions, cross_fit

VerifierKind = Literal["vote", "agreement", "scorer", "configured"]  # configured: the tier's own, as its config sets it
NEVER = -1.0  # the confidence of a gate without an answer: the router escalates it whatever the threshold


@dataclass(frozen=True)
class Gate:
    spec: TierSpec
    verifier: VerifierKind


@dataclass(frozen=True)
class Structure:
    gates: tuple[Gate, ...]
    final: TierSpec

    @property
    def specs(self) -> tuple[TierSpec, ...]:
        return (*(g.spec for g in self.gates), self.final)

    @property
    def uses_scorer(self) -> bool:
        return any(g.verifier == "scorer" for g in self.gates)

    @property
    def complexity(self) -> int:
        """Tiers + models + 1 for a learned scorer: how much can go wrong on new data."""
        return len(self.specs) + sum(len(s.models) for s in self.specs) + int(self.uses_scorer)

    def label(self) -> str:
        parts = [f"{g.spec.name} [{g.verifier}]" for g in self.gates]
        return " → ".join([*parts, self.final.name])


@dataclass(frozen=True)
class Prepared:
    """Per item: each gate's confidence (`NEVER` without an answer), and correctness/cost when stopping at each tier."""

    structure: Structure
    confidence: np.ndarray
    correct: np.ndarray
    cost: np.ndarray
    levels: tuple[tuple[float, ...], ...] = field(default=())

    def stops(self, thresholds: Sequence[float]) -> np.ndarray:
        """The tier that answers each item under these thresholds (the final tier when no gate accepts)."""
        return stopping_tier(self.confidence, thresholds)

    def outcome(self, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        rows, stop = np.arange(self.correct.shape[0]), self.stops(thresholds)
        return self.correct[rows, stop], self.cost[rows, stop]

    def grid(self) -> Iterator[tuple[float, ...]]:
        return itertools.product(*self.levels)


class Workbench:
    """Tier runs, chains' inputs and out-of-fold scores on one tuning log, each computed once."""

    def __init__(self, log: LogTable, extract: Callable[[str], str | None], folds: np.ndarray, fit: FitOptions):
        self.log, self.extract, self.folds, self.fit = log, extract, folds, fit
        self._runs: dict[TierSpec, TierRun] = {}
        self._scores: dict[tuple[TierSpec, ...], np.ndarray] = {}

    def run(self, spec: TierSpec) -> TierRun:
        if spec not in self._runs:
            from cascade.eval.analysis.offline_tiers import run_tier

            self._runs[spec] = run_tier(self.log, spec, self.extract)
        return self._runs[spec]

    def oof_scores(self, chain: tuple[TierSpec, ...]) -> np.ndarray:
        """Out-of-fold P(correct) of the last tier of `chain`, given the tiers before it."""
        if chain not in self._scores:
            runs = [self.run(s) for s in chain]
            inputs = chain_inputs(self.log, runs, len(runs) - 1)
            self._scores[chain] = cross_fit(inputs, runs[-1].correct, self.folds, self.fit)
        return self._scores[chain]

    def confidence(self, structure: Structure, j: int) -> np.ndarray:
        gate = structure.gates[j]
        runs = [self.run(g.spec) for g in structure.gates[: j + 1]]
        if gate.verifier == "vote":
            values = runs[j].share
        elif gate.verifier == "agreement":
            values = agreement(runs, j)
        else:
            values = self.oof_scores(tuple(g.spec for g in structure.gates[: j + 1]))
        answered = np.array([a is not None for a in runs[j].answers])
        return np.where(answered, values, NEVER)

    def prepare(self, structure: Structure, max_levels: int) -> Prepared:
        runs = [self.run(s) for s in structure.specs]
        n, gates = len(self.log), len(structure.gates)
        columns = [self.confidence(structure, j) for j in range(gates)]
        confidence = np.stack(columns, axis=1) if gates else np.zeros((n, 0))
        correct = np.stack([r.correct for r in runs], axis=1)
        cost = np.cumsum(np.stack([r.cost for r in runs], axis=1), axis=1)
        levels = tuple(threshold_levels(confidence[:, j], max_levels) for j in range(gates))
        return Prepared(structure, confidence, correct, cost, levels)


def threshold_levels(confidence: np.ndarray, max_levels: int) -> tuple[float, ...]:
    """Thresholds worth trying at one gate: its distinct confidences (quantiles when there are more than
    `max_levels`), rounded down to 4 decimals so a written threshold still accepts the value it came from."""
    values = confidence[confidence >= 0]
    if not values.size:
        return (1.0,)
    distinct = np.unique(values)
    if distinct.size > max_levels:
        distinct = np.unique(np.quantile(values, np.linspace(0, 1, max_levels), method="lower"))
    return tuple(sorted({min(1.0, math.floor(float(v) * 1e4) / 1e4) for v in distinct}))
