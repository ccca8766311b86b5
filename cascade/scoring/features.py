"""The scorer's features: numbers computed from one `ScoringInput`, by name.

Names, not positions, are the contract: a scorer file lists the features it was trained on and
reads them from this dict (a name it does not know is ignored, one it misses reads 0), so adding a
feature here never breaks a scorer trained before. Every feature is bounded (shares, flags,
probabilities, log-scaled lengths), so a linear model on them behaves on inputs unlike its training.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from cascade.io.answers import normalise
from cascade.io.features import answer_form, query_features
from cascade.scoring.inputs import ScoringInput
from cascade.scoring.reasoning import arithmetic_checks, hedged, marks_answer

_INTEGER = re.compile(r"-?\d[\d,]*")
MEMBERS_NAMED = 4  # members (and earlier tiers) with a feature of their own: a learned per-model weight
_normal = lru_cache(maxsize=65536)(normalise)


def agrees(answer: str | None, other: str | None) -> bool:
    """`cascade.run.ensemble.agrees` with normal forms cached: features compare the same answers many times."""
    return answer is not None and other is not None and _normal(answer) == _normal(other) != ""


def features(inp: ScoringInput) -> dict[str, float]:
    """Every feature of one input (see the module docstring for the naming contract)."""
    out: dict[str, float] = {"tier_index": min(inp.tier_index, 8) / 4.0, f"tier={inp.tier}": 1.0}
    out |= _answer(inp)
    out |= _reasoning(inp.raw if inp.raw is not None else inp.answer or "")
    out |= _earlier(inp)
    out |= _members(inp)
    out |= _seen(inp)
    out |= _logprobs(inp)
    out |= _query(inp.query)  # a fresh dict: `|=` never mutates the cached one
    return out


def _log_len(n: int) -> float:
    return math.log1p(n) / 8.0


def _answer(inp: ScoringInput) -> dict[str, float]:
    answer = inp.answer or ""
    raw = inp.raw if inp.raw is not None else answer
    form = answer_form(inp.answer, raw)
    return {
        f"form={form}": 1.0,
        "answer_integer": float(_INTEGER.fullmatch(answer.strip()) is not None),
        "answer_in_last_line": float(bool(answer) and answer in (raw.strip().splitlines() or [""])[-1]),
        "answer_chars": _log_len(len(answer)),
        "raw_chars": _log_len(len(raw)),
        "raw_lines": _log_len(raw.count("\n")),
    }


def _reasoning(text: str) -> dict[str, float]:
    """Self-checks of a worked answer: arithmetic steps that are right, a marked answer, hedging."""
    checks = arithmetic_checks(text)
    out = {"marked": float(marks_answer(text)), "hedged": float(hedged(text)), "steps": _log_len(len(checks))}
    if checks:
        out["steps_right"] = sum(checks) / len(checks)
    return out


def _earlier(inp: ScoringInput) -> dict[str, float]:
    answered = [e for e in inp.earlier if e is not None]
    if not answered or inp.answer is None:
        return {"earlier_none": 1.0}
    agree = [agrees(inp.answer, e) for e in answered]
    each = {f"earlier{k}_agrees": float(agrees(inp.answer, e)) for k, e in enumerate(inp.earlier[:MEMBERS_NAMED])}
    return each | {
        "earlier_share": sum(agree) / len(agree),
        "earlier_last": float(agree[-1]),
        "earlier_all": float(all(agree)),
        "earlier_count": min(len(answered), 4) / 4.0,
    }


def _seen(inp: ScoringInput) -> dict[str, float]:
    """Agreement among every model asked so far (earlier tiers' members, this tier's members)."""
    seen = inp.seen()
    if inp.answer is None or len(seen) < 2:
        return {"seen_none": 1.0}
    return {
        "seen_share": sum(agrees(inp.answer, a) for a in seen) / len(seen),
        "seen_count": min(len(seen), 12) / 12,
    }


def _members(inp: ScoringInput) -> dict[str, float]:
    if not inp.members:
        return {"members_none": 1.0}
    weights = inp.weights
    total = sum(weights) or 1.0
    agree = sum(w for a, w in zip(inp.members, weights, strict=True) if agrees(inp.answer, a))
    answered = [a for a in inp.members if a is not None]
    distinct = len({_normal(a) for a in answered})
    each = {f"member{k}_agrees": float(agrees(inp.answer, a)) for k, a in enumerate(inp.members[:MEMBERS_NAMED])}
    return each | {
        "vote_share": agree / total,
        "members_answered": sum(w for a, w in zip(inp.members, weights, strict=True) if a is not None) / total,
        "members_unanimous": float(bool(answered) and distinct == 1 and len(answered) == len(inp.members)),
        "members_distinct": (distinct - 1) / max(1, len(inp.members) - 1) if answered else 1.0,
    }


def _logprobs(inp: ScoringInput) -> dict[str, float]:
    values = [lp for lp in inp.logprobs or () if not math.isnan(lp)]
    if not values:
        return {"logprobs_none": 1.0}
    probs = [math.exp(min(0.0, lp)) for lp in values]
    out = {
        "p_min": min(probs),
        "p_mean": sum(probs) / len(probs),
        "p_first": probs[0],
        "p_geo": math.exp(sum(min(0.0, lp) for lp in values) / len(values)),
        "logprob_tokens": _log_len(len(values)),
    }
    top = sorted((math.exp(min(0.0, lp)) for lp in inp.first_top or ()), reverse=True)
    if top:
        out["p_margin"] = top[0] - (top[1] if len(top) > 1 else 0.0)
    else:
        out["margin_none"] = 1.0
    return out


@lru_cache(maxsize=4096)
def _query(query: str) -> dict[str, float]:
    """Cached: the optimizer scores the same query once per tier and candidate cascade."""
    q = query_features(query)
    return {
        "q_words": _log_len(int(q["words"])),
        "q_digits": _log_len(int(q["digits"])),
        "q_math": float(bool(q["has_math"])),
        f"task={q['task']}": 1.0,
    }


def vocabulary(rows: Iterable[dict[str, float]]) -> list[str]:
    """The feature names seen in training rows, in a stable order (fixed names first, then one-hots)."""
    seen = {name for row in rows for name in row}
    return sorted(seen, key=lambda name: ("=" in name, name))


def matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """Rows as a dense numpy matrix over `names` (absent features read 0)."""
    index = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(rows), len(names)))
    for i, row in enumerate(rows):
        for name, value in row.items():
            j = index.get(name)
            if j is not None:
                out[i, j] = value
    return out
