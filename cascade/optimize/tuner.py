"""`tune`: search cascades over the models of a log for the cheapest that keeps the strongest model's EM
(or the best net benefit), with out-of-fold scores and a noise margin, so the choice holds on new items.

The search, FrugalGPT-style but honest about noise: gate tiers are single models or ensembles of 2-3
of the cheaper models, each judged by its vote, by agreement with the tier before, or by a learned
scorer; chains of up to `max_gates` gates end at the strongest model. Depth one is searched fully;
deeper chains extend the best `beam` ones (a beam search, as exhaustive search grows as a power of
the tiers). Every candidate's thresholds come from a grid over its own out-of-fold confidences.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cascade.errors import UserError
from cascade.eval.analysis.offline_tiers import TierSpec, chain_inputs
from cascade.eval.data.logs import LogTable
from cascade.optimize.candidates import Gate, Structure, VerifierKind, Workbench
from cascade.optimize.reference import reference_model, relabel
from cascade.optimize.select import (
    Objective,
    Reference,
    Selection,
    Summary,
    choose,
    lower_bounds,
    selection_for,
    summarise,
)
from cascade.optimize.tolerances import TolerancePoint, at_tolerances
from cascade.scoring import Scorer, calibration_report
from cascade.scoring.train import FitOptions, fit_scorer, fold_ids

LEVELS = {1: 24, 2: 8, 3: 5}  # thresholds tried per gate, by the number of gates (grids multiply)


@dataclass(frozen=True)
class Settings:
    objective: Objective = field(default_factory=Objective)
    folds: int = 5
    seed: int = 0
    max_gates: int = 3
    max_members: int = 3
    pool: int = 8
    beam: int = 6
    max_gate_share: float = 0.5
    reference: str | None = None  # label-free: this model's answers (or "strongest": the dearest's) are the labels
    fit: FitOptions = field(
        default_factory=lambda: FitOptions(shared_head=False, calibration="sigmoid", calibration_folds=5)
    )


@dataclass
class TuneResult:
    """The choice, the reference it was measured against, and what else came close."""

    log: LogTable
    strongest: str
    chosen: Summary
    reference: Summary
    alternatives: list[Summary]
    considered: int
    scorer: Scorer | None
    settings: Settings
    selection: Selection
    looser: list[TolerancePoint] = field(default_factory=list)  # when nothing pays: what each tolerance buys
    each: TolerancePoint | None = None  # the cheaper choice each candidate's own bound would make, if any

    @property
    def measure(self) -> str:
        return measure_of(self.settings, self.strongest)

    @property
    def pays(self) -> bool:
        """Whether a cascade beat the strongest model alone (else the choice is that model)."""
        return bool(self.chosen.structure.gates) or self.chosen.structure.final.models[0] != self.strongest


def strongest_model(log: LogTable, z: float) -> str:
    """The model a cascade must keep up with: the most accurate on the tuning items, or, among the
    models it does not beat significantly (paired one-sided bound at `z`), the most expensive.

    On a few hundred items a cheaper model often edges out the strongest by luck (MBPP: on half of
    its 299 items Claude 2 or GPT-3.5 can top GPT-4, 4 points behind on all of them); when the
    items cannot tell, price is the better prior, and the safe reference is the dearest of the tied."""
    best = max(log.models, key=lambda m: (log.correct(m).mean(), -log.cost(m).sum()))
    tied = [m for m in log.models if lower_bounds(log.correct(best) - log.correct(m), z)[1] <= 0]
    return max(tied, key=lambda m: (log.cost(m).sum(), log.correct(m).mean()))


def tier_name(models: Sequence[str]) -> str:
    """A readable tier name from log model names: 'mixtral-8x7b-chat+yi-34b-chat'."""
    return "+".join(re.sub(r"[^a-z0-9.]+", "-", m.rsplit("/", 1)[-1].lower()).strip("-") for m in models)


def single(model: str) -> TierSpec:
    return TierSpec(tier_name([model]), (model,))


def measure_of(settings: Settings, strongest: str) -> str:
    """What the figures measure: EM against gold, or (label-free) agreement with the reference's answers."""
    return "EM" if settings.reference is None else f"agreement with {strongest}"


def labelled(log: LogTable, settings: Settings) -> tuple[LogTable, str]:
    """The tuning items with their labels, and the model a cascade must keep up with: gold correctness and
    the strongest model by EM; or, label-free, agreement with the reference (the gold is never read)."""
    if settings.reference is not None:
        reference = reference_model(log, settings.reference)
        return relabel(log, reference).select(log.models), reference
    log = log.select(log.models)
    return log, strongest_model(log, settings.objective.z)


def tune(log: LogTable, extract: Callable[[str], str | None], settings: Settings = Settings()) -> TuneResult:
    """Search, choose, and fit the chosen cascade's scorer on every tuning item."""
    log, strongest = labelled(log, settings)
    if len(log) < 2 * settings.folds:
        raise UserError(f"{len(log)} items with known correctness: too few to tune ({2 * settings.folds} at least)")
    objective = settings.objective
    bench = Workbench(log, extract, fold_ids(len(log), settings.folds, settings.seed), settings.fit)
    ref = Reference(log.correct(strongest), log.cost(strongest), bench.folds)
    summaries = search(bench, ref, strongest, settings, objective)
    selection = selection_for(summaries, ref, objective)
    chosen = choose(summaries, objective, selection)
    reference_summary = next(s for s in summaries if not s.structure.gates and s.structure.final.models == (strongest,))
    scorer = None
    if chosen.structure.uses_scorer:
        scorer = final_scorer(bench, chosen.structure, settings, log.source, strongest)
    offered = [s for s in summaries if s is not chosen and s.structure.gates and s.offers]
    alternatives = frontier_of(offered, selection)[:8]
    nothing_pays = objective.kind == "tolerance" and not chosen.structure.gates
    looser = (
        at_tolerances(lambda at: search(bench, ref, strongest, settings, at), ref, objective) if nothing_pays else []
    )
    return TuneResult(
        log, strongest, chosen, reference_summary, alternatives, len(summaries), scorer, settings, selection, looser,
        cheaper_unaccounted(summaries, objective, selection, chosen),
    )  # fmt: skip


def search(bench: Workbench, ref: Reference, strongest: str, settings: Settings, objective: Objective) -> list[Summary]:
    """Every candidate the beam search visits for `objective` (those that fall back too), summarised."""
    summaries: list[Summary] = []

    def evaluate(structures: Iterator[Structure], gates: int) -> list[Structure]:
        ranked: list[tuple[tuple[float, float], int, Structure]] = []
        for structure in structures:
            found = summarise(bench.prepare(structure, LEVELS[gates] if gates else 1), ref, objective)
            summaries.append(found)
            if found.offers:
                ranked.append((_rank(found, objective), len(ranked), structure))
        ranked.sort(key=lambda entry: entry[:2])
        return [structure for _, _, structure in ranked[: settings.beam]]

    log = bench.log
    evaluate(iter([Structure((), single(m)) for m in _singles(log, strongest, objective)]), 0)
    options = list(_gate_options(log, strongest, settings))
    cost = {g.spec: float(bench.run(g.spec).cost.sum()) for g in options}
    first = (g for g in options if g.verifier != "agreement")  # agreement needs a tier before it
    frontier = evaluate(iter(Structure((g,), single(strongest)) for g in first), 1)
    for depth in range(2, settings.max_gates + 1):
        extended = (
            Structure((*s.gates, g), s.final)
            for s in frontier
            for g in _promising(options, frontier)
            if _extends(s, g, cost)
        )
        frontier = evaluate(extended, depth)
    return summaries


def tune_structure(
    log: LogTable, extract: Callable[[str], str | None], structure: Structure, settings: Settings = Settings()
) -> TuneResult:
    """Thresholds (and scorer) for one given structure, chosen as `tune` would; when no setting meets
    the objective, its safest one (the result then does not `pay` in the objective's sense)."""
    log, strongest = labelled(log, settings)
    bench = Workbench(log, extract, fold_ids(len(log), settings.folds, settings.seed), settings.fit)
    ref = Reference(log.correct(strongest), log.cost(strongest), bench.folds)
    gates = len(structure.gates)
    chosen = summarise(bench.prepare(structure, LEVELS[gates] if gates else 1), ref, settings.objective)
    alone = summarise(bench.prepare(Structure((), single(strongest)), 1), ref, settings.objective)
    scorer = final_scorer(bench, structure, settings, log.source, strongest) if structure.uses_scorer else None
    selection = Selection("each", settings.objective.z, 1)  # one structure: nothing chosen among candidates
    return TuneResult(log, strongest, chosen, alone, [], 1, scorer, settings, selection)


def cheaper_unaccounted(
    summaries: Sequence[Summary], objective: Objective, selection: Selection, chosen: Summary
) -> TolerancePoint | None:
    """What each candidate's own bound would choose when that is cheaper than the simultaneous choice: the
    savings the promise costs, shown to the user with the risk they carry."""
    if selection.method != "simultaneous":
        return None
    each = Selection("each", objective.z, selection.family)
    other = choose(summaries, objective, each)
    return TolerancePoint(objective.tolerance, other, each) if other.ratio < chosen.ratio - 1e-12 else None


def frontier_of(summaries: Sequence[Summary], selection: Selection) -> list[Summary]:
    """Candidates no other beats on both cost and the lower bound, cheapest first: the trade-offs on offer."""
    out: list[Summary] = []
    for s in sorted(summaries, key=lambda s: (s.ratio, -selection.bound(s))):
        if not out or selection.bound(s) > selection.bound(out[-1]):
            out.append(s)
    return out


def _rank(s: Summary, objective: Objective) -> tuple[float, float]:
    """How promising a structure is: its cross-fitted cost when feasible (else ∞), then its lower bound."""
    if objective.kind == "value":
        return (-s.benefit, 0.0)
    return (s.ratio if s.lcb >= -objective.tolerance else float("inf"), -s.lcb)


def _singles(log: LogTable, strongest: str, objective: Objective) -> list[str]:
    """Models alone: the strongest always (the fallback); every model when maximising net benefit."""
    return list(log.models) if objective.kind == "value" else [strongest]


def _gate_options(log: LogTable, strongest: str, settings: Settings) -> Iterator[Gate]:
    """Single models and ensembles of the `pool` most accurate models that cost under
    `max_gate_share` of the strongest, each with the verifiers that can judge it."""
    limit = settings.max_gate_share * float(log.cost(strongest).sum())
    cheap = [m for m in log.models if m != strongest and float(log.cost(m).sum()) < limit]
    pool = sorted(cheap, key=lambda m: -log.correct(m).mean())[: settings.pool]
    pool.sort(key=lambda m: float(log.cost(m).sum()))
    answered = {m for m in pool if log.has_answers(m)}
    for size in range(1, settings.max_members + 1):
        for members in itertools.combinations(pool, size):
            spec = TierSpec(tier_name(members), members)
            kinds: list[VerifierKind] = ["scorer"]
            if size > 1 and answered.issuperset(members):
                kinds.insert(0, "vote")
            elif size == 1 and members[0] in answered:
                kinds.append("agreement")
            yield from (Gate(spec, kind) for kind in kinds)


def _promising(options: Sequence[Gate], frontier: Sequence[Structure], keep: int = 12) -> list[Gate]:
    """Gates worth appending: those of the frontier's structures first, then the rest, at most `keep` specs."""
    specs = list(dict.fromkeys(g.spec for s in frontier for g in s.gates))
    specs += [g.spec for g in options if g.spec not in specs]
    chosen = set(specs[:keep])
    return [g for g in options if g.spec in chosen]


def _extends(structure: Structure, gate: Gate, cost: dict[TierSpec, float]) -> bool:
    """A later gate asks new models and (cheapest first) costs no less than the gate before it."""
    used = {m for g in structure.gates for m in g.spec.models}
    return not used & set(gate.spec.models) and cost[gate.spec] >= cost[structure.gates[-1].spec]


def final_scorer(bench: Workbench, structure: Structure, settings: Settings, sources: str, strongest: str) -> Scorer:
    """The chosen cascade's scorer, one head per scored gate, fitted on every tuning item; its report is
    the calibration of the out-of-fold scores the thresholds were chosen on (each item scored by a
    scorer fitted without it)."""
    runs = [bench.run(s) for s in structure.specs]
    inputs, labels, report = [], [], {}
    for j, gate in enumerate(structure.gates):
        if gate.verifier == "scorer":
            inputs += chain_inputs(bench.log, runs, j)
            labels.append(runs[j].correct)
            oof = bench.oof_scores(tuple(g.spec for g in structure.gates[: j + 1]))
            report[gate.spec.name] = calibration_report(oof, runs[j].correct)
    training = {"sources": sources, "cascade": structure.label(), "folds": len(np.unique(bench.folds))}
    training["labels"] = measure_of(settings, strongest)
    scorer = fit_scorer(inputs, np.concatenate(labels), settings.fit, training=training)
    note = "out-of-fold predictions on the tuning items: each item scored by a scorer fitted without it"
    return replace(scorer, report={"calibration": report, "note": note})
