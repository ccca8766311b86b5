"""Lower bounds that hold for every candidate at once, so that the cheapest one clearing a bar keeps its promise.

Choosing the cheapest of many candidates whose own 95% bound clears the bar picks the one its tuning
items flatter most (the winner's curse): on half of RouterBench ARC (510 items) the chosen cascades'
agreement with GPT-4 fell from 0.992-0.996 on the tuning items to 0.977 on the other half. A bound that
holds for all K candidates simultaneously with 95% probability holds for whichever is chosen, however
it is chosen: the chosen one's promise is then a 95% statement, not a hope.

Per candidate the statistic is Tango's score statistic for the difference of two paired proportions
(the candidate's correctness minus the reference's on the same items; without gold, agreement minus 1):
its variance is taken under the hypothesised difference, so a candidate with 0-5 disagreements is not
made to look certain (a t statistic with the observed variance is, and its bootstrap then has a tail
that inflates everyone's bound). The critical value is the 95% quantile of the largest statistic over
all candidates, each at its own truth, drawn jointly normal with the correlation of their per-item
differences (single-step max-T, Westfall and Young 1993; Romano and Wolf 2005; a Gaussian multiplier
bootstrap, `critical_value` says why not resampled items): it is about 1.64 for one candidate and grows
with the number of candidates that vary independently, not with their count.

Tango, "Equivalence test and confidence interval for the difference in proportions for the paired-sample
design", Statistics in Medicine 17 (1998).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

_BISECTIONS = 60  # halvings of [-1, observed]: far below any difference a count can show
_CHUNK = 500  # normal draws at a time: bounded memory on long logs


def score_statistic(wins: np.ndarray, losses: np.ndarray, n: int, delta: np.ndarray) -> np.ndarray:
    """Tango's statistic for the hypothesis that the mean difference is `delta` (broadcasting): positive when
    the items show more than `delta`. Its variance uses the losses' maximum-likelihood rate under the
    hypothesis, so it stays honest with few discordant items."""
    wins, losses, delta = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (wins, losses, delta)))
    a = 2.0 * n
    b = -wins - losses + (2.0 * n - wins + losses) * delta
    c = -losses * delta * (1.0 - delta)
    loss_rate = (np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)) - b) / (2.0 * a)
    variance = n * np.maximum(2.0 * loss_rate + delta * (1.0 - delta), 0.0)
    excess = wins - losses - n * delta
    spread = np.sqrt(np.where(variance > 0, variance, 1.0))
    degenerate = np.where(np.abs(excess) < 1e-9, 0.0, np.copysign(np.inf, excess))  # no spread at all
    return np.where(variance > 0, excess / spread, degenerate)


def lower_bound(wins: np.ndarray, losses: np.ndarray, n: int, z: float) -> np.ndarray:
    """The smallest difference the items do not reject at `z`: the score interval's lower end, per candidate."""
    low = np.full(np.shape(wins), -1.0)
    high = (np.asarray(wins, dtype=float) - np.asarray(losses, dtype=float)) / n
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2.0
        rejected = score_statistic(wins, losses, n, middle) > z
        low, high = np.where(rejected, middle, low), np.where(rejected, high, middle)
    return np.asarray(high, dtype=float)


def critical_value(diff: np.ndarray, confidence: float, draws: int = 4000, seed: int = 0) -> float:
    """The `confidence` quantile of the largest of the candidates' statistics (rows of `diff`, items in
    columns) when every one sits at its own truth: jointly normal, correlated as their per-item differences
    are (a Gaussian multiplier bootstrap); never below one candidate's own normal quantile.

    Why normal and not the items resampled: a resample centred at a candidate's observed difference knows
    only the losses it saw, and one that saw 5 of 510 can never look much better than that, so the lucky
    candidates, the ones chosen, count for little; the max then falls short (simulated: 11% misses at a
    nominal 5%). At the truth the score statistic is close to normal, with a lighter tail on the side
    that flatters (fewer losses than expected), so this quantile errs on the safe side."""
    z = float(norm.ppf(confidence))
    centred = diff - diff.mean(axis=-1, keepdims=True)
    scale = np.sqrt((centred**2).sum(axis=-1))
    varying = centred[scale > 0] / scale[scale > 0, None]  # a candidate that never differs cannot mislead
    if varying.shape[0] <= 1:
        return z
    rng = np.random.default_rng(seed)
    largest = np.concatenate(
        [
            (rng.standard_normal((min(_CHUNK, draws - start), varying.shape[1])) @ varying.T).max(axis=1)
            for start in range(0, draws, _CHUNK)
        ]
    )
    return max(z, float(np.quantile(largest, confidence)))
