"""Online models for the learned pre-router: P(cheap tier correct) and per-task token budgets.

Both learn one labelled example at a time (`update`), so a router can keep learning from the
store's new feedback without retraining from scratch, and both round-trip through plain JSON
(`to_state`/`from_state`) so replicas share them via `store.put_state`.

The classifier is a logistic regression on hashed features, trained by AdaGrad SGD, written in
numpy rather than scikit-learn: its state is two vectors we can serialise as JSON (sklearn's
`SGDClassifier` would need pickling), and it adds no dependency to the core package.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

import numpy as np

from cascade.io.features import query_features

SparseVector = dict[int, float]
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_MAX_TEXT = 600  # chars featurised from the query's end: few-shot prompts put the question last


def _slot(name: str, dim: int) -> int:
    """A stable hash bucket (crc32, not Python's salted `hash`), so saved weights stay valid."""
    return 1 + zlib.crc32(name.encode("utf-8")) % (dim - 1)  # slot 0 is the bias


def _ngrams(query: str) -> Iterable[str]:
    """Word unigrams and bigrams plus character 4-grams of the query's last `_MAX_TEXT` chars."""
    text = query[-_MAX_TEXT:].lower()
    words = _WORD.findall(text)
    yield from (f"w:{w}" for w in words)
    yield from (f"b:{a} {b}" for a, b in pairwise(words))
    squashed = " ".join(text.split())
    yield from (f"c:{squashed[i : i + 4]}" for i in range(max(0, len(squashed) - 3)))


def _numeric(query: str) -> dict[str, float]:
    """`query_features` as model inputs: log-scaled counts, flags, and one-hots for categories."""
    out: dict[str, float] = {}
    for key, value in query_features(query).items():
        if isinstance(value, bool):
            out[f"f:{key}"] = float(value)
        elif isinstance(value, int | float):
            out[f"f:{key}"] = math.log1p(max(0.0, float(value))) / 4.0
        else:
            out[f"f:{key}={value}"] = 1.0
    return out


def featurize(query: str, dim: int) -> SparseVector:
    """Bias + L2-normalised hashed n-gram counts + `query_features` numerics, as a sparse vector."""
    grams: SparseVector = {}
    for gram in _ngrams(query):
        slot = _slot(gram, dim)
        grams[slot] = grams.get(slot, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in grams.values())) or 1.0
    vector = {slot: v / norm for slot, v in grams.items()}
    for name, value in _numeric(query).items():
        slot = _slot(name, dim)
        vector[slot] = vector.get(slot, 0.0) + value
    vector[0] = 1.0
    return vector


class OnlineLogistic:
    """Logistic regression updated one example at a time (AdaGrad step sizes, lazy L2 on touched weights)."""

    def __init__(self, dim: int = 2**12, lr: float = 0.05, l2: float = 1e-4) -> None:
        self.dim, self.lr, self.l2 = dim, lr, l2
        self.weights = np.zeros(dim)
        self.grad_sq = np.full(dim, 1e-6)
        self.n = 0
        self.positives = 0

    def predict_vector(self, x: SparseVector) -> float:
        idx, val = _arrays(x)
        return _sigmoid(float(self.weights[idx] @ val))

    def update_vector(self, x: SparseVector, label: float, weight: float = 1.0) -> float:
        """One AdaGrad step on the log-loss of a label in [0, 1], its gradient scaled by `weight` (how
        many examples it stands for); returns the prediction made *before* the step."""
        idx, val = _arrays(x)
        p = _sigmoid(float(self.weights[idx] @ val))
        grad = weight * (p - float(label)) * val + self.l2 * self.weights[idx]
        self.grad_sq[idx] += grad * grad
        self.weights[idx] -= self.lr * grad / np.sqrt(self.grad_sq[idx])
        self.n += 1
        self.positives += int(label >= 0.5)
        return p

    def to_state(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "lr": self.lr,
            "l2": self.l2,
            "n": self.n,
            "positives": self.positives,
            "weights": _sparse_list(self.weights, 0.0),
            "grad_sq": _sparse_list(self.grad_sq, 1e-6),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OnlineLogistic:
        model = cls(int(state["dim"]), float(state["lr"]), float(state["l2"]))
        model.n, model.positives = int(state["n"]), int(state["positives"])
        for i, v in state["weights"]:
            model.weights[int(i)] = float(v)
        for i, v in state["grad_sq"]:
            model.grad_sq[int(i)] = float(v)
        return model


class TokenBudgets:
    """Token budget per (tier, task): a high quantile of recent completion lengths, times a margin.

    A window of recent observations (not all history) lets budgets follow drift in prompts or
    models; `None` until a bucket has `min_samples`, so callers fall back to the tier's default.
    """

    def __init__(self, quantile: float = 0.95, margin: float = 1.25, window: int = 200, min_samples: int = 20) -> None:
        self.quantile, self.margin, self.window, self.min_samples = quantile, margin, window, min_samples
        self.seen: dict[str, deque[int]] = {}

    def update(self, tier: str, task: str, completion_tokens: int) -> None:
        bucket = self.seen.setdefault(f"{tier}|{task}", deque(maxlen=self.window))
        bucket.append(int(completion_tokens))

    def budget(self, tier: str, task: str) -> int | None:
        bucket = self.seen.get(f"{tier}|{task}")
        if bucket is None or len(bucket) < self.min_samples:
            return None
        return max(1, math.ceil(float(np.quantile(np.array(bucket), self.quantile)) * self.margin))

    def to_state(self) -> dict[str, Any]:
        return {
            "quantile": self.quantile,
            "margin": self.margin,
            "window": self.window,
            "min_samples": self.min_samples,
            "seen": {key: list(values) for key, values in self.seen.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TokenBudgets:
        budgets = cls(float(state["quantile"]), float(state["margin"]), int(state["window"]), int(state["min_samples"]))
        for key, values in state["seen"].items():
            budgets.seen[key] = deque((int(v) for v in values), maxlen=budgets.window)
        return budgets


class CheapTierPredictor:
    """P(the cheap tier answers a query correctly) from its text, plus token budgets by task."""

    def __init__(self, model: OnlineLogistic | None = None, budgets: TokenBudgets | None = None) -> None:
        self.model = model or OnlineLogistic()
        self.budgets = budgets or TokenBudgets()

    @property
    def n_examples(self) -> int:
        return self.model.n

    def predict_proba(self, query: str) -> float:
        return self.model.predict_vector(featurize(query, self.model.dim))

    def update(self, query: str, correct: float, weight: float = 1.0) -> float:
        """Learn one labelled query (partial_fit of one); returns the prediction made before learning."""
        return self.model.update_vector(featurize(query, self.model.dim), correct, weight)

    def observe_tokens(self, tier: str, query: str, completion_tokens: int) -> None:
        self.budgets.update(tier, task_key(query), completion_tokens)

    def budget(self, tier: str, query: str) -> int | None:
        return self.budgets.budget(tier, task_key(query))

    def to_state(self) -> dict[str, Any]:
        return {"model": self.model.to_state(), "budgets": self.budgets.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CheapTierPredictor:
        return cls(OnlineLogistic.from_state(state["model"]), TokenBudgets.from_state(state["budgets"]))


def task_key(query: str) -> str:
    """The budget bucket of a query: its `query_features` task."""
    return str(query_features(query)["task"])


def _arrays(x: SparseVector) -> tuple[np.ndarray, np.ndarray]:
    return np.fromiter(x.keys(), dtype=np.int64, count=len(x)), np.fromiter(x.values(), dtype=float, count=len(x))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-35.0, min(35.0, z))))


def _sparse_list(values: np.ndarray, default: float) -> list[list[float]]:
    """Only the entries that moved from their initial value, as `[index, value]` pairs (compact JSON)."""
    return [[int(i), float(values[i])] for i in np.flatnonzero(values != default)]
