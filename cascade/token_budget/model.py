"""A trained token-budget model: the tokens a tier needs for a correct answer, at a chosen share.

log(tokens) = the median predicted from the budget features (a linear quantile regression), plus
a shift: the share-quantile of the model's own out-of-fold errors (split-conformal), so that at
`share` 0.9 nine correct answers in ten, of queries like the training ones, fit the budget. The
errors are kept in the file, so a config may ask for another share without retraining.

The file is JSON a person can read: format and version, feature names, the standardisation and
coefficients, the out-of-fold errors, where the data came from and a report. Loading and
predicting need numpy only; training (`cascade.token_budget.train`) needs scikit-learn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade.errors import ConfigError
from cascade.token_budget.features import matrix

FORMAT = "cascade-token-budget"
VERSION = 1
MAX_FILE_BYTES = 5_000_000  # coefficients and at most a few thousand errors: kilobytes


@dataclass(frozen=True)
class TokenBudgetModel:
    """Predicts a tier's token need: `budget(features, share)`; see the module's docstring."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    errors: np.ndarray  # sorted out-of-fold log errors, log(tokens) - prediction
    share: float = 0.9  # the default share of answers that fit
    training: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def median_log(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The predicted median of log(tokens) for each row of features."""
        x = (matrix(rows, self.names) - self.mean) / self.scale
        return np.asarray(x @ self.coef + self.intercept)

    def shift(self, share: float) -> float:
        """The conformal shift for `share`: the ceil((n + 1) * share)-th smallest out-of-fold error
        (the largest when that rank passes n, as finite data allows no more)."""
        n = len(self.errors)
        rank = min(n, math.ceil((n + 1) * share))
        return float(self.errors[max(rank, 1) - 1])

    def budgets(self, rows: Sequence[Mapping[str, float]], share: float | None = None) -> np.ndarray:
        """Tokens that fit a `share` of correct answers (the model's own share by default), per row."""
        return np.asarray(np.exp(self.median_log(rows) + self.shift(self.share if share is None else share)))

    def budget(self, features: Mapping[str, float], share: float | None = None) -> float:
        return float(self.budgets([features], share)[0])

    def explain(self, features: Mapping[str, float], top: int = 2) -> str:
        """What moved this prediction most from the average training query, in words (the trace's why)."""
        z = (matrix([features], self.names)[0] - self.mean) / self.scale
        push = z * self.coef
        order = np.argsort(-np.abs(push))[:top]
        arrow = {True: "↑", False: "↓"}
        parts = [f"{describe(self.names[i], z[i])} {arrow[push[i] > 0]}" for i in order if abs(push[i]) >= 0.05]
        return ", ".join(parts) or "an average query"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "features": list(self.names),
            "mean": _floats(self.mean),
            "scale": _floats(self.scale),
            "coef": _floats(self.coef),
            "intercept": round(self.intercept, 6),
            "errors": _floats(self.errors),
            "share": self.share,
            "training": self.training,
            "report": self.report,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: Any) -> TokenBudgetModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'not a token-budget file (expected "format": "{FORMAT}")')
        if data.get("version") != VERSION:
            raise ValueError(f"token-budget file version {data.get('version')!r}; this cascade reads version {VERSION}")
        names = tuple(str(n) for n in data["features"])
        mean, scale, coef = (np.array(data[key], dtype=float) for key in ("mean", "scale", "coef"))
        if any(a.shape != (len(names),) for a in (mean, scale, coef)):
            raise ValueError(f"mean, scale and coef must each have {len(names)} values, one per feature")
        errors = np.sort(np.array(data["errors"], dtype=float))
        if errors.ndim != 1 or not len(errors) or not np.all(np.isfinite(errors)) or np.any(scale <= 0):
            raise ValueError("errors must be a non-empty list of numbers and every scale positive")
        share = float(data.get("share", 0.9))
        if not 0 < share < 1:
            raise ValueError(f"share must be in (0, 1), got {share}")
        training, report = dict(data.get("training") or {}), dict(data.get("report") or {})
        return cls(names, mean, scale, coef, float(data["intercept"]), errors, share, training, report)

    @classmethod
    def load(cls, path: str | Path) -> TokenBudgetModel:
        """Read a token-budget file; any problem is a ConfigError naming the file (only a regular file
        of at most MAX_FILE_BYTES is read)."""
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read token-budget file: {exc.strerror or exc}", source=str(path)
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: invalid token-budget file: {exc}", source=str(path)) from exc


_WORDS = {
    "log_words": ("a longer question", "a shorter question"),
    "log_numbers": ("more quantities", "fewer quantities"),
    "log_digits": ("more digits", "fewer digits"),
    "log_sentences": ("more sentences", "fewer sentences"),
    "has_math": ("an operator", "no operator"),
    "word_problem": ("a word problem", "not a word problem"),
    "prev_called": ("after a lower tier", "no lower tier"),
    "prev_confidence": ("a surer lower tier", "an unsure lower tier"),
    "prev_unscored": ("an unscored lower tier", "a scored lower tier"),
    "prev_truncated": ("a lower tier cut off", "no lower tier cut off"),
    "prev_log_tokens": ("a longer lower answer", "a shorter lower answer"),
}


def describe(name: str, z: float) -> str:
    """A feature's value relative to the average training query, in words."""
    if name.startswith("task="):
        return f"{'' if z > 0 else 'not '}{name.removeprefix('task=')}"
    above, below = _WORDS.get(name, (f"more {name}", f"less {name}"))
    return above if z > 0 else below


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]
