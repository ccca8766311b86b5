"""Where a replayed cascade gets its per-item confidence from, and what that confidence costs.

External logs carry no verifier scores, so offline cascades need one of:
- `LoggedConfidence`: a logged `confidence` (our own eval caches record the verifier's).
- `AgreementConfidence`: cross-model agreement — the share of reference answers equal to the tier's
  extracted answer. References are verifier models (their calls are paid, once per item) and the
  tiers already called (free: a real cascade keeps their answers).
- `HeuristicConfidence`: a last resort read from the response text alone (no extra call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cascade.eval.data.logs import LogItem, LogTable
from cascade.io.exact_match import extract
from cascade.scoring.reasoning import arithmetic_checks, hedged


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
    score += 0.2 * (sum(checks) / len(checks) if checks else 1.0) + 0.1 * (not hedged(text))
    return max(0.0, score - min(len(text), 1500) / 15000)
