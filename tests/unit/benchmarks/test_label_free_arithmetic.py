"""benchmarks/label_free_arithmetic.py: the bound it quotes is the tuner's, and more candidates need more items."""

from __future__ import annotations

import pytest

from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("label_free_arithmetic")


def test_a_perfect_record_on_300_items_clears_098_only_below_a_critical_value_of_about_245() -> None:
    assert bench.agreement_bound(0, 300, 1.645) == pytest.approx(1 - 1.645**2 / (300 + 1.645**2), abs=1e-3)
    assert bench.agreement_bound(0, 300, 2.4) >= 0.98 > bench.agreement_bound(0, 300, 2.6)
    assert bench.agreement_bound(1, 300, 2.4) < 0.98  # one disagreement already fails at the lowest seen


def test_the_simultaneous_bound_needs_several_times_the_items_one_candidates_bound_needs() -> None:
    own, simultaneous = bench.items_to_certify(0.01, 0.98, 1.645), bench.items_to_certify(0.01, 0.98, 2.8)
    assert own is not None and simultaneous is not None and 2 * own < simultaneous
    assert bench.items_to_certify(0.025, 0.98, 1.645, most=3000) is None  # a cascade below the promise never clears it
