"""Rich tables for a replay/eval report: the verdict first, operating points side by side, then the
curve metrics, in 100 columns with model names whole; the metrics' definitions with `explain`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cascade.eval.analysis.replay_report import Baseline, CascadeEntry, ConfigCascade, MeasuredCascade, ReplayReport

_METRICS = (
    ("apgr", "APGR", "{:.3f}"),
    ("cpt50", "CPT50", "{:.3f}"),
    ("cpt80", "CPT80", "{:.3f}"),
    ("aiq", "AIQ", "{:.4f}"),
    ("delta_ibc", "ΔIBC%", "{:+.1f}"),
    ("cost_reduction_at_matched_em", "cut@EM", "{:+.1%}"),
    ("oracle_saving_captured", "oracle", "{:+.1%}"),
)
WIDTH = 100
"""Reports are laid out for a terminal this wide (narrower ones wrap; wider ones are not filled)."""
_LEGEND = (
    "cut@EM: cost cut at the strongest model's EM, on the swept curve; oracle: share of the oracle's "
    "saving captured there; definitions: --explain"
)


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    return "—" if value is None else pattern.format(value)


def header(report: ReplayReport) -> Text:
    text = Text.assemble(
        (f"{report['source']['path']}", "bold"),
        f"  {report['n_items']} items",
        (f" ({report['excluded_items']} excluded)" if report["excluded_items"] else ""),
        f"  weak: {report['weak']}  strong: {report['strong']}",
    )
    for note in report["source"]["notes"]:
        text.append(f"\n  note: {note}", style="dim")
    return text


def points_table(report: ReplayReport) -> Table:
    """The cascade at its operating point next to every baseline, on the same items."""
    table = Table(title="Operating points", title_justify="left")
    table.add_column("policy", overflow="fold", ratio=1)
    for column in ("EM", "95% CI", "tokens", f"cost {report['source'].get('cost_unit', 'USD')}", "escalated"):
        table.add_column(column, justify="right", no_wrap=True)
    rows: list[tuple[str, Baseline | CascadeEntry | ConfigCascade | MeasuredCascade, str]] = []
    cascade = report["cascade"]
    if cascade:
        rows.append((f"cascade: {cascade['policy']}", cascade, "bold green"))
    rows += [(name, base, "") for name, base in report["baselines"].items()]
    for name, entry, style in rows:
        ci, tokens = entry["em_ci"], entry["total_tokens"]
        table.add_row(
            name,
            _fmt(entry["em"]),
            f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "—",
            "—" if tokens is None else f"{tokens:,}",
            f"{entry['cost_usd']:.4g}",
            _fmt(entry["escalation_rate"], "{:.1%}") if name not in ("oracle",) else "—",
            style=style,
        )
    return table


def metrics_table(report: ReplayReport) -> Table:
    """Every policy's curve metrics, with random mixing as the yardstick (APGR 0.5, ΔIBC 0)."""
    table = Table(
        title="Curve metrics, ours (normalised cost: 0 = weak alone, 1 = strong alone)",
        title_justify="left",
        caption=_LEGEND,
        caption_justify="left",
    )
    table.add_column("policy", overflow="fold", ratio=1)
    table.add_column("confidence", overflow="fold", max_width=12)
    for _, label, _ in _METRICS:
        table.add_column(label, justify="right", no_wrap=True)
    entries = [(p["name"], p["confidence"], p["metrics"]) for p in report["policies"]]
    entries.append(("random mixing", "—", report["random"]["metrics"]))
    for name, confidence, values in entries:
        table.add_row(name, confidence, *(_fmt(values.get(key), pattern) for key, _, pattern in _METRICS))
    return table


_ANCHOR_METRICS = (
    ("routellm", "apgr", "APGR", "{:.3f}"),
    ("routellm", "cpt50", "CPT50", "{:.1%}"),
    ("routellm", "cpt80", "CPT80", "{:.1%}"),
    ("routerbench", "aiq", "AIQ", "{:.4f}"),
)


def _anchor_cell(block: Mapping[str, Any], key: str, pattern: str) -> str:
    """The value, or in words why there is none; a CPT reached with no strong call is not shown as 0."""
    note = block.get("notes", {}).get(key, "")
    if block.get(key) is None:
        return note.split(":")[0] if note else "—"
    if note.startswith("reached with no strong call"):
        return "no strong call"
    return pattern.format(block[key])


def anchors_table(report: ReplayReport) -> Table:
    """The same curves under the anchors' exact definitions, comparable with their published numbers."""
    table = Table(
        title="The anchors' definitions: RouteLLM's APGR and CPT (x = share of queries calling the strong "
        "model), RouterBench's AIQ (EM averaged over [0, cost end])",
        title_justify="left",
    )
    table.add_column("policy", overflow="fold", ratio=1)
    for anchor, _, label, _ in _ANCHOR_METRICS:
        table.add_column(f"{'RouteLLM' if anchor == 'routellm' else 'RouterBench'} {label}", justify="right")
    entries = [(p["name"], p["metrics"]) for p in report["policies"]]
    entries.append(("random mixing", report["random"]["metrics"]))
    for name, values in entries:
        blocks: dict[str, Mapping[str, Any]] = {
            "routellm": values["routellm"],
            "routerbench": values.get("routerbench") or {},
        }
        cells = [_anchor_cell(blocks[anchor], key, pattern) for anchor, key, _, pattern in _ANCHOR_METRICS]
        table.add_row(name, *cells)
    return table


def definitions(report: ReplayReport) -> Text:
    text = Text("metric definitions (also in the JSON report):", style="dim")
    for key, meaning in report.get("metric_definitions", {}).items():
        text.append(f"\n  {key}: {meaning}", style="dim")
    return text


def verdict(report: ReplayReport) -> Text:
    """The first lines: the operating point against the strongest model alone, and what needs saying."""
    found = report.get("verdict")
    if not found:
        return Text("no verdict: the log has no cascade to compare with the strongest model", style="yellow")
    text = Text(found["line"], style="bold")
    for note in found["notes"]:
        text.append(f"\n  {note}")
    return text


def render(report: ReplayReport, *, explain: bool = False) -> Group:
    parts: list[Any] = [verdict(report), header(report), points_table(report), metrics_table(report)]
    parts.append(anchors_table(report))
    cascade = report["cascade"]
    if cascade:
        parts.append(Text(f"operating point: {cascade.get('selection', '')}", style="dim"))
    else:
        parts.append(Text("no cascade: the log has no responses or confidence to gate on", style="yellow"))
    if explain:
        parts.append(definitions(report))
    return Group(*parts)


def print_report(report: ReplayReport, console: Console | None = None, *, explain: bool = False) -> None:
    """Print `report` no wider than `WIDTH` columns (on a wider terminal too: tables stay compact)."""
    console = console or Console()
    if not console.is_terminal:
        console.width = WIDTH  # a file or a pipe gets the whole width (rich assumes 80)
    console.print(render(report, explain=explain), width=min(console.width, WIDTH))
