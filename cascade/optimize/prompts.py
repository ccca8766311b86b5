"""Tuning a config on a team's own prompts without gold answers: the reference tier's answers are the labels.

Every tier is first called alone on every prompt (through the output cache), so the reference's
answer to each is known. Each subset of the tiers that keeps the last one is then replayed once
through the real engine on those cached outputs with every gate at threshold 1.0. That one run
tells which tier would answer under any thresholds: a gate whose confidence is 1.0 accepts under
every threshold, and every other gate escalates, so the later tiers' turns are all recorded. The
candidates (subsets × thresholds) are then judged by the tuner's own method
(`cascade.optimize.select`): thresholds cross-fitted, agreement with the reference held at a
one-sided lower bound that holds for every subset at once (`--selection each`: each its own), the
cheapest that saves enough, else the reference alone. The choice is written as the original config
with the kept tiers and their thresholds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade.audit.agreement import same_answer
from cascade.config.schema import CascadeConfig
from cascade.errors import UserError
from cascade.eval.analysis.offline_tiers import TierSpec
from cascade.eval.data.items import Item
from cascade.eval.data.logs import LogItem, LogTable, TierLog
from cascade.eval.live.runner import query_of
from cascade.optimize.candidates import NEVER, Gate, Prepared, Structure, threshold_levels
from cascade.optimize.live_tune import with_thresholds
from cascade.optimize.reference import STRONGEST
from cascade.optimize.select import Reference, Summary, choose, selection_for, summarise
from cascade.optimize.tuner import LEVELS, Settings, TuneResult, frontier_of
from cascade.protocols import Completer
from cascade.run.engine import Cascade
from cascade.scoring.train import fold_ids
from cascade.types import CascadeResult


@dataclass(frozen=True)
class Prompts:
    """Prompts with each tier's answer alone (`rows`, one mapping per prompt), the reference's name, and the
    form answers are compared in (`cascade.audit.agreement`: as live audits compare them)."""

    items: list[Item]
    rows: list[dict[str, TierLog]]
    reference: str
    form: str

    def answers(self) -> list[str | None]:
        return [row[self.reference].answer for row in self.rows]

    def subset(self, keep: Sequence[int]) -> Prompts:
        return Prompts([self.items[i] for i in keep], [self.rows[i] for i in keep], self.reference, self.form)


def reference_tier(config: CascadeConfig, name: str) -> str:
    """The tier whose answers are the labels: the last (the cascade's fallback and strongest tier)."""
    last = config.tiers[-1].name
    if name not in (STRONGEST, last):
        raise UserError(f"--reference {name!r}: with --config the reference is the last tier, {last!r} ('strongest')")
    if len(config.tiers) < 2:
        raise UserError("a one-tier cascade has nothing to tune: the reference alone is the config")
    return last


def agreement_form(config: CascadeConfig, task: str | None) -> str:
    """How answers are compared: as `--task` reads them, else in the reference tier's answer format."""
    return task or config.tiers[-1].answer.format


def answered(prompts: Prompts) -> tuple[Prompts, int]:
    """The prompts the reference answered (the others have nothing to agree with), and how many were left out."""
    keep = [i for i, answer in enumerate(prompts.answers()) if answer is not None]
    if prompts.items and not keep:
        raise UserError(
            f"tier '{prompts.reference}' answered none of {len(prompts.items)} prompts: check its model, endpoint "
            "and key (`cascade run --config C PROMPT` shows the error)"
        )
    return prompts.subset(keep), len(prompts.items) - len(keep)


async def subset_outcomes(
    config: CascadeConfig,
    completer: Completer,
    prompts: Prompts,
    kept: tuple[str, ...],
    *,
    template: str | None = None,
    concurrency: int = 4,
) -> Prepared:
    """Per prompt, for the cascade of `kept` gates before the last tier: each gate's confidence (`NEVER`
    without an answer, or when the tier was not called) and agreement and cost when stopping at each tier."""
    last = config.tiers[-1].name
    replayed = Cascade(with_thresholds(config, dict.fromkeys(kept, 1.0), (*kept, last)), completer=completer)
    results = await replayed.abatch([query_of(item, template) for item in prompts.items], concurrency=concurrency)
    n, gates = len(results), len(kept)
    confidence = np.full((n, gates), NEVER)
    correct, cost = np.zeros((n, gates + 1)), np.zeros((n, gates + 1))
    for i, (result, reference) in enumerate(zip(results, prompts.answers(), strict=True)):
        confidence[i], correct[i], cost[i] = _stops(result, kept, reference, prompts.form)
    gate_specs = tuple(Gate(TierSpec(name, (name,)), "configured") for name in kept)
    structure = Structure(gate_specs, TierSpec(last, (last,)))
    levels = tuple(threshold_levels(confidence[:, j], LEVELS.get(gates, 3)) for j in range(gates))
    return Prepared(structure, confidence, correct, cost, levels)


def _stops(
    result: CascadeResult, kept: tuple[str, ...], reference: str | None, form: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One run with every gate escalating: each gate's confidence, and what stopping at each tier would give."""
    by_tier = {a.tier: a for a in result.attempts}
    confidence, correct, cost = np.full(len(kept), NEVER), np.zeros(len(kept) + 1), np.zeros(len(kept) + 1)
    spent = 0.0
    for j, name in enumerate(kept):
        attempt = by_tier.get(name)
        if attempt is not None:
            spent += attempt.cost_usd
            if attempt.answer is not None and attempt.confidence is not None:
                confidence[j] = attempt.confidence
            correct[j] = same_answer(attempt.answer, reference, form)
        cost[j] = spent
    correct[-1], cost[-1] = same_answer(result.answer, reference, form), result.total_cost_usd
    return confidence, correct, cost


async def search(
    config: CascadeConfig, completer: Completer, prompts: Prompts, settings: Settings, template: str | None = None
) -> TuneResult:
    """Every subset of the tiers before the last (with it), judged as `cascade tune --logs` judges cascades."""
    if len(prompts.items) < 2 * settings.folds:
        raise UserError(
            f"{len(prompts.items)} tuning prompts with a reference answer: too few ({2 * settings.folds} at least)"
        )
    objective = settings.objective
    optional = [t.name for t in config.tiers[:-1]]
    subsets = [kept for size in range(len(optional) + 1) for kept in itertools.combinations(optional, size)]
    prepared = [await subset_outcomes(config, completer, prompts, kept, template=template) for kept in subsets]
    folds = fold_ids(len(prompts.items), settings.folds, settings.seed)
    ref = Reference(prepared[0].correct[:, -1], prepared[0].cost[:, -1], folds)  # the last tier alone
    summaries = [summarise(p, ref, objective) for p in prepared]
    selection = selection_for(summaries, ref, objective)
    chosen = choose(summaries, objective, selection)
    offered = [s for s in summaries if s is not chosen and s.structure.gates and s.offers]
    alternatives = frontier_of(offered, selection)[:8]
    log = LogTable([t.name for t in config.tiers], _log_items(prompts), source=config.name)
    alone = next(s for s in summaries if not s.structure.gates)
    return TuneResult(log, prompts.reference, chosen, alone, alternatives, len(subsets), None, settings, selection)


def _log_items(prompts: Prompts) -> list[LogItem]:
    """The tiers' answers alone, each marked right when it agrees with the reference's."""
    reference = prompts.answers()
    return [
        LogItem(
            item.id,
            item.prompt,
            {name: _agreeing(cell, said, prompts.form) for name, cell in row.items()},
            prompts.form,
        )
        for item, row, said in zip(prompts.items, prompts.rows, reference, strict=True)
    ]


def _agreeing(cell: TierLog, reference: str | None, form: str) -> TierLog:
    return TierLog(same_answer(cell.answer, reference, form), cell.cost_usd, cell.tokens, cell.answer, cell.confidence)


def chosen_tiers(summary: Summary) -> tuple[tuple[str, ...], dict[str, float]]:
    """The kept tiers (the last included) and the gates' thresholds of a dataset-mode choice."""
    structure = summary.structure
    names = tuple(spec.name for spec in structure.specs)
    return names, {g.spec.name: float(t) for g, t in zip(structure.gates, summary.thresholds, strict=True)}


async def held_out(
    config: CascadeConfig,
    completer: Completer,
    prompts: Prompts,
    summary: Summary,
    *,
    template: str | None = None,
    concurrency: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chosen cascade on prompts tuning never saw: per prompt its agreement with the reference, its cost,
    and the reference's own cost alone."""
    tiers, thresholds = chosen_tiers(summary)
    tuned = Cascade(with_thresholds(config, thresholds, tiers), completer=completer)
    results = await tuned.abatch([query_of(item, template) for item in prompts.items], concurrency=concurrency)
    reference = prompts.answers()
    agreement = np.array(
        [same_answer(r.answer, said, prompts.form) for r, said in zip(results, reference, strict=True)]
    )
    cost = np.array([r.total_cost_usd for r in results])
    return agreement.astype(float), cost, np.array([row[prompts.reference].cost_usd for row in prompts.rows])
