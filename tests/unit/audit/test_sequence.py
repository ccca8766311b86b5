"""The promise's interval: always valid on simulated audited streams, exact when every answer is seen."""

from __future__ import annotations

import numpy as np
import pytest

from cascade.audit.sequence import disagreement_bounds
from cascade.audit.tally import Tally


def _misses(rate: float, conditional: bool, streams: int = 60, n: int = 1500, seed: int = 0) -> float:
    """Share of streams where the interval missed the truth at any of its checkpoints."""
    rng = np.random.default_rng(seed)
    missed = 0
    for _ in range(streams):
        below = rng.random(n) < 0.7
        mu = np.where(below, np.where(np.arange(n) < n // 2, 0.03, 0.12), 0.0)  # drifts halfway
        d = rng.random(n) < mu
        audited = rng.random(n) < rate
        seen = np.cumsum(np.where(audited & d, 1 / rate, 0.0))
        known = np.cumsum(audited & d)
        truth = np.cumsum(mu if conditional else d)
        ceiling = np.cumsum(below)
        for k in range(99, n, 100):
            b = disagreement_bounds(seen[k], 0.0, ceiling[k], rate, known=int(known[k]), conditional=conditional)
            if not b.low <= truth[k] <= b.high:
                missed += 1
                break
    return missed / streams


@pytest.mark.parametrize("conditional", [False, True])
def test_the_interval_holds_at_every_checkpoint_in_95_percent_of_streams(conditional: bool) -> None:
    assert _misses(0.05, conditional) <= 0.05 + 0.05  # 60 streams: binomial slack on a 5% miss rate


def test_it_is_not_vacuous() -> None:
    # 700 answers below the strongest tier, 5% audited, none of the ~35 audits disagreed: at most ~90
    # disagreements (a fixed-time binomial bound says 72); 3 seen disagreements prove some
    clean = disagreement_bounds(0.0, 0.0, 700, 0.05)
    assert clean.low == 0 and 60 < clean.high < 100
    three = disagreement_bounds(60.0, 0.0, 700, 0.05, known=3)
    assert three.low >= 3 and three.estimate == 60 and three.high < 300


def test_every_answer_seen_is_exact_and_unresolved_audits_count_against_the_promise() -> None:
    assert disagreement_bounds(4.0, 0.0, 50, 1.0) == disagreement_bounds(4.0, 0.0, 50, 1.0, known=4)
    exact = disagreement_bounds(4.0, 2.0, 50, 1.0)
    assert (exact.estimate, exact.low, exact.high) == (4.0, 4.0, 6.0)
    assert disagreement_bounds(0.0, 40.0, 700, 0.05).high > disagreement_bounds(0.0, 0.0, 700, 0.05).high


def test_a_tally_reads_as_agreement() -> None:
    tally = Tally()
    assert tally.interval(0.05).low == 0.0 and tally.interval(0.05).high == 1.0
    for i in range(100):
        tally.serve(below=i % 2 == 0, rate=1.0)
    tally.seen, tally.known = 5.0, 5
    interval = tally.interval(0.05)
    assert interval.answers == 100 and interval.estimate == interval.low == interval.high == pytest.approx(0.95)
    assert interval.covers(0.95) and not interval.covers(0.96)


@pytest.mark.parametrize("args", [(0.0, 0.0, 10, 0.0), (0.0, 0.0, 10, 1.5)])
def test_bad_arguments_are_refused(args: tuple[float, float, int, float]) -> None:
    with pytest.raises(ValueError, match="rate"):
        disagreement_bounds(*args)
    with pytest.raises(ValueError, match="alpha"):
        disagreement_bounds(0.0, 0.0, 10, 0.5, alpha=1.0)
