"""What each metric in a replay or eval report means, written into the report beside the numbers.

Keys follow the report's `metrics` block: ours at the top level, the anchors' exact definitions under
`routellm.*` and `routerbench.*` (see `cascade.eval.analysis.anchors`).
"""

from __future__ import annotations

from cascade.eval.analysis.anchors import ROUTELLM_SOURCE, ROUTERBENCH_SOURCE

METRIC_DEFINITIONS: dict[str, str] = {
    "apgr": (
        "ours: area under PGR = (EM - EM_weak)/(EM_strong - EM_weak) over normalised cost "
        "(cost - cost_weak)/(cost_strong - cost_weak) from 0 to 1; end points (0,0) and (1,1) added, points "
        "dearer than the strong model dropped, the best PGR reached at or below each cost integrated"
    ),
    "cpt50": "ours: least normalised cost among the policy's own points with PGR >= 0.5 (no interpolation)",
    "cpt80": "ours: least normalised cost among the policy's own points with PGR >= 0.8 (no interpolation)",
    "aiq": (
        "ours: area under the non-decreasing convex hull of (cost, EM) over [c_min, c_max] of the single "
        "models, divided by c_max - c_min (0 below the policy's cheapest point)"
    ),
    "delta_ibc": "AutoMix: (IBC - IBC_base)/IBC_base x 100 at the point of best IBC = (EM - EM_weak)/(C - C_weak)",
    "cost_reduction_at_matched_em": "1 - cost/cost_strong at the cheapest point with EM >= EM_strong - tolerance",
    "oracle_saving_captured": "(C_strong - C)/(C_strong - C_oracle) at that matched point",
    "routellm.apgr": (
        f"{ROUTELLM_SOURCE}: x = share of queries calling the strong model, y = EM, the raw points sorted by x "
        "(at one share the most accurate point); (AUC - AUC_weak)/(AUC_strong - AUC_weak), trapezoids over the "
        "points' own x-range"
    ),
    "routellm.cpt50": (
        f"{ROUTELLM_SOURCE}: np.interp(EM_weak + 0.5 (EM_strong - EM_weak), EMs, shares) on those points: a share "
        "of strong calls (RouteLLM prints it x100 as %); None where no point reaches the target"
    ),
    "routellm.cpt80": f"{ROUTELLM_SOURCE}: as routellm.cpt50 at 80% of the gap",
    "routerbench.aiq": (
        f"{ROUTERBENCH_SOURCE}: the non-decreasing convex hull of (cost, EM), extended flat to the largest "
        "best-EM cost of all the curves in this report (routerbench.cost_end), trapezoid area / that cost: "
        "EM averaged over [0, cost_end]"
    ),
}
