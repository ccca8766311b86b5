"""The label-free drift trigger: unchanged traffic triggers at most at the stated rate; a shift in the share
accepted below, or in a tier's confidences, triggers within the answers the tests' power says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from cascade.audit.shift import BASELINE, CHECK_EVERY, FALSE_RATE, RECENT, ShiftTest

POWER = 0.999  # per stream: 20 streams all within N fail together with probability ~2%
STREAMS = 20


def level_at(answers: int, tiers: int) -> tuple[list[int], float]:
    """The windows tested `answers` after the baseline, and each test's level there (as the module splits it)."""
    windows = [w for w in RECENT if w <= answers]
    return windows, FALSE_RATE * CHECK_EVERY / (max(1, len(windows)) * (tiers + 1))


def first_trigger(test: ShiftTest, draw: np.random.Generator, share: float, low: float, limit: int) -> int | None:
    """Answers after the baseline until `test` fires on traffic accepted below at `share`, confidences U(low, 1)."""
    for i in range(1, limit + 1):
        if test.add(bool(draw.random() < share), {"small": float(draw.uniform(low, 1.0))}) is not None:
            return i
    return None


def baseline(draw: np.random.Generator, false_rate: float = FALSE_RATE) -> ShiftTest:
    test = ShiftTest(false_rate)
    while test.recording:
        test.add(bool(draw.random() < 0.5), {"small": float(draw.uniform(0.0, 1.0))})
    return test


def test_unchanged_traffic_triggers_at_most_at_the_stated_rate() -> None:
    """By the union bound a stream triggers within `horizon` answers with probability at most rate * horizon
    (0.3 here): of 20 streams at most 6 are expected to, more than 11 has probability ~0.5%."""
    rate, horizon, triggered = 1 / 1000, 300, 0
    for seed in range(STREAMS):
        draw = np.random.default_rng(seed)
        triggered += first_trigger(baseline(draw, rate), draw, 0.5, 0.0, horizon) is not None
    assert triggered <= 11  # a level not split over the windows and tests fires in nearly every stream


def share_answers_needed(p0: float, p1: float) -> int:
    """Answers after a jump of the share accepted below from p0 to p1 until a one-sided test of some window
    has power `POWER` (normal approximation with the unpooled variance; Fisher's exact test is close)."""
    for answers in range(CHECK_EVERY, max(RECENT) + 1, CHECK_EVERY):
        windows, alpha = level_at(answers, 0)
        for w in windows:
            pooled = (w * p1 + BASELINE * p0) / (w + BASELINE)
            null_sd = math.sqrt(pooled * (1 - pooled) * (1 / w + 1 / BASELINE))
            alt_sd = math.sqrt(p1 * (1 - p1) / w + p0 * (1 - p0) / BASELINE)
            if p1 - p0 >= norm.ppf(1 - alpha) * null_sd + norm.ppf(POWER) * alt_sd:
                return answers
    raise AssertionError("no window has the power")


def test_a_jump_in_the_share_accepted_below_triggers_within_the_answers_its_power_needs() -> None:
    needed = share_answers_needed(0.5, 0.8)
    delays = []
    for seed in range(STREAMS):
        draw = np.random.default_rng(100 + seed)
        test = ShiftTest()
        while test.recording:
            test.add(bool(draw.random() < 0.5), {})
        delays.append(next((i for i in range(1, 1000) if test.add(bool(draw.random() < 0.8), {})), None))
    assert all(d is not None and d <= needed for d in delays), (needed, delays)


def test_confidences_rated_higher_trigger_within_the_answers_the_ks_power_needs() -> None:
    """The share accepted below stays at 0.5; the tier's confidences move from U(0, 1) to U(0.3, 1): the
    empirical CDFs differ by 0.3 at 0.3, and the baseline's own CDF there is off by at most z sd."""
    gap = 0.3 - norm.ppf(POWER) * math.sqrt(0.3 * 0.7 / BASELINE)
    needed = next(
        a
        for a in range(CHECK_EVERY, max(RECENT) + 1, CHECK_EVERY)
        if any(  # the asymptotic two-sided KS critical value at the check's level
            math.sqrt(-math.log(level_at(a, 1)[1] / 2) / 2) * math.sqrt(1 / w + 1 / BASELINE) <= gap
            for w in level_at(a, 1)[0]
        )
    )
    delays = []
    for seed in range(STREAMS):
        draw = np.random.default_rng(200 + seed)
        delays.append(first_trigger(baseline(draw), draw, 0.5, 0.3, 1000))
    assert all(d is not None and d <= needed for d in delays), (needed, delays)


def test_a_reset_records_a_new_baseline_before_testing_again() -> None:
    draw = np.random.default_rng(7)
    test = baseline(draw)
    assert first_trigger(test, draw, 0.95, 0.0, 500) is not None
    test.reset()
    assert test.recording
    for _ in range(BASELINE):  # the shifted traffic is the new normal
        test.add(bool(draw.random() < 0.95), {"small": float(draw.uniform(0.0, 1.0))})
    assert first_trigger(test, draw, 0.95, 0.0, 500) is None


def test_the_rate_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="false_rate"):
        ShiftTest(0.0)
