"""Training a token-budget model with scikit-learn (the `learn` extra): a linear quantile
regression of log(tokens) on the budget features, then a split-conformal shift.

`fit_budget_model` fits the median on every example and keeps each example's out-of-fold error
(from a model fitted without its fold): the shift for any share is a quantile of those errors, so
budgets are calibrated on answers the regression never saw. Its report says, fold by fold, what
share of held-apart answers fit and how large the budgets were, beside one constant budget at the
same share (what a per-task quantile of past lengths, `TokenBudgets`, would give).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade.errors import UserError
from cascade.token_budget.features import FEATURES, matrix
from cascade.token_budget.model import TokenBudgetModel

MIN_EXAMPLES = 20


@dataclass(frozen=True)
class BudgetExample:
    """One correct answer: the features it was asked with, the completion tokens it took, and its
    group (examples of one query share one, so cross-fitting keeps them in one fold)."""

    features: Mapping[str, float]
    tokens: int
    group: str = ""


@dataclass(frozen=True)
class _Fit:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(((x - self.mean) / self.scale) @ self.coef + self.intercept)


def fit_budget_model(
    examples: Sequence[BudgetExample],
    *,
    share: float = 0.9,
    folds: int = 5,
    alpha: float = 0.01,
    seed: int = 0,
    training: dict[str, Any] | None = None,
) -> TokenBudgetModel:
    """A model fitted on all `examples`, its shift from their out-of-fold errors (see the module)."""
    if len(examples) < max(MIN_EXAMPLES, 2 * folds):
        raise UserError(f"{len(examples)} correct answers: too few to learn a token budget (needs {MIN_EXAMPLES})")
    if not 0 < share < 1:
        raise UserError(f"share must be in (0, 1), got {share}")
    x = matrix([e.features for e in examples], FEATURES)
    y = np.log(np.maximum(1, np.array([e.tokens for e in examples], dtype=float)))
    fold = folds_of([e.group or str(i) for i, e in enumerate(examples)], folds, seed)
    oof = np.empty(len(y))
    for k in range(folds):
        held = fold == k
        oof[held] = _fit(x[~held], y[~held], alpha).predict(x[held])
    errors = np.sort(y - oof)
    whole = _fit(x, y, alpha)
    provenance = {"n": len(y), "alpha": alpha, "folds": folds, "library": _library()} | (training or {})
    report = held_apart_report(y, oof, fold, sorted({0.8, 0.9, 0.95, share}))
    return TokenBudgetModel(
        FEATURES, whole.mean, whole.scale, whole.coef, whole.intercept, errors, share, provenance, report
    )


def held_apart_report(y: np.ndarray, oof: np.ndarray, fold: np.ndarray, shares: Sequence[float]) -> dict[str, Any]:
    """Per share: of each fold's answers, the share that fit a budget calibrated on the other folds'
    errors, and the mean budget, beside a constant budget (the other folds' token quantile)."""
    out: dict[str, Any] = {}
    tokens = np.exp(y)
    for share in shares:
        fit_model, fit_const, budget_model, budget_const = [], [], [], []
        for k in np.unique(fold):
            held, rest = fold == k, fold != k
            shift = _conformal(y[rest] - oof[rest], share)
            model_budget = np.exp(oof[held] + shift)
            const_budget = math.exp(_conformal(y[rest], share))
            fit_model += list(tokens[held] <= model_budget + 1e-9)
            fit_const += list(tokens[held] <= const_budget + 1e-9)
            budget_model += list(model_budget)
            budget_const += [const_budget] * int(held.sum())
        out[f"{share:g}"] = {
            "fit": round(float(np.mean(fit_model)), 4),
            "mean_budget": round(float(np.mean(budget_model)), 1),
            "constant_fit": round(float(np.mean(fit_const)), 4),
            "constant_mean_budget": round(float(np.mean(budget_const)), 1),
        }
    return {"held_apart": out, "n": len(y), "mean_tokens": round(float(np.mean(tokens)), 1)}


def _conformal(values: np.ndarray, share: float) -> float:
    ordered = np.sort(values)
    rank = min(len(ordered), math.ceil((len(ordered) + 1) * share))
    return float(ordered[max(rank, 1) - 1])


def _fit(x: np.ndarray, y: np.ndarray, alpha: float) -> _Fit:
    """The median of y given x: scikit-learn's QuantileRegressor on standardised features (L1
    penalty `alpha`, so features that do not help stay at 0)."""
    linear_model = _sklearn_linear_model()
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale <= 1e-12] = 1.0
    regressor = linear_model.QuantileRegressor(quantile=0.5, alpha=alpha, solver="highs")
    regressor.fit((x - mean) / scale, y)
    return _Fit(mean, scale, np.asarray(regressor.coef_, dtype=float), float(regressor.intercept_))


def folds_of(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold per example; all examples of a group in one fold, groups shuffled by `seed`."""
    keys = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = {keys[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def _sklearn_linear_model() -> Any:
    try:
        import sklearn.linear_model
    except ImportError:
        raise UserError(
            "training a token-budget model needs scikit-learn: pip install 'cascade-router[learn]'"
        ) from None
    return sklearn.linear_model


def _library() -> str:
    import sklearn

    return f"scikit-learn {sklearn.__version__}"
