"""`cascade replay --config`: exactly one cascade config, judged on a log of the same models.

No re-tuning and no model call: each tier's logged responses go through the tier's own answer
extractor (an ensemble votes as live), its own verifier (built from the config, as the engine
builds it) and the config's router, item by item, so the decisions are the ones the live cascade
would make. Verifiers that call models (self-verification, extra samples) cannot be replayed and
say so. The report keeps `cascade replay`'s keys and adds the cost ratio and EM difference against
the strongest model alone, each with a paired bootstrap interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade.config.schema import CascadeConfig
from cascade.decision.stopping import called_from, first_called, settle
from cascade.errors import UserError
from cascade.eval.analysis.offline_tiers import TierRun, TierSpec, run_tier
from cascade.eval.data.logs import LogTable
from cascade.eval.data.models import log_column
from cascade.io.answers import extractor
from cascade.protocols import DecideContext, Verifier, VerifyContext
from cascade.registry import BuildContext
from cascade.run.tier_verifiers import tier_verifiers
from cascade.store.access import StoreAccess
from cascade.types import Attempt, Completion, MemberOutput, MemberResult, RoutePlan, Verdict

NEVER = -1.0


@dataclass
class ConfigRun:
    """Per item: the tier that answered, correctness and cost; per tier and item, the verifier's confidence
    (`NEVER` where the tier read no answer: the router escalates whatever the threshold)."""

    config: CascadeConfig
    log: LogTable
    runs: list[TierRun]
    stop: np.ndarray
    correct: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    confidence: np.ndarray
    thresholds: list[float | None]


def tier_specs(config: CascadeConfig, log: LogTable, model_map: Mapping[str, str] | None = None) -> list[TierSpec]:
    """Each config tier over the log's columns; a model the log lacks is a UserError naming it."""
    specs = []
    for tier in config.tiers:
        members = tier.member_specs()
        columns = [log_column(m.model, log.models, model_map) for m in members]
        missing = [m.model for m, c in zip(members, columns, strict=True) if c is None]
        if missing:
            raise UserError(
                f"tier {tier.name!r}: the log has no model {', '.join(missing)} (its models: {', '.join(log.models)}); "
                "map names with --model-map LOG_NAME=MODEL"
            )
        weights = tuple(m.weight for m in members) if tier.is_ensemble else ()
        specs.append(TierSpec(tier.name, tuple(str(c) for c in columns), weights))
    return specs


def run_config(config: CascadeConfig, log: LogTable, model_map: Mapping[str, str] | None = None) -> ConfigRun:
    """Replay `config` on every item of `log` (items with unknown correctness are dropped first)."""
    specs = tier_specs(config, log, model_map)
    log = log.select(list(dict.fromkeys(m for s in specs for m in s.models)))
    if not len(log):
        raise UserError("no items to replay (correctness unknown for every item)")
    runs = [run_tier(log, spec, extractor(tier.answer)) for spec, tier in zip(specs, config.tiers, strict=True)]
    build = BuildContext(config, stores=StoreAccess(), learn_on_build=False)
    verifiers = tier_verifiers(config, build)
    router = build.build("router", config.router, ("router",))
    pre_router = build.build("pre_router", config.pre_router, ("pre_router",)) if config.pre_router else None
    decided = asyncio.run(_decide_all(config, log, runs, verifiers, router, pre_router))
    n, rows = len(log), np.arange(len(log))
    stop = np.array([d[0] for d in decided], dtype=int)
    confidence = np.array([d[2] for d in decided], dtype=float).reshape(n, len(runs))
    correct = np.stack([r.correct for r in runs], axis=1)[rows, stop]
    spent = np.stack([r.cost for r in runs], axis=1)
    used = np.stack([r.tokens for r in runs], axis=1)
    called = np.zeros((n, len(runs)), dtype=bool)
    for i, (_, path, _) in enumerate(decided):
        called[i, path] = True
    thresholds = [_threshold(router, t.name) for t in config.tiers]
    return ConfigRun(
        config, log, runs, stop, correct, (spent * called).sum(1), (used * called).sum(1), confidence, thresholds
    )


async def _decide_all(
    config: CascadeConfig, log: LogTable, runs: list[TierRun], verifiers: list[Verifier], router: Any, pre_router: Any
) -> list[tuple[int, list[int], list[float]]]:
    """Per item: the tier that answers, the tiers called on the way (the stop rule of live runs,
    `cascade.decision.stopping`), and the confidence of every tier from the start that the route does
    not skip, past the stop too (the report's threshold sweeps read them)."""
    names = [tier.name for tier in config.tiers]
    out = []
    for i, item in enumerate(log.items):
        plan = pre_router.plan(item.prompt, config.tiers) if pre_router is not None else RoutePlan()
        attempts: list[Attempt] = []
        confidences, stop, called = [NEVER] * len(runs), None, []
        j: int | None = first_called(plan.start_tier, names, plan.skip)
        while j is not None:
            verdict, members = await _verify(config, item.prompt, runs, j, i, verifiers[j], attempts)
            answer = runs[j].answers[i]
            confidences[j] = verdict.confidence if answer is not None else NEVER
            ctx = DecideContext(
                query=item.prompt,
                tier=config.tiers[j],
                tier_index=j,
                n_tiers=len(runs),
                verdict=verdict,
                answer=answer,
                previous=attempts[:],
            )
            settled = settle(router.decide(ctx).action, j, names, plan.skip)
            if stop is None:
                called.append(j)
                if settled.decision == "accept" or settled.why:
                    stop = j
            attempts.append(
                Attempt(
                    tier=config.tiers[j].name,
                    model=config.tiers[j].label,
                    answer=answer,
                    decision="escalate",
                    confidence=verdict.confidence,
                    members=members,
                )
            )
            j = called_from(j + 1, names, plan.skip)
        out.append((stop if stop is not None else len(runs) - 1, called, confidences))
    return out


async def _verify(
    config: CascadeConfig, query: str, runs: list[TierRun], j: int, i: int, verifier: Verifier, previous: list[Attempt]
) -> tuple[Verdict, list[MemberResult]]:
    """The tier's verifier on the logged output, with the same context the engine would give it."""
    run, tier = runs[j], config.tiers[j]
    sample = Completion(run.raw[i] or "", tier.label, 0, 0, float(run.cost[i]))
    members = (
        [
            MemberOutput(m.model, w, Completion("", m.model, 0, 0), a)
            for m, w, a in zip(tier.member_specs(), run.spec.member_weights, run.members[i], strict=False)
        ]
        if tier.is_ensemble
        else []
    )

    async def no_draw() -> tuple[Completion, str | None]:
        raise UserError(f"tier {tier.name!r}: its verifier draws extra samples, which a log cannot replay")

    extract = extractor(tier.answer)
    ctx = VerifyContext(
        query=query,
        tier=tier,
        tier_index=j,
        samples=[sample],
        answers=[run.answers[i]],
        previous=previous[:],
        draw=no_draw,
        judge=_NoJudge(tier.name),
        extract=extract,
        members=members,
    )
    verdict = await verifier.verify(ctx)
    results = [MemberResult(model=m.model, weight=m.weight, answer=m.answer) for m in members]
    return verdict, results


class _NoJudge:
    def __init__(self, tier: str) -> None:
        self.tier = tier

    async def complete(self, request: Any) -> Completion:
        raise UserError(f"tier {self.tier!r}: its verifier calls a model, which a log cannot replay")


def _threshold(router: Any, tier: str) -> float | None:
    threshold_for = getattr(router, "threshold_for", None)
    return float(threshold_for(tier)) if callable(threshold_for) else None
