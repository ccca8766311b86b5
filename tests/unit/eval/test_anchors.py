"""The anchors' definitions pinned to numbers their own code computed on these fixed curves.

RouteLLM: lm-sys/RouteLLM @ 0b64fdaf, `routellm/evals/evaluate.py`, `generate_results` run unchanged
on these points (numpy 1.26.4, pandas 2.2.3); CPT read before its 2-decimal "%" formatting.
Shares and accuracies are in RouteLLM's percent units there; here they are fractions.
RouterBench: withmartian/routerbench @ cc67d100, `evaluation/AIQ.py`, `calc_AIQ(..., plot_graph=False)`
run unchanged on these curves (one list per call, as noted).
"""

from __future__ import annotations

import pytest

from cascade.eval.analysis.anchors import routellm_metrics, routerbench_aiq, routerbench_cost_end

# A 12-point sample of the RouteLLM GSM8K replay curve (share of GPT-4 calls, EM), rounded.
GSM8K_LIKE = [
    (0.0, 0.6373),
    (0.0903, 0.6909),
    (0.1813, 0.7529),
    (0.2724, 0.7942),
    (0.3627, 0.8011),
    (0.4507, 0.8049),
    (0.5409, 0.8133),
    (0.6327, 0.8225),
    (0.7261, 0.8294),
    (0.8164, 0.8363),
    (0.9059, 0.847),
    (0.9992, 0.8569),
]
NON_MONOTONE = [(0.0, 0.5), (0.2, 0.7), (0.4, 0.8), (0.6, 0.75), (0.8, 0.88), (1.0, 0.9)]
PARTIAL_SHARE = [(0.1, 0.55), (0.35, 0.72), (0.7, 0.86)]

# (points, weak EM, strong EM) → RouteLLM's APGR, CPT(50%), CPT(80%) (its % / 100)
ROUTELLM_CASES = [
    (GSM8K_LIKE, 0.6373, 0.8577, 0.7141007951551803, 0.173374193548387, 0.5440930434782605),
    (NON_MONOTONE, 0.5, 0.9, 0.6649999999999998, 0.2, 0.7076923076923077),
    (PARTIAL_SHARE, 0.5, 0.9, 0.5635416666666668, 0.3205882352941177, 0.6),
]


@pytest.mark.parametrize(("points", "weak", "strong", "apgr", "cpt50", "cpt80"), ROUTELLM_CASES)
def test_routellm_matches_evaluate_py(
    points: list[tuple[float, float]], weak: float, strong: float, apgr: float, cpt50: float, cpt80: float
) -> None:
    result = routellm_metrics(points, weak, strong)
    assert result.apgr == pytest.approx(apgr, abs=1e-12)
    assert result.cpt50 == pytest.approx(cpt50, abs=1e-12)
    assert result.cpt80 == pytest.approx(cpt80, abs=1e-12)


def test_routellm_order_of_points_does_not_matter() -> None:
    shuffled = GSM8K_LIKE[::2] + GSM8K_LIKE[1::2]
    assert routellm_metrics(shuffled, 0.6373, 0.8577) == routellm_metrics(GSM8K_LIKE, 0.6373, 0.8577)


def test_routellm_non_monotone_curve_is_flagged() -> None:
    assert "not monotone" in routellm_metrics(NON_MONOTONE, 0.5, 0.9).notes["curve"]
    assert "curve" not in routellm_metrics(GSM8K_LIKE, 0.6373, 0.8577).notes


def test_routellm_target_reached_with_no_strong_call_is_said_not_hidden() -> None:
    # evaluate.py: APGR 0.95625 and CPT 0.00% for both targets.
    result = routellm_metrics([(0.0, 0.85), (0.3, 0.88), (1.0, 0.9)], 0.5, 0.9)
    assert result.apgr == pytest.approx(0.95625, abs=1e-12)
    assert result.cpt50 == 0.0 and result.cpt80 == 0.0
    assert result.notes["cpt80"].startswith("reached with no strong call")


def test_routellm_target_never_reached_is_none_not_a_clamp() -> None:
    # evaluate.py: APGR 0.21875; CPT(80%) 100.00%, np.interp clamped to the last point.
    result = routellm_metrics([(0.0, 0.5), (0.5, 0.6), (1.0, 0.65)], 0.5, 0.9)
    assert result.apgr == pytest.approx(0.21875, abs=1e-12)
    assert result.cpt80 is None and "clamp to 1.0000" in result.notes["cpt80"]


def test_routellm_axis_undefined_without_a_strong_call() -> None:
    result = routellm_metrics([(0.0, 0.6), (0.0, 0.7)], 0.5, 0.9)
    assert (result.apgr, result.cpt50, result.cpt80) == (None, None, None)
    assert all(note.startswith("undefined") for note in result.notes.values())
    same_em = routellm_metrics([(0.0, 0.5), (1.0, 0.5)], 0.5, 0.5)
    assert same_em.apgr is None and same_em.notes["apgr"].startswith("undefined")


def test_routellm_ties_at_one_share_keep_the_most_accurate_point() -> None:
    tied = [*NON_MONOTONE, (0.4, 0.6)]
    assert routellm_metrics(tied, 0.5, 0.9) == routellm_metrics(NON_MONOTONE, 0.5, 0.9)


# (cost, quality) curves; the GSM8K-like one is the same sample on the cost axis (USD).
AIQ_GSM8K_LIKE = [
    (0.1068, 0.6373),
    (0.6641, 0.6909),
    (1.201, 0.7529),
    (1.7812, 0.7942),
    (2.3772, 0.8011),
    (2.8663, 0.8049),
    (3.2867, 0.8133),
    (3.6939, 0.8225),
    (4.0882, 0.8294),
    (4.4295, 0.8363),
    (4.7278, 0.847),
    (5.0151, 0.8569),
]
AIQ_DIP = [(1.0, 0.5), (1.5, 0.7), (2.0, 0.8), (2.5, 0.75), (3.0, 0.9), (3.5, 0.85)]
AIQ_CHORD = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.9)]
AIQ_FLAT_TOP = [(0.5, 0.4), (1.0, 0.6), (2.0, 0.9), (3.0, 0.9), (4.0, 0.7)]


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        (AIQ_GSM8K_LIKE, 0.7734917100356922),
        (AIQ_DIP, 0.5083333333333334),
        (AIQ_CHORD, 0.4666666666666666),
        (AIQ_FLAT_TOP, 0.6333333333333333),
    ],
)
def test_routerbench_aiq_matches_calc_aiq_alone(curve: list[tuple[float, float]], expected: float) -> None:
    assert routerbench_aiq([curve]) == [pytest.approx(expected, abs=1e-12)]


def test_routerbench_aiq_matches_calc_aiq_on_a_list() -> None:
    # calc_AIQ([gsm8k-like, dip, chord, flat top]): all extended to the largest best-quality cost, 5.0151.
    expected = [0.7734917100356922, 0.665707563159259, 0.6407828358357759, 0.7404817451297082]
    curves = [AIQ_GSM8K_LIKE, AIQ_DIP, AIQ_CHORD, AIQ_FLAT_TOP]
    assert routerbench_aiq(curves) == [pytest.approx(v, abs=1e-12) for v in expected]
    assert routerbench_cost_end(curves) == 5.0151
    assert routerbench_cost_end([AIQ_FLAT_TOP]) == 3.0  # the last point of best quality, not the dearest


def test_routerbench_aiq_degenerate_curves() -> None:
    assert routerbench_aiq([[]]) == [None]
    assert routerbench_aiq([[(0.0, 0.7)]]) == [None]  # no cost to average over
    assert routerbench_aiq([[(2.0, 0.8)]]) == [pytest.approx(0.0)]  # nothing below its only cost
