"""The cost–EM picture of a replay or eval report: each policy's Pareto frontier, the tiers alone,
random mixing and the oracle, as a PNG.

Uses matplotlib's object API with the Agg canvas, so it never touches a display or pyplot's global
state (safe in servers and tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cascade.errors import UserError
from cascade.eval.analysis.replay_report import ReplayReport
from cascade.extras import install_hint


def plot_report(report: ReplayReport, path: str | Path, title: str | None = None) -> Path:
    """Write the Pareto-frontier PNG for `report` (the dict `replay` returns) and return its path."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UserError(f"plots need matplotlib: {install_hint('plot')}") from exc

    fig = Figure(figsize=(13, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _policies(ax, report)
    _random(ax, report)
    _baselines(ax, report)
    _operating_point(ax, report)
    costs = [b["cost_usd"] for b in report["baselines"].values() if b["cost_usd"] > 0]
    if costs and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    unit = report["source"].get("cost_unit", "USD")
    estimated = " — tokens estimated" if report["source"]["tokens_estimated"] else ""
    ax.set_xlabel(f"cost ({unit}, all items){estimated}" + (": a tier had no price" if unit != "USD" else ""))
    ax.set_ylabel("exact match")
    ax.set_title(title or f"{Path(report['source']['path']).name}: {report['n_items']} items")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    return out


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _policies(ax: Any, report: ReplayReport) -> None:
    for i, policy in enumerate(report["policies"]):
        curve = policy["curve"]
        ax.scatter([p["cost_usd"] for p in curve], [p["em"] for p in curve], s=8, alpha=0.25, color=f"C{i}")
        front = [curve[j] for j in policy["pareto"]]
        apgr = policy["metrics"]["apgr"]
        label = f"{policy['name']} ({policy['confidence']}" + (f", APGR {apgr:.2f})" if apgr is not None else ")")
        ax.plot([p["cost_usd"] for p in front], [p["em"] for p in front], "-", marker=".", color=f"C{i}", label=label)


def _random(ax: Any, report: ReplayReport) -> None:
    curve = report["random"]["curve"]
    ax.plot([p["cost_usd"] for p in curve], [p["em"] for p in curve], "--", color="grey", label="random mixing")


def _baselines(ax: Any, report: ReplayReport) -> None:
    """Each tier alone as a labelled black point; the oracle as a gold star."""
    tiers = [(k, v) for k, v in report["baselines"].items() if k not in ("random", "oracle")]
    ax.scatter(
        [b["cost_usd"] for _, b in tiers],
        [b["em"] for _, b in tiers],
        marker="o",
        color="black",
        s=22,
        zorder=3,
        label="each model alone",
    )
    for name, base in tiers:
        ax.annotate(
            _short(name), (base["cost_usd"], base["em"]), textcoords="offset points", xytext=(4, -9), fontsize=7
        )
    best = report["baselines"]["oracle"]
    ax.scatter(
        [best["cost_usd"]],
        [best["em"]],
        marker="*",
        color="gold",
        edgecolor="black",
        s=200,
        zorder=4,
        label=f"oracle (EM {best['em']:.3f})",
    )


def _operating_point(ax: Any, report: ReplayReport) -> None:
    chosen = report.get("cascade")
    if chosen:
        ax.scatter(
            [chosen["cost_usd"]],
            [chosen["em"]],
            marker="X",
            color="red",
            s=120,
            zorder=5,
            label=f"cascade operating point (EM {chosen['em']:.3f})",
        )
