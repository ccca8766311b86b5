"""A trained correctness scorer: P(answer correct) from a `ScoringInput`, with numpy only.

The file is JSON a person can read (and diff): the format name and version, the feature names,
per head the standardisation, logistic coefficients and calibration map, and where the training
data came from. Training needs scikit-learn (`cascade.scoring.train`, the `learn` extra); loading
and scoring do not, so a shipped scorer works on the base install.

Heads: one per tier name seen often enough in training, and `*` for every other tier (it knows the
tier only through its index and one-hot). A scorer trained for a cascade therefore scores each
tier with what was learned about that very tier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade.errors import ConfigError
from cascade.io.files import read_bounded
from cascade.scoring.features import features, matrix
from cascade.scoring.inputs import ScoringInput

FORMAT = "cascade-scorer"
VERSION = 1
ANY_TIER = "*"


@dataclass(frozen=True)
class Calibration:
    """A monotone map from the logistic model's probability to a calibrated one.

    `sigmoid` (Platt): 1 / (1 + exp(-(a·logit(p) + b))); `isotonic`: piecewise-linear through the
    points (x, y), flat beyond them; `identity`: p itself.
    """

    kind: str = "identity"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "sigmoid":
            return _sigmoid(self.a * _logit(p) + self.b)
        if self.kind == "isotonic":
            return np.asarray(np.interp(p, np.asarray(self.x), np.asarray(self.y)))
        return p

    def to_json(self) -> dict[str, Any]:
        if self.kind == "sigmoid":
            return {"kind": "sigmoid", "a": self.a, "b": self.b}
        if self.kind == "isotonic":
            return {"kind": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"kind": "identity"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        data = _mapping(data, "a calibration")
        kind = str(data.get("kind", "identity"))
        if kind not in ("sigmoid", "isotonic", "identity"):
            raise ValueError(f"unknown calibration kind {kind!r}")
        x, y = tuple(float(v) for v in data.get("x", ())), tuple(float(v) for v in data.get("y", ()))
        if kind == "isotonic" and (len(x) != len(y) or not x):
            raise ValueError("isotonic calibration needs as many x as y points, at least one")
        return cls(kind, float(data.get("a", 1.0)), float(data.get("b", 0.0)), x, y)


@dataclass(frozen=True)
class Head:
    """Standardised logistic regression over the scorer's features, then calibration."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    calibration: Calibration = field(default_factory=Calibration)
    n: int = 0
    positives: int = 0

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The logistic model's probability, before calibration."""
        return _sigmoid(((x - self.mean) / self.scale) @ self.coef + self.intercept)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.clip(self.calibration(self.raw(x)), 0.0, 1.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "positives": self.positives,
            "intercept": self.intercept,
            "coef": [float(v) for v in self.coef],
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "calibration": self.calibration.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], width: int) -> Head:
        data = _mapping(data, "a head")
        mean, scale, coef = (np.asarray(data[key], dtype=float) for key in ("mean", "scale", "coef"))
        if any(a.shape != (width,) for a in (mean, scale, coef)):
            raise ValueError(f"a head needs {width} mean, scale and coef values (one per feature)")
        if not np.all(scale > 0) or not all(np.isfinite(a).all() for a in (mean, scale, coef)):
            raise ValueError("a head's scale must be positive and its numbers finite")
        calibration = Calibration.from_json(data.get("calibration") or {})
        n, positives = int(data.get("n", 0)), int(data.get("positives", 0))
        return cls(mean, scale, coef, float(data["intercept"]), calibration, n, positives)


@dataclass(frozen=True)
class Scorer:
    """Feature names, heads by tier name (`*` for any other tier), provenance and report."""

    names: tuple[str, ...]
    heads: dict[str, Head]
    training: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def knows(self, tier: str) -> bool:
        """Whether a tier of this name gets a head (its own, or the shared `*` one)."""
        return tier in self.heads or ANY_TIER in self.heads

    def head_for(self, tier: str) -> Head:
        head = self.heads.get(tier) or self.heads.get(ANY_TIER)
        if head is None:
            raise KeyError(f"the scorer has no head for tier {tier!r} and no '*' head")
        return head

    def predict(self, inp: ScoringInput) -> float:
        """P(correct) of one answer."""
        return float(self.predict_many([inp])[0])

    def predict_many(self, inputs: Sequence[ScoringInput]) -> np.ndarray:
        """P(correct) of each answer, each by its tier's head."""
        return self.predict_rows([features(inp) for inp in inputs], [inp.tier for inp in inputs])

    def predict_rows(self, rows: Sequence[dict[str, float]], tiers: Sequence[str]) -> np.ndarray:
        """P(correct) from feature rows already computed (`features`), each by its tier's head."""
        out = np.zeros(len(rows))
        by_head: dict[str, list[int]] = {}
        for i, tier in enumerate(tiers):
            by_head.setdefault(tier if tier in self.heads else ANY_TIER, []).append(i)
        for index in by_head.values():
            x = matrix([rows[i] for i in index], self.names)
            out[index] = self.head_for(tiers[index[0]]).predict(x)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "features": list(self.names),
            "heads": {tier: head.to_json() for tier, head in self.heads.items()},
            "training": self.training,
            "report": self.report,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: Any) -> Scorer:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'not a scorer file (expected "format": "{FORMAT}")')
        if data.get("version") != VERSION:
            raise ValueError(f"scorer file version {data.get('version')!r}; this cascade reads version {VERSION}")
        if not isinstance(data["features"], list):
            raise ValueError("features must be a list of names")
        names = tuple(str(n) for n in data["features"])
        heads = {str(t): Head.from_json(h, len(names)) for t, h in _mapping(data["heads"], "heads").items()}
        if not heads:
            raise ValueError("the scorer has no heads")
        training, report = (dict(_mapping(data.get(k) or {}, k)) for k in ("training", "report"))
        return cls(names, heads, training, report)

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """Read a scorer file; any problem is a ConfigError naming the file. Only a regular file of at
        most MAX_FILE_BYTES is read (not a device such as /dev/zero, not a 300 MB file)."""
        try:
            text = read_bounded(Path(path), MAX_FILE_BYTES)
            return cls.from_json(json.loads(text))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read scorer file: {exc.strerror or exc}", source=str(path)) from exc
        except RecursionError:
            raise ConfigError(f"{path}: invalid scorer file: JSON nested too deeply", source=str(path)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: invalid scorer file: {exc}", source=str(path)) from exc


MAX_FILE_BYTES = 20_000_000
"""A scorer file is kilobytes (coefficients and calibration points); a bigger one is not a scorer."""


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _sigmoid(z: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0))))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(q / (1 - q)))


__all__ = ["ANY_TIER", "FORMAT", "VERSION", "Calibration", "Head", "Scorer"]
