"""Where a replayed cascade gets its per-item confidence from, and what that confidence costs.

External logs carry no verifier scores, so offline cascades need one of:
- `LoggedConfidence`: a logged `confidence` (our own eval caches record the verifier's).
- `AgreementConfidence`: cross-model agreement — the share of reference answers equal to the tier's
  extracted answer. References are verifier models (their calls are paid, once per item) and the
  tiers already called (free: a real cascade keeps their answers).
- `HeuristicConfidence`: a last resort read from the response text alone (no extra call).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cascade.eval.logs import LogItem, LogTable
from cascade.eval.scoring import extract


@dataclass(frozen=True)
class Scored:
    """Confidence per item for one tier, and the extra models the verification calls."""

    confidence: np.ndarray
    calls: tuple[str, ...] = ()


class ConfidenceSource(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, log: LogTable, tier: str, earlier: Sequence[str]) -> Scored: ...


def answer_of(item: LogItem, model: str) -> str | None:
    """The model's extracted answer on the item (choice letters limited to the offered options)."""
    letters = item.meta.get("letters") or None
    return extract(item.tiers[model].answer, item.task, letters)


@dataclass(frozen=True)
class LoggedConfidence:
    """The logged confidence; a missing value counts as 0 (escalate), never as sure."""

    name: str = "logged"

    def score(self, log: LogTable, tier: str, earlier: Sequence[str]) -> Scored:
        values = [item.tiers[tier].confidence for item in log.items]
        return Scored(np.array([0.0 if v is None else float(v) for v in values]))


@dataclass(frozen=True)
class AgreementConfidence:
    """Share of reference answers (verifiers, then earlier tiers) that equal the tier's answer."""

    verifiers: tuple[str, ...] = ()
    use_earlier: bool = True
    name: str = "agreement"

    def references(self, tier: str, earlier: Sequence[str]) -> list[str]:
        refs = [v for v in self.verifiers if v != tier]
        if self.use_earlier:
            refs += [e for e in earlier if e not in refs and e != tier]
        return refs

    def score(self, log: LogTable, tier: str, earlier: Sequence[str]) -> Scored:
        refs = self.references(tier, earlier)
        if not refs:
            raise ValueError(f"agreement for {tier!r} needs a verifier model or an earlier tier to compare with")
        confidence = np.array([_agreement(item, tier, refs) for item in log.items])
        return Scored(confidence, tuple(v for v in self.verifiers if v != tier))


def _agreement(item: LogItem, tier: str, refs: Sequence[str]) -> float:
    mine = answer_of(item, tier)
    if mine is None:
        return 0.0
    return sum(answer_of(item, ref) == mine for ref in refs) / len(refs)


_CALC = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
_EQUATION = re.compile(r"(\d[\d,]*(?:\.\d+)?(?:\s*[-+*/x×]\s*\d[\d,]*(?:\.\d+)?)+)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")
_HEDGE = re.compile(
    r"\b(however|assum\w*|approximately|round\w*|cannot|can't|not possible|not enough|unclear)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class HeuristicConfidence:
    """Signals in the response text only; a documented last resort when nothing better is logged.

    Numbers (GSM8K-style): an explicit '#### n' final answer (0.5), an integer answer (0.2), the share
    of 'a op b = c' steps that are arithmetically right (0.2), no hedging words (0.1), minus a small
    length penalty (long chains fail more often). On RouteLLM's GSM8K Mixtral outputs this ranks
    right above wrong answers with AUROC ≈ 0.74. Choices: 1 for a bare option letter, 0.5 for a
    letter inside prose, 0 for none. Other tasks: 1 if any answer was extracted, else 0.
    """

    name: str = "heuristic"

    def score(self, log: LogTable, tier: str, earlier: Sequence[str]) -> Scored:
        return Scored(np.array([heuristic(item, tier) for item in log.items]))


def heuristic(item: LogItem, tier: str) -> float:
    text = item.tiers[tier].answer or ""
    answer = answer_of(item, tier)
    if answer is None:
        return 0.0
    if item.task == "number":
        return _number_score(text, answer)
    if item.task == "choice":
        return 1.0 if text.strip().strip("()[].").upper() == answer else 0.5
    return 1.0


def _number_score(text: str, answer: str) -> float:
    checks = arithmetic_checks(text)
    score = 0.5 * ("####" in text) + 0.2 * answer.lstrip("-").isdigit()
    score += 0.2 * (sum(checks) / len(checks) if checks else 1.0) + 0.1 * (not _HEDGE.search(text))
    return max(0.0, score - min(len(text), 1500) / 15000)


def arithmetic_checks(text: str) -> list[bool]:
    """Whether each calculator annotation or 'a op b = c' step in the text is right."""
    results = []
    for expr, value in _CALC.findall(text) + _EQUATION.findall(text):
        computed = _evaluate(expr)
        try:
            stated = float(value.replace(",", "").replace("$", "").strip())
        except ValueError:
            continue
        if computed is not None:
            results.append(abs(computed - stated) <= 1e-6 * max(1.0, abs(stated)) or round(computed, 2) == stated)
    return results


def _evaluate(expr: str) -> float | None:
    """Plain arithmetic only (numbers, + - * / and parentheses), walked by hand: no eval, no powers."""
    try:
        tree = ast.parse(expr.replace(",", "").replace("x", "*").replace("×", "*").strip(), mode="eval")
        return _walk(tree.body)
    except (SyntaxError, ZeroDivisionError, ValueError, OverflowError):
        return None


def _walk(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_walk(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_walk(node.left), _walk(node.right))
    raise ValueError("not plain arithmetic")


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
