"""One labelled run as the threshold controller's evidence: what it tells about other thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunEvidence:
    """What one labelled run tells about other thresholds, attempt by attempt in cascade order.

    `confidence[i]` is None for an attempt no gate judged (no answer, or the final tier's);
    `correct[i]` (1 right, 0 wrong, between: a judge's belief) None where no judge could tell;
    `tokens[i]` is cumulative. `reached_end`: the run got to the final tier, so no threshold could
    have sent it further. `weight`: how many runs of the traffic it stands for (an audited run:
    1 / the audit rate).
    """

    confidence: tuple[float | None, ...]
    correct: tuple[float | None, ...]
    tokens: tuple[float, ...]
    reached_end: bool
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not len(self.confidence) == len(self.correct) == len(self.tokens) >= 1:
            raise ValueError("need one confidence, correctness and token count per attempt, at least one")

    @property
    def final_correct(self) -> float | None:
        return self.correct[-1]

    def to_json(self) -> list[Any]:
        plain = [list(self.confidence), list(self.correct), list(self.tokens), self.reached_end]
        return plain if self.weight == 1.0 else [*plain, self.weight]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> RunEvidence:
        conf, correct, tokens, end = data[:4]
        weight = data[4] if len(data) > 4 else 1.0
        return cls(
            tuple(None if c is None else float(c) for c in conf),
            tuple(None if c is None else float(c) for c in correct),
            tuple(float(t) for t in tokens),
            bool(end),
            float(weight),
        )
