"""Always-valid comparison of two variants: a confidence sequence for the difference of their means.

A fixed-sample test re-run on every report ("peeking") declares far more false winners than its
alpha says. A confidence sequence holds at every sample size at once: P(the difference ever
leaves the sequence) <= alpha, so the report may be read after every label and stopped at any time.

Construction (Waudby-Smith, Arnold, Wu, McAuliffe & Ramdas, "Time-uniform central limit theory and
asymptotic confidence sequences", Ann. Statist. 2024; the A/B form of their Section 4):

- The labelled runs of variants a and b form one stream in label order. With p the share of the
  pair's traffic that goes to a (known from the split), each run gives the unbiased estimate
  psi_i = (y_i - m_{i-1}) (1[a]/p - 1[b]/(1 - p)) of mu_a - mu_b, where m_{i-1} is the mean of the
  earlier outcomes: a predictable centring that keeps psi unbiased and cuts its variance to about
  that of a difference in means.
- Robbins' normal mixture with plug-in variance V_t = t * var(psi_1..t) bounds |S_t - t*delta| by
  sqrt((V_t + rho) (log(1 + V_t/rho) + 2 log(1/alpha))) for all t (two-sided, level alpha), with rho
  set so the sequence is tightest near `tight_at` (Howard et al. 2021's optimum, as in `confseq`).
- Its always-valid p-value is min(1, 1/max_s M_s), M the mixture martingale at delta = 0, and the
  running intersection of the intervals is itself a valid sequence: once 0 has left it, it stays out.

Validity is asymptotic (the plug-in variance), so the report waits for `min_labelled` runs per arm;
`tests/unit/learning/test_ab.py` checks the false-positive rate under continuous monitoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TIGHT_AT = 500.0  # intrinsic time (labelled runs × outcome variance) where the sequence is narrowest


@dataclass(frozen=True)
class Sequential:
    """The sequence at the last labelled run: estimate, running-intersection interval, p-value."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    n: int


def mixture_rho(alpha: float, tight_at: float = TIGHT_AT) -> float:
    """The normal mixture's variance parameter that makes the boundary tightest at `tight_at`."""
    return tight_at / (2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha)))


def ab_increments(y: np.ndarray, is_a: np.ndarray, p: float) -> np.ndarray:
    """psi_i for outcomes `y` of the pair's runs in label order (`is_a`: which ran variant a)."""
    if not 0 < p < 1:
        raise ValueError(f"the share of traffic to a must be in (0, 1), got {p}")
    seen = np.arange(len(y))
    earlier = np.concatenate([[0.0], np.cumsum(y)[:-1] / np.maximum(seen[1:], 1)]) if len(y) else y
    weight = np.where(is_a, 1 / p, -1 / (1 - p))
    return np.asarray((y - earlier) * weight)


def confidence_sequence(
    psi: np.ndarray, alpha: float, *, tight_at: float = TIGHT_AT
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per prefix t >= 1: estimate, lower, upper bound and log M_t (the mixture at 0), unintersected."""
    t = np.arange(1, len(psi) + 1, dtype=float)
    total = np.cumsum(psi)
    mean = total / t
    squares = np.cumsum(psi * psi)
    variance = np.maximum(squares / t - mean * mean, 0.0) * t / np.maximum(t - 1, 1)
    v = t * variance
    rho = mixture_rho(alpha, tight_at)
    radius = np.sqrt((v + rho) * (np.log1p(v / rho) + 2 * math.log(1 / alpha))) / t
    log_m = 0.5 * np.log(rho / (v + rho)) + total * total / (2 * (v + rho))
    return mean, mean - radius, mean + radius, log_m


def compare(psi: np.ndarray, alpha: float, *, start: int = 1, tight_at: float = TIGHT_AT) -> Sequential:
    """The sequence's state after every increment, read from index `start - 1` on (the first look)."""
    if len(psi) == 0:
        return Sequential(math.nan, -math.inf, math.inf, 1.0, 0)
    mean, lower, upper, log_m = confidence_sequence(psi, alpha, tight_at=tight_at)
    first = min(max(start, 1), len(psi)) - 1
    lo, hi = float(np.max(lower[first:])), float(np.min(upper[first:]))
    p_value = float(min(1.0, math.exp(-float(np.max(log_m[first:])))))
    return Sequential(float(mean[-1]), lo, hi, p_value, len(psi))
