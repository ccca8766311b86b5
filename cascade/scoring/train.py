"""Training a correctness scorer with scikit-learn (the `learn` extra): logistic heads plus calibration.

`fit_scorer` fits one standardised L2 logistic regression per tier seen often enough, and a `*` head
on every example, then calibrates each head on out-of-fold predictions (Platt's sigmoid on small
sets, isotonic from `ISOTONIC_MIN` examples, as scikit-learn's guide recommends). `cross_fit` gives
every example a prediction from a scorer that never saw it: what thresholds are chosen on, and what
the calibration report is computed from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from cascade.errors import UserError
from cascade.extras import install_hint
from cascade.scoring.features import features, matrix, vocabulary
from cascade.scoring.inputs import ScoringInput
from cascade.scoring.model import ANY_TIER, Calibration, Head, Scorer

ISOTONIC_MIN = 1000
CalibrationKind = Literal["auto", "sigmoid", "isotonic", "identity"]


@dataclass(frozen=True)
class FitOptions:
    """`c`: inverse L2 strength; a tier gets its own head from `min_head` examples with at least
    `min_class` of each label (else the `*` head, fitted on every example, scores it). Without
    `shared_head` every tier gets its own head whatever its size, and there is no `*` head (a
    scorer made for one cascade's tiers). `calibration_folds` for the calibration map. `features`
    restricts what is learned from (e.g. to signals that carry across question types)."""

    c: float = 1.0
    per_tier: bool = True
    shared_head: bool = True
    min_head: int = 100
    min_class: int = 10
    calibration: CalibrationKind = "auto"
    calibration_folds: int = 3
    seed: int = 0
    features: tuple[str, ...] | None = None

    def keeps(self, name: str) -> bool:
        """Whether a feature is learned from: all without `features`, else those named there, or
        one-hots whose prefix is (`form=` keeps `form=yesno`, `form=number`, ...)."""
        if self.features is None:
            return True
        return name in self.features or ("=" in name and name[: name.index("=") + 1] in self.features)


def sklearn() -> Any:
    """scikit-learn, or a UserError saying how to install it."""
    try:
        import sklearn as sk
        import sklearn.isotonic
        import sklearn.linear_model
        import sklearn.model_selection
    except ImportError:
        raise UserError(f"training a scorer needs scikit-learn: {install_hint('learn')}") from None
    return sk


def fit_scorer(
    inputs: Sequence[ScoringInput],
    labels: Sequence[bool] | np.ndarray,
    options: FitOptions = FitOptions(),
    *,
    training: dict[str, Any] | None = None,
) -> Scorer:
    """A scorer fitted on all `inputs` (with `labels`: was that answer correct)."""
    data = _Data.of(inputs, labels, options)
    scorer = _fit(data, options, calibrate=True)
    provenance = {"n": len(data.y), "positives": int(data.y.sum()), "c": options.c, "library": _library()}
    return replace(scorer, training=provenance | (training or {}))


def cross_fit(
    inputs: Sequence[ScoringInput],
    labels: Sequence[bool] | np.ndarray,
    folds: np.ndarray | int = 5,
    options: FitOptions = FitOptions(),
) -> np.ndarray:
    """Out-of-fold P(correct): each example scored by a scorer fitted on the other folds only.

    `folds` is a fold number per example, or a number of folds (assigned at random, seeded). The
    fold models' raw probabilities are calibrated per head by one map fitted on all of them (the
    way `fit_scorer` calibrates: on out-of-fold predictions), so they read on the final scale.
    """
    data = _Data.of(inputs, labels, options)
    fold = fold_ids(len(data.y), folds, options.seed) if isinstance(folds, int) else np.asarray(folds)
    raw = np.zeros(len(data.y))
    for k in np.unique(fold):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        scorer = _fit(data.subset(train), options, calibrate=False)
        raw[test] = scorer.predict_rows([data.rows[i] for i in test], data.tiers[test].tolist())
    out = np.zeros(len(data.y))
    for mask in _groups(data, options).values():
        if mask.any():
            out[mask] = _calibration(raw[mask], data.y[mask], options)(raw[mask])
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class _Data:
    """Examples as feature rows (computed once), their tier names and labels."""

    rows: list[dict[str, float]]
    tiers: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, inputs: Sequence[ScoringInput], labels: Sequence[bool] | np.ndarray, options: FitOptions) -> _Data:
        y = _labels(inputs, labels)
        rows = [{k: v for k, v in features(inp).items() if options.keeps(k)} for inp in inputs]
        return cls(rows, np.array([inp.tier for inp in inputs], dtype=object), y)

    def subset(self, index: np.ndarray) -> _Data:
        return _Data([self.rows[i] for i in index], self.tiers[index], self.y[index])


def _groups(data: _Data, options: FitOptions) -> dict[str, np.ndarray]:
    """The examples each head learns from: a tier's own, and (`*`) every example."""
    groups = {ANY_TIER: np.ones(len(data.y), dtype=bool)} if options.shared_head or not options.per_tier else {}
    if options.per_tier:
        for tier in dict.fromkeys(data.tiers.tolist()):
            mask = data.tiers == tier
            ones = int(data.y[mask].sum())
            enough = mask.sum() >= options.min_head and min(ones, int(mask.sum()) - ones) >= options.min_class
            if enough or not options.shared_head:
                groups[str(tier)] = mask
    return groups


def _fit(data: _Data, options: FitOptions, *, calibrate: bool) -> Scorer:
    names = tuple(vocabulary(data.rows))
    x = matrix(data.rows, names)
    heads = {
        name: _fit_head(x[mask], data.y[mask], options, calibrate) for name, mask in _groups(data, options).items()
    }
    return Scorer(names, heads)


def fold_ids(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number in [0, folds) per example, balanced and shuffled (seeded)."""
    if folds < 2 or n < folds:
        raise UserError(f"cross-fitting needs at least 2 folds and as many examples ({n} examples, {folds} folds)")
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def _labels(inputs: Sequence[ScoringInput], labels: Sequence[bool] | np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype=float)
    if len(inputs) != len(y):
        raise UserError(f"{len(inputs)} scoring inputs but {len(y)} labels")
    if not len(y):
        raise UserError("no labelled examples to train a scorer on")
    return y


def _fit_head(x: np.ndarray, y: np.ndarray, options: FitOptions, calibrate: bool = True) -> Head:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    ones = int(y.sum())
    if ones in (0, len(y)):  # one class only: a constant, smoothed towards 1/2
        rate = (ones + 0.5) / (len(y) + 1.0)
        return Head(mean, scale, np.zeros(x.shape[1]), float(np.log(rate / (1 - rate))), n=len(y), positives=ones)
    model = _logistic(options).fit((x - mean) / scale, y)
    head = Head(mean, scale, model.coef_[0].astype(float), float(model.intercept_[0]), n=len(y), positives=ones)
    return replace(head, calibration=_calibrate(x, y, head, options)) if calibrate else head


def _logistic(options: FitOptions) -> Any:
    sk = sklearn()
    return sk.linear_model.LogisticRegression(C=options.c, solver="newton-cholesky", max_iter=200)


def _calibrate(x: np.ndarray, y: np.ndarray, head: Head, options: FitOptions) -> Calibration:
    """A map fitted on out-of-fold raw probabilities (never on the head's own fit)."""
    minority = int(min(y.sum(), len(y) - y.sum()))
    if options.calibration == "identity" or minority < options.calibration_folds:
        return Calibration()
    sk = sklearn()
    folds = sk.model_selection.StratifiedKFold(options.calibration_folds, shuffle=True, random_state=options.seed)
    raw = np.zeros(len(y))
    for train, test in folds.split(x, y):
        model = _logistic(options).fit((x[train] - head.mean) / head.scale, y[train])
        raw[test] = model.predict_proba((x[test] - head.mean) / head.scale)[:, 1]
    return _calibration(raw, y, options)


def _calibration(raw: np.ndarray, y: np.ndarray, options: FitOptions) -> Calibration:
    """Platt's sigmoid or isotonic regression from raw probabilities to outcomes."""
    kind = options.calibration
    if kind == "auto":
        kind = "isotonic" if len(y) >= ISOTONIC_MIN else "sigmoid"
    if kind == "identity" or len(np.unique(y)) < 2:
        return Calibration()
    sk = sklearn()
    if kind == "isotonic":
        iso = sk.isotonic.IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibration("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))
    z = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
    platt = sk.linear_model.LogisticRegression(C=1e6, solver="newton-cholesky", max_iter=200).fit(z.reshape(-1, 1), y)
    return Calibration("sigmoid", a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))


def _library() -> str:
    return f"scikit-learn {sklearn().__version__}"
