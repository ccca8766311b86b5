"""Always-valid bounds on a count of disagreements that audits only sample: the promise's interval.

Served answers i = 1, 2, ... each agree with the reference or not (d_i = 1: disagree). Answers of
the strongest tier agree by definition; an answer served below it is audited with a known
probability p (a coin S_i independent of the answer), and only then is d_i seen. The
inverse-propensity sum Y = sum S_i d_i / p is unbiased for D = sum d_i, and given the answers the
only randomness is the coins, whose law is known exactly. For every l >= 0

    U_l(t) = exp(l (D_t - Y_t) - D_t psi_U(l)),   psi_U(l) = log((1 - p) e^l + p e^(l (1 - 1/p)))
    L_l(t) = exp(l (Y_t - D_t) - D_t psi_L(l)),   psi_L(l) = log(p e^(l (1/p - 1)) + (1 - p) e^(-l))

are nonnegative martingales (psi is the log moment generating function of one disagreement's
increment d_i - S_i d_i / p, resp. its negative; agreeing answers add nothing), and so is any
mixture over l. By Ville's inequality the D with both mixtures below 2 / alpha hold the true D_t at
every t at once with probability >= 1 - alpha: a confidence sequence for the disagreements so far,
valid in finite samples (no variance is estimated), to be read as often as one likes. Howard,
Ramdas, McAuliffe & Sekhon, "Time-uniform Chernoff bounds via nonnegative supermartingales",
Probab. Surveys 2020 (the exponential line-crossing and its mixtures); the equally weighted
discrete mixture over a geometric grid as in Waudby-Smith & Ramdas, JRSS-B 2024. When the rate
changed over time, the smallest one bounds both psi from above (each is decreasing in p).

`conditional=True` bounds instead the sum of the answers' conditional disagreement probabilities
(what future traffic will see, e.g. before relaxing thresholds again): the increments then also
carry the answers' own randomness, and Bennett's bound E exp(l xi) <= exp(v (e^l - 1 - l)) for
increments xi <= 1 of variance v gives the same form with psi(l) = (e^l - 1 - l) / p.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

LAMBDAS = tuple(2.0**k for k in range(-12, 5))
"""The mixture's grid of l, equally weighted: 2^-12 (many answers) to 16 (a handful)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """An interval [low, high] for a count of disagreements, and the inverse-propensity estimate."""

    estimate: float
    low: float
    high: float


def _log_mix(exponent: Callable[[float], float], scale: float) -> float:
    """log of the equally weighted mixture of exp(exponent(l * scale)) over LAMBDAS, without overflow."""
    values = [exponent(lam * scale) for lam in LAMBDAS]
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _log_sum_exp(a: float, b: float) -> float:
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def disagreement_bounds(
    seen: float,
    unresolved: float,
    ceiling: float,
    rate: float,
    *,
    known: int = 0,
    alpha: float = 0.05,
    conditional: bool = False,
) -> Bounds:
    """Always-valid bounds on D, the disagreements among the answers so far (level 1 - alpha).

    `seen`: Y, the inverse-propensity sum of audited disagreements; `unresolved`: the same sum over
    audits selected but without a verdict (pending, dropped, failed), counted as disagreements for
    the upper bound and as agreements for the lower one, so both stay valid; `ceiling`: how many
    answers could disagree (those served below the strongest tier); `rate`: the audit probability
    p (the smallest, if it changed; 1: every answer seen); `known`: disagreements seen (D is at least that).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    estimate, upper_y = min(seen, ceiling), seen + unresolved
    if rate == 1 and not conditional:  # every answer seen: the count is known
        return Bounds(estimate, estimate, min(upper_y, ceiling))
    psi_up, psi_down, scale_down = _psis(rate, conditional)
    threshold = math.log(2 / alpha)

    def upper(d: float) -> float:
        return _log_mix(lambda lam: lam * (d - upper_y) - d * psi_up(lam), 1.0)

    def lower(d: float) -> float:
        return _log_mix(lambda lam: lam * (seen - d) - d * psi_down(lam), scale_down)

    high = ceiling if upper(ceiling) < threshold else _crossing(upper, upper_y, ceiling, threshold, rising=True)
    low = 0.0 if lower(0.0) < threshold else _crossing(lower, 0.0, max(seen, 0.0), threshold, rising=False)
    return Bounds(estimate, max(min(low, estimate), known if not conditional else 0.0), max(high, estimate))


def _psis(p: float, conditional: bool) -> tuple[Callable[[float], float], Callable[[float], float], float]:
    """The two sides' psi, and the scale of the lower side's l (its increments reach 1/p - 1)."""
    if conditional:  # Bennett, for increments mu - y <= 1 and p (y - mu) <= 1
        return (lambda lam: (math.expm1(lam) - lam) / p), (lambda lam: p * (math.expm1(lam / p) - lam / p)), p
    log_p, log_q = math.log(p), math.log1p(-p)

    def up(lam: float) -> float:
        return _log_sum_exp(log_q + lam, log_p + lam * (1 - 1 / p))

    def down(lam: float) -> float:
        return _log_sum_exp(log_p + lam * (1 / p - 1), log_q - lam)

    return up, down, p / (1 - p)


def _crossing(f: Callable[[float], float], a: float, b: float, level: float, *, rising: bool) -> float:
    """Where the convex f crosses `level` between a and b, by bisection, rounded outward."""
    lo, hi = a, b
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < level) == rising:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-6 * max(1.0, b - a):
            break
    return hi if rising else lo
