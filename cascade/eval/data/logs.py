"""Logged per-item × per-tier outputs: what each model answered, whether it was right, what it cost.

Replay evaluates policies on these tables without calling a model. Sources: our own eval runs
(JSONL, `write_log`/`read_cascade_log`), RouterBench CSVs and RouteLLM's response files (`external.py`);
`cascade.eval.data.formats.read_log` reads any of them.
Unknown correctness stays None, never counts as correct, and `select` drops such items openly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cascade.errors import UserError
from cascade.eval.data.unreadable import json_lines
from cascade.types import Attempt


@dataclass(frozen=True, slots=True)
class TierLog:
    """One model's logged turn on one item. `answer` is the raw response text; `completion_tokens`
    (when known) what the answer itself took, which token budgets are learned from."""

    correct: bool | None
    cost_usd: float
    tokens: int | None = None
    answer: str | None = None
    confidence: float | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_attempt(cls, attempt: Attempt, correct: bool | None) -> TierLog:
        """A live run's attempt as a log cell, so our own eval runs replay like external logs.

        The attempt's cost already includes its verifiers' usage (judge calls, extra samples).
        """
        return cls(
            correct,
            attempt.cost_usd,
            attempt.total_tokens,
            attempt.answer,
            attempt.confidence,
            attempt.completion_tokens,
        )


@dataclass
class LogItem:
    """An item and every model's logged output on it; `task` names the answer extractor."""

    id: str
    prompt: str
    tiers: dict[str, TierLog]
    task: str = "first_line"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LogTable:
    """Items × models. `excluded` counts items dropped for unknown correctness (see `select`)."""

    models: list[str]
    items: list[LogItem]
    source: str = ""
    fmt: str = "cascade"
    notes: list[str] = field(default_factory=list)
    excluded: int = 0
    tokens_estimated: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def correct(self, model: str) -> np.ndarray:
        """1.0 where the model was right; callers must `select` first so no cell is unknown."""
        return np.array([1.0 if item.tiers[model].correct else 0.0 for item in self.items])

    def cost(self, model: str) -> np.ndarray:
        return np.array([item.tiers[model].cost_usd for item in self.items], dtype=float)

    def tokens(self, model: str) -> np.ndarray:
        """Tokens per item; NaN where unknown."""
        values = [item.tiers[model].tokens for item in self.items]
        return np.array([math.nan if v is None else float(v) for v in values])

    def has_answers(self, model: str) -> bool:
        return any(item.tiers[model].answer for item in self.items)

    def has_confidence(self, model: str) -> bool:
        return any(item.tiers[model].confidence is not None for item in self.items)

    def select(self, models: Sequence[str]) -> LogTable:
        """Only these models, and only items whose correctness is known for all of them."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise UserError(f"unknown model(s) {missing}; the log has: {', '.join(self.models)}")
        keep, dropped = [], 0
        for item in self.items:
            if any(item.tiers[m].correct is None for m in models):
                dropped += 1
                continue
            keep.append(replace(item, tiers={m: item.tiers[m] for m in models}))
        notes = list(self.notes)
        if dropped:
            notes.append(f"{dropped} item(s) excluded: correctness unknown for at least one chosen model")
        return replace(self, models=list(models), items=keep, excluded=self.excluded + dropped, notes=notes)

    def subset(self, indices: Sequence[int]) -> LogTable:
        return replace(self, items=[self.items[i] for i in indices])


def write_log(table: LogTable, path: str | Path) -> None:
    """Our own cache format: one JSON object per item, with every tier's `TierLog` fields."""
    with Path(path).open("w", encoding="utf-8") as fh:
        header = {"models": table.models, "source": table.source, "notes": table.notes}
        fh.write(json.dumps({"cascade_log": header}) + "\n")
        for item in table.items:
            record = {"id": item.id, "prompt": item.prompt, "task": item.task, "meta": item.meta}
            record["tiers"] = {m: asdict(t) for m, t in item.tiers.items()}
            fh.write(json.dumps(record) + "\n")


def read_cascade_log(path: str | Path) -> LogTable:
    """A log written by `write_log` (or by hand: the header line is optional)."""
    items, models, source = [], [], str(path)
    for _, record in json_lines(Path(path), "log"):
        if "cascade_log" in record:
            models = list(record["cascade_log"].get("models", []))
            continue
        tiers = {m: TierLog(**t) for m, t in record["tiers"].items()}
        items.append(
            LogItem(
                str(record["id"]),
                record.get("prompt", ""),
                tiers,
                record.get("task", "first_line"),
                record.get("meta", {}),
            )
        )
    if not models and items:
        models = list(items[0].tiers)
    tokens_known = all(t.tokens is not None for item in items for t in item.tiers.values())
    return LogTable(models, items, source=source, fmt="cascade", tokens_estimated=not tokens_known)
