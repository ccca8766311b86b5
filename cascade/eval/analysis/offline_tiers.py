"""Offline tiers: what a tier of one model or an ensemble of logged models would have answered.

A `TierSpec` names log columns (one model, or several that vote); `run_tier` reads every item's
logged responses through the tier's answer extractor, votes an ensemble's answers, and adds up
what the calls cost. `chain_inputs` then builds, per item, the `ScoringInput` a live cascade of
these tiers would hand its verifier, so offline scores are the live ones. A log that graded
responses without keeping them gives the tier a stand-in answer: a scorer trained on it learns
nothing from the answer (a constant), so it scores a live answer as it scored the logged one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cascade.eval.data.logs import LogTable, TierLog
from cascade.run.ensemble import agrees, vote
from cascade.scoring import ScoringInput

Extract = Callable[[str], str | None]


@dataclass(frozen=True)
class TierSpec:
    """A tier over log columns: one model, or an ensemble whose members vote with `weights`."""

    name: str
    models: tuple[str, ...]
    weights: tuple[float, ...] = ()

    @property
    def is_ensemble(self) -> bool:
        return len(self.models) > 1

    @property
    def member_weights(self) -> tuple[float, ...]:
        return self.weights or (1.0,) * len(self.models)


@dataclass(frozen=True)
class TierRun:
    """One tier's outputs on every item: answer, shown text, member answers, correctness, cost, vote share."""

    spec: TierSpec
    answers: tuple[str | None, ...]
    raw: tuple[str | None, ...]
    members: tuple[tuple[str | None, ...], ...]
    correct: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    share: np.ndarray


def run_tier(log: LogTable, spec: TierSpec, extract: Extract) -> TierRun:
    """The tier on every item of `log`; an ensemble shows (and is scored by) its winning member's response."""
    answers, raw, members = [], [], []
    correct, cost, tokens, share = (np.zeros(len(log)) for _ in range(4))
    weights = spec.member_weights
    for i, item in enumerate(log.items):
        cells = [item.tiers[m] for m in spec.models]
        said = tuple(_read(c, m, extract) for c, m in zip(cells, spec.models, strict=True))
        if spec.is_ensemble:
            ballot = vote(said, weights)
            answer, winner, share[i] = ballot.answer, ballot.winner, ballot.share
        else:
            answer, winner, share[i] = said[0], 0, float(said[0] is not None)
        shown = cells[winner if winner is not None else 0]
        answers.append(answer)
        raw.append(shown.answer)
        members.append(said if spec.is_ensemble else ())
        correct[i] = 1.0 if shown.correct else 0.0
        cost[i] = math.fsum(c.cost_usd for c in cells)
        tokens[i] = math.nan if any(c.tokens is None for c in cells) else sum(c.tokens or 0 for c in cells)
    return TierRun(spec, tuple(answers), tuple(raw), tuple(members), correct, cost, tokens, share)


def _read(cell: TierLog, model: str, extract: Extract) -> str | None:
    """The answer in a logged response; for a graded response the log did not keep (RouteLLM's MMLU),
    a stand-in answer unique to the model, so the tier still 'answered' but agrees with nobody."""
    if cell.answer is not None:
        return extract(cell.answer)
    return None if cell.correct is None else f"(answer of {model}, not logged)"


def chain_inputs(log: LogTable, runs: Sequence[TierRun], j: int) -> list[ScoringInput]:
    """Per item, what tier `j` of this chain hands its verifier: its answer, members and the earlier tiers'."""
    run = runs[j]
    weights = run.spec.member_weights if run.spec.is_ensemble else ()
    return [
        ScoringInput(
            query=item.prompt,
            tier=run.spec.name,
            tier_index=j,
            answer=run.answers[i],
            raw=run.raw[i],
            members=run.members[i],
            member_weights=weights,
            earlier=tuple(r.answers[i] for r in runs[:j]),
            earlier_members=tuple(r.members[i] for r in runs[:j]),
        )
        for i, item in enumerate(log.items)
    ]


def agreement(runs: Sequence[TierRun], j: int) -> np.ndarray:
    """The `agreement` verifier offline (against the most recent answered earlier tier; 0.5 with none)."""
    out = np.zeros(len(runs[j].answers))
    for i, answer in enumerate(runs[j].answers):
        earlier = [r.answers[i] for r in runs[:j] if r.answers[i] is not None]
        out[i] = 0.5 if not earlier else (0.0 if answer is None else float(agrees(answer, earlier[-1])))
    return out
