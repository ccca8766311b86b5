"""Scorer examples from cached outputs, built exactly as the live `scorer` verifier builds them.

Each example goes through a real `VerifyContext` and `ScoringInput.from_verify_context`, so the
features a trained scorer sees offline are the ones it will see in the cascade. A tier is judged
after whichever lower quick tiers were called for the query; with task-aware skipping that can be
any subset of them, so every subset is an example (grouped by item for cross-fitting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from benchmarks.support.local_outputs import QUICK, TIERS, ItemOutputs
from cascade.config.schema import TierConfig
from cascade.protocols import VerifyContext
from cascade.scoring import Scorer, ScoringInput, calibration_report
from cascade.scoring.train import FitOptions, cross_fit, fit_scorer
from cascade.types import Attempt, Completion

Subset = tuple[str, ...]


@dataclass(frozen=True)
class Example:
    key: str  # family/item id: the group for cross-fitting
    family: str
    tier: str
    earlier: Subset  # the lower quick tiers that were called before this one
    inp: ScoringInput
    correct: bool


def lower_subsets(tier: str) -> Iterator[Subset]:
    """Every set of quick tiers below `tier` that may have been called before it, in tier order."""
    below = [t for t in QUICK if TIERS.index(t) < TIERS.index(tier)]
    for size in range(len(below) + 1):
        yield from combinations(below, size)


def scoring_input(row: ItemOutputs, tier: TierConfig, index: int, earlier: Subset, sample: Completion) -> ScoringInput:
    """The record the live verifier makes for `tier`'s answer after the `earlier` tiers escalated."""
    previous = [
        Attempt(tier=name, model=name, answer=row.outputs[name].answer, decision="escalate") for name in earlier
    ]
    answer = row.outputs[tier.name].answer
    ctx = VerifyContext(
        query=row.query,
        tier=tier,
        tier_index=index,
        samples=[sample],
        answers=[answer],
        previous=previous,
        draw=_no_draw,
        judge=_NoJudge(),
        extract=_no_extract,
    )
    return ScoringInput.from_verify_context(ctx)


def examples(rows: Sequence[ItemOutputs], tiers: Sequence[TierConfig]) -> list[Example]:
    out = []
    for row in rows:
        for index, tier in enumerate(tiers):
            output = row.outputs.get(tier.name)
            if output is None:
                continue
            for earlier in lower_subsets(tier.name):
                if all(name in row.outputs for name in earlier):
                    inp = scoring_input(row, tier, index, earlier, output.completion)
                    key = f"{row.family}/{row.item.id}"
                    out.append(Example(key, row.family, tier.name, earlier, inp, output.correct))
    return out


def fit(train: Sequence[Example], training: dict[str, object] | None = None) -> Scorer:
    return fit_scorer([e.inp for e in train], [e.correct for e in train], OPTIONS, training=training)


def cross_fitted(data: Sequence[Example], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold P(correct) for every example; folds group all examples of one item."""
    keys = sorted({e.key for e in data})
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = {keys[i]: k % folds for k, i in enumerate(order)}
    fold = np.array([fold_of[e.key] for e in data])
    return cross_fit([e.inp for e in data], [e.correct for e in data], fold, OPTIONS)


def leave_one_family_out(data: Sequence[Example]) -> dict[str, dict[str, object]]:
    """For each family: a scorer trained on the other families, judged on this one's full chains."""
    report: dict[str, dict[str, object]] = {}
    for family in sorted({e.family for e in data}):
        scorer = fit([e for e in data if e.family != family])
        held = [e for e in data if e.family == family and e.earlier == full_chain(e.tier)]
        report[family] = judged(held, scorer.predict_many([e.inp for e in held]))
    return report


def judged(held: Sequence[Example], probs: np.ndarray) -> dict[str, object]:
    """Per tier: the scorer's calibration report, beside the AUROC of the raw min token probability."""
    out: dict[str, object] = {}
    for tier in TIERS:
        rows = [i for i, e in enumerate(held) if e.tier == tier]
        if not rows:
            continue
        labels = np.array([held[i].correct for i in rows])
        report = calibration_report(probs[rows], labels)
        report["auroc_min_token_prob"] = calibration_report(_min_prob(held, rows), labels)["auroc"]
        out[tier] = {k: v for k, v in report.items() if k != "bins"}
    return out


def full_chain(tier: str) -> Subset:
    return tuple(t for t in QUICK if TIERS.index(t) < TIERS.index(tier))


def _min_prob(held: Sequence[Example], rows: list[int]) -> np.ndarray:
    return np.array([float(np.exp(min(held[i].inp.logprobs or (-30.0,)))) for i in rows])


# What carries across question types (leave-one-family-out on the calibration split,
# benchmarks/RESULTS.md): token probabilities with the first answer token's top-1/top-2 margin,
# agreement with the lower tiers, the tier. The answer's form, its length and the query's features
# tell families apart instead (on SST-2 held out, `form=` read "positive" as a short-text answer,
# right 7% of the time on NQ); isotonic maps overfit a held-out family's base rate.
TRANSFERABLE = (
    *("p_min", "p_mean", "p_first", "p_geo", "p_margin", "margin_none", "logprobs_none", "logprob_tokens"),
    *("earlier_none", "earlier_share", "earlier_last", "earlier_all", "earlier_count"),
    *("tier_index", "tier="),
)
OPTIONS = FitOptions(c=1.0, calibration="sigmoid", features=TRANSFERABLE)


async def _no_draw() -> tuple[Completion, str | None]:
    raise RuntimeError("offline scoring draws no samples")


class _NoJudge:
    async def complete(self, request: object) -> Completion:
        raise RuntimeError("offline scoring calls no judge")


def _no_extract(text: str) -> str | None:
    return text
