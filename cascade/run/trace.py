"""Rich terminal trace of one cascade run: a tree of attempts, then the totals.

The head names the router that decided (its `type:`), each attempt the verifier that scored it, so
a trace leads to the plugins' files in one step.
"""

from __future__ import annotations

import io

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from cascade.run.ensemble import agrees
from cascade.types import Attempt, CascadeResult, NodeStep

_DECISION_STYLE = {"accept": "green", "escalate": "yellow", "stop": "magenta", "failed": "red"}


class Trace:
    """Renders a CascadeResult; `Console(color_system=None, width=...)` gives plain text for tests."""

    def __init__(self, result: CascadeResult, *, title: str = "cascade"):
        self.result = result
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        result = self.result
        head = Text.assemble((f"{self.title} ", "bold"), ("query: ", "dim"), _short(result.query, 100))
        if result.tag:
            head.append_text(Text.assemble(("  tag: ", "dim"), result.tag))
        if result.router:
            head.append_text(Text.assemble(("  router: ", "dim"), result.router))
        tree = Tree(head)
        if result.route_reason:
            tree.add(Text.assemble(("route ", "bold cyan"), result.route_reason))
        approvals = {s.tier: s for s in result.steps if s.node == "approve"}
        for attempt in result.attempts:
            if attempt.tier in approvals:
                _approval_node(tree, approvals.pop(attempt.tier))
            _attempt_node(tree, attempt, [s for s in result.steps if s.tier == attempt.tier])
        for step in approvals.values():
            _approval_node(tree, step)
        if result.awaiting_approval is not None:
            ask = result.awaiting_approval
            cost = f", at most {money(ask.max_cost_usd)}" if ask.max_cost_usd is not None else ""
            tree.add(
                Text(f"approve {ask.tier} ({ask.model}{cost}) → WAITING (thread {result.thread_id})", style="cyan")
            )
        yield Group(tree, _summary(result))


def _approval_node(tree: Tree, step: NodeStep) -> None:
    outcome, _, note = step.note.partition(": ")
    style = "green" if outcome == "approved" else "magenta"
    tree.add(Text.assemble(("approve ", "bold cyan"), f"{step.tier} ", (f"→ {outcome.upper()}", style), f" {note}"))


def _attempt_node(tree: Tree, attempt: Attempt, steps: list[NodeStep]) -> None:
    style = _DECISION_STYLE.get(attempt.decision, "white")
    header = Text.assemble(
        (f"{attempt.tier}", "bold"),
        (f" ({attempt.model}) ", "dim"),
        (f"→ {attempt.decision.upper()}", f"bold {style}"),
    )
    node = tree.add(header)
    if attempt.error:
        node.add(Text(f"error: {attempt.error}", style="red"))
    else:
        node.add(Text.assemble(("answer: ", "dim"), _short(attempt.answer or "<none>", 120)))
    node.add(Text(_metrics(attempt)))
    if steps:
        node.add(Text(" │ ".join(_step_metrics(s) for s in steps if s.node != "approve"), style="dim"))
    if attempt.members:
        _members_node(node, attempt)
    if attempt.budget is not None:
        node.add(Text.assemble(("budget: ", "dim"), escape(attempt.budget.describe())))
    if attempt.early_exit is not None:
        node.add(Text.assemble(("reasoning: ", "dim"), escape(attempt.early_exit.describe())))
    if attempt.reason:
        node.add(Text.assemble(("why: ", "dim"), escape(attempt.reason)))


def _members_node(node: Tree, attempt: Attempt) -> None:
    """One line per ensemble member: ✓ voted for the tier's answer, ✗ for another, · abstained or failed."""
    members = node.add(Text(f"members ({len(attempt.members)})", style="dim"))
    for member in attempt.members:
        mark, style = ("✓", "green") if agrees(member.answer, attempt.answer) else ("✗", "yellow")
        if member.answer is None:
            mark, style = "·", "dim"
        weight = f" ×{member.weight:g}" if member.weight != 1.0 else ""
        said = f"answer: {_short(member.answer or '<none>', 60)}"
        if member.error:
            said = f"error: {_short(member.error, 80)}"
        usage = f"tokens {member.prompt_tokens}+{member.completion_tokens} · cost {money(member.cost_usd)}"
        members.add(
            Text.assemble(
                (f"{mark} ", f"bold {style}"),
                (member.model, "bold"),
                (weight, "dim"),
                (" · ", "dim"),
                (said, "red" if member.error else ""),
                f" · {usage} · {member.latency_s:.2f}s",
            )
        )


def _metrics(attempt: Attempt) -> str:
    parts = [
        f"tokens {attempt.prompt_tokens}+{attempt.completion_tokens}",
        f"cost {money(attempt.cost_usd)}",
        f"latency {attempt.latency_s:.2f}s",
    ]
    if attempt.confidence is not None:
        by = f" ({attempt.verifier})" if attempt.verifier else ""
        threshold = f" / threshold {attempt.threshold:.2f}" if attempt.threshold is not None else ""
        parts.append(f"confidence {attempt.confidence:.2f}{by}{threshold}")
    if attempt.samples > 1:
        parts.append(f"samples {attempt.samples} (saved {attempt.samples_saved})")
    return " · ".join(parts)


def _step_metrics(step: NodeStep) -> str:
    took = f"{step.latency_s:.2f}s" if step.latency_s >= 1 else f"{step.latency_s * 1e3:.1f} ms"
    return f"{step.node} {step.prompt_tokens}+{step.completion_tokens} tokens · {money(step.cost_usd)} · {took}"


def _summary(result: CascadeResult) -> Text:
    status = ("accepted", "green") if result.accepted else ("not accepted", "yellow")
    if result.error:
        status = (f"error: {result.error}", "red")
    return Text.assemble(
        ("answer: ", "bold"),
        (_short(result.answer or "<none>", 200), "bold"),
        "  (",
        status,
        f", final tier {result.final_tier or '-'})\n",
        ("total: ", "bold"),
        f"{result.total_tokens} tokens · {money(result.total_cost_usd)} · {result.latency_s:.2f}s"
        f" · {len(result.attempts)} attempt(s)"
        + (f" · stop: {result.stop_reason}" if result.stop_reason and not result.accepted else ""),
    )


def money(usd: float) -> str:
    """Dollars readable at any scale: local models cost fractions of a micro-dollar."""
    if usd == 0:
        return "$0"
    return f"${usd:.2e}" if usd < 0.001 else f"${usd:.4f}"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_text(result: CascadeResult, *, width: int = 100) -> str:
    """The trace as plain text (no colour), e.g. for logs and tests."""
    console = Console(color_system=None, width=width, file=io.StringIO())
    console.print(Trace(result))
    buffer = console.file
    assert isinstance(buffer, io.StringIO)
    return buffer.getvalue()
