"""Does the online cheap-tier predictor get better as labelled runs arrive? (prequential evaluation)

Streams a real log item by item: predict P(cheap model correct) from the prompt, *then* learn the
item's label, so every prediction is made on an item the model has not seen (Dawid's prequential
scheme, the online analogue of a held-out test). Compared with the online base rate (a constant
predictor that also learns). Streams: the log's own order and `--orders - 1` seeded shuffles.
Also replays the token-budget model on the cheap model's answer lengths (estimated, 4 chars/token).

    python -m benchmarks.learning_predictor [--orders 5] [--window 300]

Writes benchmarks/figures/learning_predictor.png; last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from cascade.eval.analysis.metrics import bootstrap_ci
from cascade.eval.data.external import estimate_tokens
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogTable
from cascade.learning.predictor import CheapTierPredictor

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
STREAMS = {
    "gsm8k": (DATA / "routellm" / "gsm8k_responses.csv", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    "arc": (DATA / "routerbench" / "arc_challenge_train.csv", "mistralai/mistral-7b-chat"),
}
SKIP_BELOW = 0.4


@dataclass
class Stream:
    """One prequential pass: predictions made before each update, the labels, and the baseline."""

    p: np.ndarray
    y: np.ndarray
    base: np.ndarray


def prequential(table: LogTable, model: str, order: np.ndarray) -> Stream:
    predictor = CheapTierPredictor()
    p, y, base = [], [], []
    positives, seen = 1.0, 2.0  # Laplace-smoothed running base rate
    for i in order:
        item = table.items[int(i)]
        label = bool(item.tiers[model].correct)
        p.append(predictor.update(item.prompt, label))
        base.append(positives / seen)
        y.append(float(label))
        positives, seen = positives + label, seen + 1
    return Stream(np.array(p), np.array(y), np.array(base))


def auroc(p: np.ndarray, y: np.ndarray) -> float:
    """Mann–Whitney AUROC (ties get half credit); 0.5 means no ranking skill."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_losses(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


def rolling(stream: Stream, window: int) -> dict[str, list[float]]:
    """AUROC and log-loss of model and baseline over consecutive windows of the stream."""
    out: dict[str, list[float]] = {"end": [], "auroc": [], "ll": [], "ll_base": [], "acc": [], "acc_base": []}
    for end in range(window, len(stream.y) + 1, window // 2):
        p, y, b = stream.p[end - window : end], stream.y[end - window : end], stream.base[end - window : end]
        out["end"].append(end)
        out["auroc"].append(auroc(p, y))
        out["ll"].append(float(log_losses(p, y).mean()))
        out["ll_base"].append(float(log_losses(b, y).mean()))
        out["acc"].append(float(((p >= 0.5) == (y == 1)).mean()))
        out["acc_base"].append(float(((b >= 0.5) == (y == 1)).mean()))
    return out


def halves(stream: Stream) -> dict[str, float | list[float] | None]:
    """First- vs second-half figures, the second half's log-loss gain CI, and the skip rule's effect."""
    h = len(stream.y) // 2
    late_p, late_y, late_b = stream.p[h:], stream.y[h:], stream.base[h:]
    gain = log_losses(late_b, late_y) - log_losses(late_p, late_y)
    flagged = late_p < SKIP_BELOW
    ci = bootstrap_ci(gain)
    return {
        "auroc_first_half": auroc(stream.p[:h], stream.y[:h]),
        "auroc_second_half": auroc(late_p, late_y),
        "logloss_second_half": float(log_losses(late_p, late_y).mean()),
        "logloss_base_second_half": float(log_losses(late_b, late_y).mean()),
        "logloss_gain_ci": list(ci) if ci else None,
        "acc_second_half": float(((late_p >= 0.5) == (late_y == 1)).mean()),
        "acc_base_second_half": float(((late_b >= 0.5) == (late_y == 1)).mean()),
        "flagged_share": float(flagged.mean()),
        "cheap_acc_flagged": float(late_y[flagged].mean()) if flagged.any() else None,
        "cheap_acc_kept": float(late_y[~flagged].mean()) if (~flagged).any() else None,
        **quartiles(late_p, late_y),
    }


def quartiles(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The cheap model's accuracy on the quarter of items the predictor trusts least and most."""
    low, high = np.quantile(p, [0.25, 0.75])
    return {
        "cheap_acc_lowest_quarter": float(y[p <= low].mean()),
        "cheap_acc_highest_quarter": float(y[p >= high].mean()),
    }


def budget_replay(table: LogTable, model: str, default: int) -> dict[str, float]:
    """Prequential token budgets for the cheap model: budget before seeing each answer's length."""
    predictor = CheapTierPredictor()
    budgets, lengths = [], []
    for item in table.items:
        length = estimate_tokens(item.tiers[model].answer or "")
        budgets.append(predictor.budget(model, item.prompt) or default)
        lengths.append(length)
        predictor.observe_tokens(model, item.prompt, length)
    b, n = np.array(budgets, dtype=float), np.array(lengths, dtype=float)
    return {
        "default_budget": default,
        "mean_learned_budget": float(b.mean()),
        "truncated_share_learned": float((n > b).mean()),
        "truncated_share_default": float((n > default).mean()),
    }


def run_stream(name: str, orders: int, window: int) -> tuple[dict[str, object], list[dict[str, list[float]]]]:
    path, model = STREAMS[name]
    # Every logged item: RouteLLM's contamination list concerns its routers' training data, not this learner.
    table = read_log(path, keep_contaminated=True).select([model])
    rng = np.random.default_rng(0)
    passes = [np.arange(len(table))] + [rng.permutation(len(table)) for _ in range(orders - 1)]
    streams = [prequential(table, model, order) for order in passes]
    per_order = [halves(s) for s in streams]
    summary: dict[str, object] = {"model": model, "n": len(table), "cheap_accuracy": float(streams[0].y.mean())}
    summary["log_order"] = per_order[0]
    keys = ("auroc_first_half", "auroc_second_half", "logloss_second_half", "logloss_base_second_half")
    for key in (*keys, "cheap_acc_lowest_quarter", "cheap_acc_highest_quarter"):
        values = [float(o[key]) for o in per_order]  # type: ignore[arg-type]
        summary[f"{key}_mean_over_orders"] = float(np.mean(values))
        summary[f"{key}_range_over_orders"] = [float(min(values)), float(max(values))]
    default = 512 if name == "gsm8k" else 16
    summary["budgets"] = budget_replay(table, model, default)
    return summary, [rolling(s, window) for s in streams]


def plot(curves: dict[str, list[dict[str, list[float]]]], path: Path) -> None:
    """Per stream: rolling AUROC and log-loss, mean over the orders with their min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(curves), figsize=(6 * len(curves), 7), squeeze=False)
    for col, (name, runs) in enumerate(curves.items()):
        x = runs[0]["end"]
        _band(axes[0][col], x, [r["auroc"] for r in runs], "online predictor", "o")
        axes[0][col].axhline(0.5, color="grey", linestyle="--", label="no skill (constant)")
        axes[0][col].set(title=f"{name}: rolling AUROC, {len(runs)} orders", xlabel="labelled items seen")
        _band(axes[1][col], x, [r["ll"] for r in runs], "online predictor", "o")
        _band(axes[1][col], x, [r["ll_base"] for r in runs], "online base rate", "s")
        axes[1][col].set(title=f"{name}: rolling log-loss (lower is better)", xlabel="labelled items seen")
        axes[0][col].legend()
        axes[1][col].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _band(ax: Any, x: list[float], ys: list[list[float]], label: str, marker: str) -> None:
    values = np.array(ys)
    line = ax.plot(x, values.mean(axis=0), marker=marker, label=f"{label} (mean)")[0]
    ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5, help="stream orders: the log's, then seeded shuffles")
    parser.add_argument("--window", type=int, default=300, help="rolling window for the plot")
    parser.add_argument("--out", type=Path, default=HERE / "figures" / "learning_predictor.png")
    args = parser.parse_args()
    figures: dict[str, object] = {"skip_below": SKIP_BELOW, "orders": args.orders}
    curves: dict[str, list[dict[str, list[float]]]] = {}
    for name in STREAMS:
        figures[name], curves[name] = run_stream(name, args.orders, args.window)
        print(f"{name}: {json.dumps(figures[name]['log_order'])}", flush=True)  # type: ignore[index]
    plot(curves, args.out)
    figures["plot"] = str(args.out.relative_to(HERE.parent))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
