"""Offline policies on a 4-item log whose outcomes are worked out by hand."""

from __future__ import annotations

import pytest

from cascade.errors import UserError
from cascade.eval.analysis.confidence import (
    AgreementConfidence,
    HeuristicConfidence,
    LoggedConfidence,
    arithmetic_checks,
)
from cascade.eval.analysis.policies import CascadePolicy, hull_chain, make_confidence, oracle, random_mix, single
from cascade.eval.data.logs import LogItem, LogTable, TierLog


def four_items() -> LogTable:
    """w (cost 1, logged confidence), v (cost 2, a verifier), s (cost 10); gold A, C, C, A.

    item  w: answer/right/conf   v: answer/right   s: answer/right
    1     A  yes  0.9            A  yes            A  yes
    2     B  no   0.2            C  yes            C  yes
    3     B  no   0.8            B  no             D  no
    4     A  yes  0.4            B  no             A  yes
    """
    rows = [
        (("A", True, 0.9), ("A", True), ("A", True)),
        (("B", False, 0.2), ("C", True), ("C", True)),
        (("B", False, 0.8), ("B", False), ("D", False)),
        (("A", True, 0.4), ("B", False), ("A", True)),
    ]
    items = []
    for i, (w, v, s) in enumerate(rows):
        tiers = {
            "w": TierLog(w[1], 1.0, 10, w[0], w[2]),
            "v": TierLog(v[1], 2.0, 20, v[0]),
            "s": TierLog(s[1], 10.0, 100, s[0]),
        }
        items.append(LogItem(f"q{i + 1}", "Q?", tiers, "choice", {"letters": ["A", "B", "C", "D"]}))
    return LogTable(["w", "v", "s"], items)


def test_single_tiers() -> None:
    log = four_items()
    assert single(log, "w").point == (4.0, 0.5)
    assert single(log, "s").point == (40.0, 0.75)
    assert single(log, "s").total_tokens == 400


def test_oracle_is_the_cheapest_correct_tier_else_the_cheapest() -> None:
    log = four_items()
    # item 1 w (1), item 2 v (2), item 3 nobody right → w (1, wrong), item 4 w (1): EM 0.75, cost 5.
    best = oracle(log)
    assert best.point == (5.0, 0.75) and best.extra["picks"] == {"w": 3, "v": 1, "s": 0}
    # Only w and s: item 2 needs s (10): cost 13.
    assert oracle(log, ["w", "s"]).point == (13.0, 0.75)


def test_random_mixing_expectation_and_draw() -> None:
    log = four_items()
    half = random_mix(log, "w", "s", 0.5)
    assert half.point == pytest.approx((22.0, 0.625)) and half.escalation_rate == 0.5
    drawn = random_mix(log, "w", "s", 0.5, seed=3)
    assert set(drawn.cost.tolist()) <= {1.0, 10.0}
    assert drawn.cost.tolist() == random_mix(log, "w", "s", 0.5, seed=3).cost.tolist()


def test_cascade_with_logged_confidence_by_hand() -> None:
    prepared = CascadePolicy(("w", "s"), LoggedConfidence()).prepare(four_items())
    # Threshold 0.5: items 1 and 3 accepted at w (1 each), 2 and 4 escalate (1 + 10 each).
    # EM = (1 + 1 + 0 + 1)/4 = 0.75; cost 1 + 11 + 1 + 11 = 24.
    at = prepared.at(0.5)
    assert at.point == (24.0, 0.75) and at.escalation_rate == 0.5 and at.total_tokens == 240
    sweep = [(o.threshold, o.point) for o in prepared.sweep()]
    assert sweep[:4] == [(0.2, (4.0, 0.5)), (0.4, (14.0, 0.75)), (0.8, (24.0, 0.75)), (0.9, (34.0, 0.75))]
    last = sweep[4]
    assert last[1] == (44.0, 0.75) and isinstance(last[0], float) and last[0] > 0.9  # always escalate: both tiers


def test_agreement_pays_the_verifier_once() -> None:
    log = four_items()
    # w agrees with v on items 1 and 3 → accepted there (w + v = 3); items 2, 4 escalate (1 + 2 + 10).
    pair = CascadePolicy(("w", "s"), AgreementConfidence(("v",))).prepare(log)
    assert pair.confidence[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert pair.at(1.0).point == (32.0, 0.75)
    # v as verifier and as a tier: paid once. Tier v's confidence = agreement with w (the earlier tier).
    chain = CascadePolicy(("w", "v", "s"), AgreementConfidence(("v",))).prepare(log)
    assert chain.cost[0].tolist() == [3.0, 3.0, 13.0]
    assert chain.at((2.0, 0.0)).point == (12.0, 0.5)  # w never accepted, v always: v's EM, w + v cost
    assert chain.at(1.0).point == (32.0, 0.75)


def test_agreement_needs_something_to_compare_with() -> None:
    with pytest.raises(ValueError, match="needs a verifier"):
        CascadePolicy(("w", "s"), AgreementConfidence()).prepare(four_items())


def test_make_confidence_picks_what_the_log_allows() -> None:
    log = four_items()
    assert isinstance(make_confidence(log, ["w", "s"]), LoggedConfidence)
    for item in log.items:
        item.tiers["w"] = TierLog(item.tiers["w"].correct, 1.0, 10, item.tiers["w"].answer)
    chosen = make_confidence(log, ["w", "s"])
    assert isinstance(chosen, AgreementConfidence) and chosen.verifiers == ("v",)  # cheapest spare model
    assert isinstance(make_confidence(log, ["w", "v", "s"]), HeuristicConfidence)  # no spare model left
    with pytest.raises(UserError, match="logged confidence"):
        make_confidence(log, ["w", "s"], "logged")


def test_hull_chain_skips_dominated_models() -> None:
    # w (4, .5), v (8, .5: dominated), s (40, .75)
    assert hull_chain(four_items()) == ["w", "s"]


def test_heuristic_confidence() -> None:
    assert arithmetic_checks("3 + 4 = 7 and 2 * 5 = 11") == [True, False]
    assert arithmetic_checks("<<9**99999999=1>>") == []  # powers are never evaluated
    items = [
        LogItem("a", "q", {"m": TierLog(True, 1, answer="3 + 4 = 7 so 7 * 2 = 14.\n#### 14")}, "number"),
        LogItem("b", "q", {"m": TierLog(False, 1, answer="However, assuming 3 + 4 = 8, about 8.5")}, "number"),
        LogItem("c", "q", {"m": TierLog(True, 1, answer="B")}, "choice", {"letters": ["A", "B"]}),
        LogItem("d", "q", {"m": TierLog(True, 1, answer="I think B is right")}, "choice", {"letters": ["A", "B"]}),
        LogItem("e", "q", {"m": TierLog(False, 1, answer="no idea")}, "choice", {"letters": ["A", "B"]}),
    ]
    scores = HeuristicConfidence().score(LogTable(["m"], items), "m", []).confidence.tolist()
    assert scores[0] > 0.9 and scores[1] < 0.2 and scores[2:] == [1.0, 0.5, 0.0]
