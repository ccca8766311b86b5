"""drift_trigger.py's own arithmetic: where the trigger fires along a stream, and the false-probe rate's interval."""

from __future__ import annotations

import pytest

from cascade.audit.shift import BASELINE
from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("drift_trigger")


def test_a_stream_that_jumps_triggers_after_the_jump_and_records_a_new_baseline() -> None:
    steady = [(i % 2 == 0, {"small": 0.5 + 0.4 * (i % 2)}) for i in range(BASELINE + 200)]
    jumped = [(True, {"small": 0.99})] * 400
    fired, tested = bench.triggers(steady + jumped, 1 / 5000)
    assert fired and BASELINE + 200 <= fired[0] < BASELINE + 260
    assert len(fired) == 1  # after it the jumped traffic is the baseline
    assert tested == len(steady) + len(jumped) - 2 * BASELINE


def test_the_rate_interval_is_the_exact_poisson_one() -> None:
    assert bench.poisson_ci(0, 1000) == pytest.approx([0.0, 3.689 / 1000], rel=1e-3)
    low, high = bench.poisson_ci(5, 63351)
    assert low == pytest.approx(1.6235 / 63351, rel=1e-3) and high == pytest.approx(11.668 / 63351, rel=1e-3)
