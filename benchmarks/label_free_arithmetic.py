"""Why a label-free promise buys no cascade on a short sample: the tuner's bound on n items, and GSM8K's shares.

    python -m benchmarks.label_free_arithmetic [--log ../shared/data/routellm/gsm8k_responses.csv]

Two pieces of arithmetic behind issue 25's unmet targets (RESULTS.md), from the tuner's own code:

1. Certifying: the lower bound `cascade tune --reference strongest` puts on a cascade's agreement
   (Tango's score bound, at one candidate's z = 1.645 or at the simultaneous critical value of ~2.4-2.9)
   for a perfect record on n items, and the n at which a cascade that truly disagrees on a share q
   clears A at the median.
2. Paying on GSM8K: Mixtral is the only cheap model; ranked by the label-free scorer (cross-fitted on
   the whole log: a best case for any warm-up), how agreement, EM and cost (5% audits of the accepted
   answers at GPT-4's price) move with the share accepted from Mixtral.

Prints the tables, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from cascade.config.schema import AnswerConfig
from cascade.eval.data.formats import read_log
from cascade.io.answers import extractor
from cascade.optimize.candidates import Gate, Structure, Workbench
from cascade.optimize.reference import relabel
from cascade.optimize.simultaneous import lower_bound
from cascade.optimize.tuner import Settings, single
from cascade.scoring.train import fold_ids

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "routellm" / "gsm8k_responses.csv"
AUDIT_RATE = 0.05


def agreement_bound(disagreements: float, n: int, z: float) -> float:
    """The tuner's lower bound on agreement after `disagreements` of `n` items (no item where the cascade
    beats the reference: without gold, agreeing is the best it can do)."""
    return 1.0 + float(lower_bound(np.array(0.0), np.array(float(disagreements)), n, z))


def items_to_certify(share: float, target: float, z: float, most: int = 40_000) -> int | None:
    """The fewest items (in tens) on which a cascade disagreeing on `share` of them clears `target` at `z`."""
    return next((n for n in range(10, most, 10) if agreement_bound(share * n, n, z) >= target), None)


def certifying() -> dict[str, Any]:
    perfect = {f"n={n} z={z}": round(agreement_bound(0, n, z), 4) for n in (300, 510) for z in (1.645, 2.4, 2.6, 2.8)}
    needed = {
        f"q={q} A={a} z={z}": items_to_certify(q, a, z) for q in (0.01, 0.016) for a in (0.98,) for z in (1.645, 2.8)
    }
    return {"bound_at_zero_disagreements": perfect, "items_to_certify_at_the_median": needed}


def gsm8k_shares(path: Path) -> dict[str, Any]:
    """Agreement, EM and cost by the share accepted from Mixtral, best-ranked first by its label-free scorer."""
    log = read_log(path)
    full = log.select(log.models)
    gpt4 = "gpt-4-1106-preview"
    mixtral = next(m for m in full.models if m != gpt4)
    labels = relabel(full, gpt4).select(full.models)
    kept = {item.id for item in labels.items}
    gold = full.subset([i for i, item in enumerate(full.items) if item.id in kept])
    n = len(labels)
    agree, em_cheap, em_ref = labels.correct(mixtral), gold.correct(mixtral), gold.correct(gpt4)
    cost_cheap, cost_ref = labels.cost(mixtral), labels.cost(gpt4)
    bench = Workbench(labels, extractor(AnswerConfig(format="number")), fold_ids(n, 5, 0), Settings().fit)
    confidence = bench.confidence(Structure((Gate(single(mixtral), "scorer"),), single(gpt4)), 0)
    order = np.argsort(-confidence)
    rows = []
    for share in (0.05, 0.10, 0.15, 0.20, 0.25, 0.30):
        accepted = np.zeros(n, dtype=bool)
        accepted[order[: round(share * n)]] = True
        spent = cost_cheap.sum() + cost_ref[~accepted].sum() + AUDIT_RATE * cost_ref[accepted].sum()
        rows.append({
            "accepted": share, "agreement_of_accepted": round(float(agree[accepted].mean()), 3),
            "agreement": round(float(np.where(accepted, agree, 1.0).mean()), 4),
            "em_delta_points": round(100 * float(np.where(accepted, em_cheap, em_ref).mean() - em_ref.mean()), 2),
            "cost_ratio": round(float(spent / cost_ref.sum()), 3),
            "cost_share_accepted": round(float(cost_ref[accepted].sum() / cost_ref.sum()), 3),
        })  # fmt: skip
    ratio = float(cost_cheap.sum() / cost_ref.sum())
    return {
        "n": n, "mixtral_agrees": round(float(agree.mean()), 3), "mixtral_cost_ratio": round(ratio, 4),
        "mixtral_right_where_gpt4_wrong": round(float(((em_cheap == 1) & (em_ref == 0)).mean()), 4),
        "cost_share_needed_for_0.90": round((ratio + 1 - 0.90) / (1 - AUDIT_RATE), 4),
        "scorer_auroc_agreement": round(float(roc_auc_score(agree, confidence)), 3), "by_share": rows,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=GSM8K, help="RouteLLM's GSM8K file")
    args = parser.parse_args()
    report = {"benchmark": "label_free_arithmetic", "certifying": certifying(), "gsm8k": gsm8k_shares(args.log)}
    for key, value in report["certifying"].items():
        print(key, json.dumps(value))
    for row in report["gsm8k"]["by_share"]:
        print(json.dumps(row))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
