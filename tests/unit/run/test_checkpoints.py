"""Checkpoints and approvals on the fake completer: a crashed run resumes without paying again for
the tiers that answered; a tier with `approve: true` waits for a person, then runs or stops."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from cascade import Cascade, FakeCompleter, FakeReply, UserError
from cascade.cli.main import main
from cascade.config.schema import load_config
from cascade.io.conversation import conversation_of
from cascade.run.engine import assemble
from cascade.run.graph import Draft, with_state_types
from cascade.types import Attempt, CascadeResult, Completion, EnsembleCompletion, MemberOutput, RoutePlan, ToolCall
from tests.unit.scripted import TIERS, make_cascade

ROOT = Path(__file__).resolve().parents[3]
ESCALATES_TWICE = {"small": 0.1, "medium": 0.1, "large": 0.9}


def crash_once(text: str) -> Callable[[Any], str]:
    """A model call that crashes the run the first time (not a provider error: nothing handles it)."""
    calls = {"n": 0}

    def reply(_request: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker killed")
        return text

    return reply


def with_approval(tier: str) -> list[dict[str, Any]]:
    return [dict(t, approve=True) if t["name"] == tier else dict(t) for t in TIERS]


def test_a_crashed_run_resumes_from_sqlite_without_calling_answered_tiers_again(tmp_path: Path) -> None:
    script = {"fake/small": "4", "fake/medium": crash_once("5"), "fake/large": "6"}
    plain, fake = make_cascade(ESCALATES_TWICE, script=script)

    async def go() -> CascadeResult:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "runs.db")) as saver:
            cascade = Cascade(plain.config, completer=fake, checkpointer=saver)
            with pytest.raises(RuntimeError, match="worker killed"):
                await cascade.arun("What is 2+2?", thread_id="t-1")
            assert [c.model for c in fake.calls] == ["fake/small", "fake/medium"]
            return await cascade.aresume("t-1")

    result = asyncio.run(go())
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium", "fake/medium", "fake/large"]
    assert [a.tier for a in result.attempts] == ["small", "medium", "large"]
    assert result.accepted and result.answer == "6"
    assert [s.node for s in result.steps].count("generate") == 3  # the crashed call left no step


CHILD = """
import asyncio, os, sys
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from cascade import Cascade
from tests.unit.scripted import make_cascade

def die(_request):
    os._exit(3)  # the process dies mid-cascade, as on a kill or an out-of-memory

async def main():
    plain, fake = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9},
                               script={"fake/small": "4", "fake/medium": die, "fake/large": "6"})
    async with AsyncSqliteSaver.from_conn_string(sys.argv[1]) as saver:
        await Cascade(plain.config, completer=fake, checkpointer=saver).arun("What is 2+2?", thread_id="t-9")

asyncio.run(main())
"""


def test_a_killed_process_is_resumed_by_another_without_paying_again(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(db)], env=env, cwd=ROOT, timeout=120)
    assert child.returncode == 3
    plain, fake = make_cascade(ESCALATES_TWICE)

    async def go() -> CascadeResult:
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            return await Cascade(plain.config, completer=fake, checkpointer=saver).aresume("t-9")

    result = asyncio.run(go())
    assert [c.model for c in fake.calls] == ["fake/medium", "fake/large"]  # small answered before the kill
    assert [(a.tier, a.answer) for a in result.attempts] == [("small", "4"), ("medium", "5"), ("large", "6")]


def test_approval_pauses_before_the_tier_and_approving_calls_it() -> None:
    cascade, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"))
    paused = cascade.run("What is 2+2?")
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium"]
    ask = paused.awaiting_approval
    assert ask is not None and ask.tier == "large" and ask.best_answer == "5" and ask.max_tokens == 64
    assert ask.max_cost_usd == pytest.approx(3 * 1e-5 + 64 * 2e-5)  # 12-character prompt ≈ 3 tokens, 64-token cap
    assert paused.stop_reason == "awaiting approval of tier 'large'" and paused.error is None
    assert paused.answer == "5" and not paused.accepted and paused.thread_id

    result = cascade.resume(paused.thread_id or "", approve=True, note="ok by Ana")
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium", "fake/large"]
    assert result.accepted and result.answer == "6" and result.awaiting_approval is None
    assert [(s.node, s.note) for s in result.steps if s.node == "approve"] == [("approve", "approved: ok by Ana")]


def test_refusing_stops_with_the_best_answer_so_far_and_says_why() -> None:
    cascade, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"))
    paused = cascade.run("What is 2+2?")
    result = cascade.resume(paused.thread_id or "", approve=False, note="too expensive")
    assert "fake/large" not in [c.model for c in fake.calls]
    assert result.answer == "5" and result.final_tier == "medium" and not result.accepted
    assert result.stop_reason == "tier 'large' not approved: too expensive"
    assert result.steps[-1].node == "approve" and result.steps[-1].note == "refused: too expensive"
    assert result.error is None


def test_approval_with_langgraphs_own_command_resume() -> None:
    cascade, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("medium"))
    graph = cascade.graph.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "lg-1"}}

    async def go() -> tuple[Any, dict[str, Any]]:
        paused = await graph.ainvoke(cascade.graph.input("What is 2+2?"), thread)
        return paused, await graph.ainvoke(Command(resume={"approve": True}), thread)

    paused, final = asyncio.run(go())
    (question,) = paused["__interrupt__"]
    assert question.value["tier"] == "medium" and question.value["model"] == "fake/medium"
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium", "fake/large"]
    assert assemble(conversation_of("What is 2+2?"), final).answer == "6"


def test_a_first_tier_that_needs_approval_pauses_before_any_call() -> None:
    cascade, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("small"))
    paused = cascade.run("What is 2+2?")
    assert not fake.calls and paused.awaiting_approval is not None and paused.answer is None
    refused = cascade.resume(paused.thread_id or "", approve=False)
    assert refused.stop_reason == "tier 'small' not approved" and not fake.calls


def test_resume_misuse_is_a_clear_error() -> None:
    cascade, _ = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"))
    paused = cascade.run("What is 2+2?")
    thread = paused.thread_id or ""
    with pytest.raises(UserError, match="waits for approval of tier 'large'"):
        cascade.resume(thread)
    with pytest.raises(UserError, match="no checkpointed run"):
        cascade.resume("nope", approve=True)
    graph = cascade.graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "bad"}}

    async def bad_reply() -> None:
        await graph.ainvoke(cascade.graph.input("q"), config)
        await graph.ainvoke(Command(resume="yes please"), config)

    with pytest.raises(UserError, match=r"Command\(resume=True/False\)"):
        asyncio.run(bad_reply())
    plain, _ = make_cascade(ESCALATES_TWICE)
    with pytest.raises(UserError, match="checkpointer"):
        plain.run("q", thread_id="t")
    with pytest.raises(UserError, match="checkpointer"):
        plain.resume("t")


def test_a_thread_reused_for_a_new_query_starts_afresh() -> None:
    plain, fake = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9})
    cascade = Cascade(plain.config, completer=fake, checkpointer=InMemorySaver())
    first = cascade.run("What is 2+2?", thread_id="same")
    second = cascade.run("What is 3+3?", thread_id="same")
    assert len(first.attempts) == len(second.attempts) == 1
    assert [s.node for s in second.steps] == ["generate", "verify"]
    again = cascade.resume("same")  # finished: nothing is called, the stored result comes back
    assert again.answer == second.answer and len(fake.calls) == 2


def test_astream_reports_a_pause_for_approval() -> None:
    cascade, _ = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"))

    async def collect() -> list[Any]:
        return [item async for item in cascade.astream("What is 2+2?")]

    items = asyncio.run(collect())
    assert [type(i).__name__ for i in items] == ["Attempt", "Attempt", "CascadeResult"]
    assert items[-1].awaiting_approval.tier == "large"


def test_the_in_memory_saver_forgets_finished_runs() -> None:
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, tiers=with_approval("large"))
    result = cascade.run("What is 2+2?")
    assert result.accepted and result.thread_id is None
    saver = cascade._durable.checkpointer  # type: ignore[union-attr]
    assert not list(saver.list(None))


def test_fake_reply_script_keeps_working_with_a_checkpointer() -> None:
    plain, _ = make_cascade(ESCALATES_TWICE)
    fake = FakeCompleter({"fake/small": FakeReply("4", logprobs=[-0.1]), "fake/medium": "5", "fake/large": "6"})
    result = Cascade(plain.config, completer=fake, checkpointer=InMemorySaver()).run("q", thread_id="x")
    assert result.answer == "6" and result.thread_id == "x"


def test_a_conversation_with_a_json_schema_survives_the_checkpoint(tmp_path: Path) -> None:
    script = {"fake/small": '{"a": 1}', "fake/medium": '{"a": "two"}', "fake/large": '{"a": 3}'}
    plain, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"), script=script)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    chat = [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "Give a."}]

    async def go() -> tuple[CascadeResult, CascadeResult]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "runs.db")) as saver:
            cascade = Cascade(plain.config, completer=fake, checkpointer=saver)
            paused = await cascade.arun(chat, thread_id="j", response_format=response_format)
            return paused, await cascade.aresume("j", approve=True)

    paused, result = asyncio.run(go())
    assert paused.attempts[1].invalid is not None  # "two" breaks the schema: read back from the checkpoint
    assert result.answer == '{"a": 3}' and result.accepted
    assert result.messages == chat
    assert fake.calls[-1].response_format == response_format


def test_every_state_type_round_trips_through_the_checkpoint_serializer() -> None:
    member = MemberOutput("fake/a", 1.0, Completion("4", "fake/a", 3, 1, token_logprobs=(-0.1,)), "4")
    calls = (ToolCall("add", '{"a": 1}', "call_1"),)
    ensemble = EnsembleCompletion("4", "fake/a + fake/b", 6, 2, 1e-6, tool_calls=calls, members=(member,))
    draft = Draft(0, 16, 0.01, ensemble)
    chat = Cascade.conversation(
        make_cascade(ESCALATES_TWICE)[0], "What is 2+2?", response_format={"type": "json_object"}
    )
    serde = with_state_types(InMemorySaver()).serde
    for value in (
        draft,
        chat,
        RoutePlan(1, {"large": 8}, "long"),
        Attempt(tier="t", model="m", answer="4", decision="accept"),
    ):
        back = serde.loads_typed(serde.dumps_typed(value))
        assert type(back) is type(value)
    back_draft = serde.loads_typed(serde.dumps_typed(draft))
    assert back_draft.completion.members[0].completion.text == "4"
    assert back_draft.completion.tool_calls[0].arguments == '{"a": 1}'
    back_chat = serde.loads_typed(serde.dumps_typed(chat))
    assert back_chat.query == "What is 2+2?" and back_chat.output.wants_json


def test_cascade_run_without_a_terminal_refuses_an_approval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = (ROOT / "configs" / "fake.yaml").read_text(encoding="utf-8")
    marked = tmp_path / "approve.yaml"
    marked.write_text(config.replace("  - name: large\n", "  - name: large\n    approve: true\n"), encoding="utf-8")
    assert main(["run", "--config", str(marked), "--json", "What is the capital of France?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] == "Lyon" and not data["accepted"] and data["awaiting_approval"] is None
    assert data["stop_reason"] == "tier 'large' not approved: no terminal to ask"


def test_a_pre_router_that_starts_at_an_approval_tier_asks_first() -> None:
    rules = {"type": "features", "rules": [{"when": {"min_words": 1}, "start_tier": "large"}]}
    cascade, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"), pre_router=rules)
    paused = cascade.run("What is 2+2?")
    assert paused.awaiting_approval is not None and paused.awaiting_approval.tier == "large" and not fake.calls
    result = cascade.resume(paused.thread_id or "", approve=True)
    assert [c.model for c in fake.calls] == ["fake/large"] and result.accepted
    assert [s.node for s in result.steps] == ["route", "approve", "generate", "verify"]


def test_serve_refuses_an_approval_it_cannot_ask_for_and_answers_with_the_best_so_far() -> None:
    from tests.unit.serve.test_app import CONFIG, ask, client, demo

    tiers = [dict(t, approve=t["name"] == "large") for t in CONFIG["tiers"]]
    cascade, fake = demo(tiers=tiers)

    async def go() -> Any:
        async with client(cascade) as http:
            return await http.post("/v1/chat/completions", json=ask())

    response = asyncio.run(go())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Lyon"
    assert [c.model for c in fake.calls] == ["fake/small"]
    assert not list(cascade._durable.checkpointer.list(None))  # type: ignore[union-attr]  # nothing left waiting


def test_a_paused_run_resumes_on_the_experiment_variant_that_ran_it(tmp_path: Path) -> None:
    from tests.unit.config.test_experiments import QUESTION, experiment_config

    config = load_config(experiment_config(tmp_path))
    strict = config.experiment.variants["strict"]  # type: ignore[union-attr]
    strict.overrides["tiers"]["large"] = {"approve": True}
    cascade = Cascade(config)
    paused = next(r for i in range(100) if (r := cascade.run(QUESTION, user=f"u{i}")).variant == "strict")
    assert paused.awaiting_approval is not None and paused.awaiting_approval.tier == "large"
    with pytest.raises(UserError):
        cascade.resume(paused.thread_id or "", approve=True)  # the first variant did not run it
    result = cascade.resume(paused.thread_id or "", approve=True, variant=paused.variant)
    assert result.answer == "Paris" and result.accepted and result.variant == "strict"
