"""Workflow checkpoints in a real PostgreSQL (LangGraph's Postgres saver): a crashed run resumes
without paying again for the tiers that answered, and an approval asked by one cascade object is
answered through another, as by a second server process."""

from __future__ import annotations

import asyncio

import pytest

from cascade import Cascade
from cascade.types import CascadeResult
from tests.integration.test_store_postgres import dsn, pg_server  # noqa: F401  (fixtures)
from tests.unit.run.test_checkpoints import ESCALATES_TWICE, crash_once, with_approval
from tests.unit.scripted import make_cascade

pytestmark = pytest.mark.integration
postgres_saver = pytest.importorskip(
    "langgraph.checkpoint.postgres.aio", reason="pip install langgraph-checkpoint-postgres"
)


def test_a_crashed_run_resumes_from_postgres_without_calling_answered_tiers_again(dsn: str) -> None:  # noqa: F811
    script = {"fake/small": "4", "fake/medium": crash_once("5"), "fake/large": "6"}
    plain, fake = make_cascade(ESCALATES_TWICE, script=script)

    async def go() -> CascadeResult:
        async with postgres_saver.AsyncPostgresSaver.from_conn_string(dsn) as saver:
            await saver.setup()
            with pytest.raises(RuntimeError, match="worker killed"):
                await Cascade(plain.config, completer=fake, checkpointer=saver).arun("What is 2+2?", thread_id="pg-1")
        async with postgres_saver.AsyncPostgresSaver.from_conn_string(dsn) as saver:  # a new connection
            return await Cascade(plain.config, completer=fake, checkpointer=saver).aresume("pg-1")

    result = asyncio.run(go())
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium", "fake/medium", "fake/large"]
    assert [(a.tier, a.answer) for a in result.attempts] == [("small", "4"), ("medium", "5"), ("large", "6")]


def test_an_approval_asked_by_one_cascade_is_answered_through_another(dsn: str) -> None:  # noqa: F811
    plain, fake = make_cascade(ESCALATES_TWICE, tiers=with_approval("large"))

    async def go() -> tuple[CascadeResult, CascadeResult]:
        async with postgres_saver.AsyncPostgresSaver.from_conn_string(dsn) as saver:
            await saver.setup()
            paused = await Cascade(plain.config, completer=fake, checkpointer=saver).arun("q", thread_id="pg-2")
        async with postgres_saver.AsyncPostgresSaver.from_conn_string(dsn) as saver:
            other = Cascade(plain.config, completer=fake, checkpointer=saver)
            return paused, await other.aresume("pg-2", approve=False, note="over budget")

    paused, result = asyncio.run(go())
    assert paused.awaiting_approval is not None and paused.awaiting_approval.tier == "large"
    assert "fake/large" not in [c.model for c in fake.calls]
    assert result.stop_reason == "tier 'large' not approved: over budget" and result.answer == "5"
