"""The workflow's shape and what LangGraph gives with real nodes: drawing, update streams,
per-node costs, and the cascade as a subgraph of a user's graph (fake completer throughout)."""

from __future__ import annotations

import asyncio
import operator
import re
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.run.graph import Draft
from cascade.types import Attempt
from tests.unit.scripted import TIERS, make_cascade

PAGE = Path(__file__).resolve().parents[3] / "docs" / "python.md"  # where the workflow is drawn


def _edges(cascade: Cascade) -> set[tuple[str, str, str | None]]:
    drawn = cascade.graph.compiled.get_graph()
    return {(e.source, e.target, e.data if e.conditional else "always") for e in drawn.edges}


def showcase() -> Cascade:
    """Every optional node present: a pre-router, and approval before the top tier."""
    tiers = [dict(t) for t in TIERS]
    tiers[-1]["approve"] = True
    config = CascadeConfig.from_dict(
        {"tiers": tiers, "pre_router": {"type": "features"}, "verifier": {"type": "logprob"}}
    )
    return Cascade(config, completer=FakeCompleter({"*": "4"}))


def test_generate_and_verify_are_nodes_and_the_decision_is_a_labelled_edge() -> None:
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9})
    assert set(cascade.graph.compiled.get_graph().nodes) == {"__start__", "generate", "verify", "__end__"}
    assert _edges(cascade) == {
        ("__start__", "generate", "always"),
        ("generate", "verify", "always"),
        ("verify", "generate", "escalate"),
        ("verify", "__end__", "accept"),  # `stop` ends here too: LangGraph draws one edge per node pair
    }


def test_route_and_approve_appear_only_when_configured() -> None:
    nodes = set(showcase().graph.compiled.get_graph().nodes)
    assert nodes == {"__start__", "route", "generate", "verify", "approve", "__end__"}
    assert ("verify", "approve", "approval") in _edges(showcase())


def test_the_docs_picture_of_the_workflow_is_the_compiled_graph_drawn() -> None:
    blocks = re.findall(r"```mermaid\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/python.md has no mermaid picture of the workflow"
    assert blocks[0].strip() == showcase().graph.compiled.get_graph().draw_mermaid().strip()


def test_updates_stream_shows_each_node_in_turn() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.9, "large": 0.0})

    async def updates() -> list[dict[str, Any]]:
        graph = cascade.graph.compiled
        return [chunk async for chunk in graph.astream(cascade.graph.input("What is 2+3?"), stream_mode="updates")]

    chunks = asyncio.run(updates())
    assert [next(iter(c)) for c in chunks] == ["generate", "verify", "generate", "verify"]
    first_draft = chunks[0]["generate"]["draft"]
    assert isinstance(first_draft, Draft) and first_draft.completion is not None
    assert first_draft.completion.text == "4" and first_draft.max_tokens == 16
    verified = [c["verify"]["attempts"] for c in chunks if "verify" in c]
    assert [[a.decision for a in batch] for batch in verified] == [["escalate"], ["accept"]]


def test_each_attempt_is_its_generate_step_plus_its_verify_step() -> None:
    tiers = [dict(TIERS[0]), dict(TIERS[1])]
    config = CascadeConfig.from_dict(
        {
            "tiers": tiers,
            "verifier": {"type": "self_consistency", "max_samples": 4, "min_samples": 4},
            "router": {"type": "threshold", "threshold": 0.9},
        }
    )
    replies = iter(["4", "5", "4", "6"])
    fake = FakeCompleter({"fake/small": lambda _req: FakeReply(next(replies), prompt_tokens=10), "fake/medium": "5"})
    result = Cascade(config, completer=fake).run("What is 2+2?")
    assert [(s.node, s.tier) for s in result.steps] == [
        ("generate", "small"),
        ("verify", "small"),
        ("generate", "medium"),
        ("verify", "medium"),
    ]
    small_generate, small_verify = result.steps[0], result.steps[1]
    assert small_generate.prompt_tokens == 10 and small_verify.prompt_tokens == 30  # three more samples drawn
    for attempt in result.attempts:
        mine = [s for s in result.steps if s.tier == attempt.tier]
        assert sum(s.total_tokens for s in mine) == attempt.total_tokens
        assert sum(s.cost_usd for s in mine) == pytest.approx(attempt.cost_usd)
        assert sum(s.latency_s for s in mine) == pytest.approx(attempt.latency_s, abs=1e-9)
    assert [s.note for s in result.steps if s.node == "verify"] == ["escalate", "accept"]


def test_a_provider_failure_is_recorded_and_the_cascade_moves_on() -> None:
    script = {"fake/small": FakeReply(error="auth"), "fake/medium": "5", "fake/large": "6"}
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    result = cascade.run("q")
    assert [a.decision for a in result.attempts] == ["failed", "accept"]
    assert result.steps[0].note == "provider failed" and result.steps[0].total_tokens == 0


class ChatState(TypedDict, total=False):
    query: str
    attempts: Annotated[list[Attempt], operator.add]
    reply: str


def test_the_cascade_runs_as_a_subgraph_of_a_users_graph() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.9, "large": 0.0})

    async def respond(state: ChatState) -> ChatState:
        accepted = [a for a in state["attempts"] if a.decision == "accept"]
        return {"reply": f"The answer is {accepted[0].answer} ({accepted[0].tier})."}

    parent = StateGraph(ChatState)
    parent.add_node("cascade", cascade.graph.compiled)
    parent.add_node("respond", respond)
    parent.add_edge(START, "cascade")
    parent.add_edge("cascade", "respond")
    parent.add_edge("respond", END)
    app = parent.compile()

    async def go() -> tuple[list[tuple[tuple[str, ...], str]], dict[str, Any]]:
        seen = []
        async for namespace, chunk in app.astream({"query": "What is 2+3?"}, stream_mode="updates", subgraphs=True):
            seen.extend((namespace, node) for node in chunk)
        return seen, await app.ainvoke({"query": "What is 2+3?"})

    seen, final = asyncio.run(go())
    inner = [node for namespace, node in seen if namespace]
    assert inner == ["generate", "verify", "generate", "verify"]
    assert [node for namespace, node in seen if not namespace] == ["cascade", "respond"]
    assert final["reply"] == "The answer is 5 (medium)."
    assert "cascade" in parent.compile().get_graph(xray=True).nodes or any(
        n.startswith("cascade:") for n in parent.compile().get_graph(xray=True).nodes
    )


def test_an_approval_inside_the_subgraph_pauses_and_resumes_the_users_graph() -> None:
    tiers = [dict(t, approve=t["name"] == "large") for t in TIERS]
    cascade, fake = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9}, tiers=tiers)
    parent = StateGraph(ChatState)
    parent.add_node("cascade", cascade.graph.compiled)
    parent.add_edge(START, "cascade")
    parent.add_edge("cascade", END)
    app = parent.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "chat-1"}}

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        paused = await app.ainvoke({"query": "What is 2+2?"}, thread)
        return paused, await app.ainvoke(Command(resume={"approve": True, "note": "ok"}), thread)

    paused, final = asyncio.run(go())
    assert paused["__interrupt__"][0].value["tier"] == "large"
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium", "fake/large"]
    assert [a.decision for a in final["attempts"]] == ["escalate", "escalate", "accept"]
