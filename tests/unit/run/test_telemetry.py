"""OpenTelemetry spans of runs and attempts, captured by the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade import Cascade, FakeReply
from tests.unit.serve.test_app import demo

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """The app's side: an SDK provider (set once per process, as OpenTelemetry allows)."""
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(sdk)


@pytest.fixture(autouse=True)
def fresh_exporter() -> Iterator[None]:
    EXPORTER.clear()
    yield


def finished() -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = list(EXPORTER.get_finished_spans())
    runs = [s for s in spans if s.parent is None]
    assert len(runs) == 1, [s.name for s in spans]
    return runs[0], sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)


def test_one_span_per_run_and_per_attempt_with_genai_attributes() -> None:
    cascade, _ = demo()
    result = cascade.run("What is the capital of France?", tag="geo")
    run, attempts = finished()
    assert run.name == "chat demo" and run.attributes is not None
    assert run.attributes["gen_ai.operation.name"] == "chat" and run.attributes["gen_ai.request.model"] == "demo"
    assert run.attributes["gen_ai.response.model"] == "fake/large" and run.attributes["cascade.final_tier"] == "large"
    assert run.attributes["gen_ai.usage.input_tokens"] == 22 and run.attributes["gen_ai.usage.output_tokens"] == 3
    assert run.attributes["cascade.cost_usd"] == pytest.approx(result.total_cost_usd)
    assert run.attributes["cascade.run_id"] == result.run_id and run.attributes["cascade.tag"] == "geo"
    assert run.attributes["cascade.accepted"] is True

    assert [s.name for s in attempts] == ["chat fake/small", "chat fake/large"]
    context = run.get_span_context()
    assert context is not None and all(s.parent is not None and s.parent.span_id == context.span_id for s in attempts)
    small = attempts[0].attributes
    assert small is not None and small["gen_ai.provider.name"] == "fake" and small["cascade.decision"] == "escalate"
    assert small["gen_ai.usage.input_tokens"] == 10 and small["gen_ai.usage.output_tokens"] == 1
    assert small["cascade.confidence"] == pytest.approx(result.attempts[0].confidence or 0)
    assert small["cascade.threshold"] == pytest.approx(0.6) and small["cascade.cost_usd"] > 0
    (event,) = attempts[0].events
    assert event.name == "gen_ai.evaluation.result" and event.attributes is not None
    assert event.attributes["gen_ai.evaluation.score.label"] == "escalate"
    assert event.attributes["gen_ai.evaluation.score.value"] == pytest.approx(small["cascade.confidence"])
    large = attempts[1].attributes
    assert large is not None and large["cascade.decision"] == "accept"
    assert all(
        (s.start_time or 0) >= (run.start_time or 0) and (s.end_time or 0) <= (run.end_time or 0) for s in attempts
    )


def test_a_failed_run_and_a_failed_attempt_are_error_spans() -> None:
    cascade, _ = demo(small=FakeReply(error="auth"), large=FakeReply(error="bad_request"))
    assert cascade.run("q").error is not None
    run, attempts = finished()
    assert run.status.status_code == trace.StatusCode.ERROR and run.attributes is not None
    assert run.attributes["error.type"] == "no_answer"
    assert all(s.status.status_code == trace.StatusCode.ERROR for s in attempts) and len(attempts) == 2


def test_astream_records_the_same_spans() -> None:
    cascade: Cascade = demo()[0]

    async def drain() -> int:
        return len([item async for item in cascade.astream("What is the capital of France?")])

    assert asyncio.run(drain()) == 3
    run, attempts = finished()
    assert run.name == "chat demo" and len(attempts) == 2


def test_an_ensemble_attempt_has_a_span_per_member() -> None:
    from tests.unit.ensemble_helpers import ensemble_cascade

    script = {"fake/a": "Paris", "fake/b": FakeReply(error="auth"), "fake/c": FakeReply("Paris", prompt_tokens=7)}
    cascade, _ = ensemble_cascade(script)
    result = cascade.run("Capital of France?")
    _, children = finished()
    (attempt,) = [s for s in children if s.name == "chat fake/a + fake/b + fake/c"]
    members = [s for s in children if s.parent is not None and s.parent.span_id == attempt.context.span_id]
    assert attempt.attributes is not None and attempt.attributes["gen_ai.provider.name"] == "cascade.ensemble"
    assert [s.name for s in members] == ["chat fake/a", "chat fake/b", "chat fake/c"]
    c = members[2].attributes
    assert c is not None and c["gen_ai.usage.input_tokens"] == 7 and c["cascade.member.index"] == 2
    assert c["gen_ai.provider.name"] == "fake" and c["cascade.cost_usd"] == result.attempts[0].members[2].cost_usd
    assert members[1].status.status_code == trace.StatusCode.ERROR and "authentication" in (
        members[1].status.description or ""
    )
