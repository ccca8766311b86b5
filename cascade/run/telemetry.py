"""OpenTelemetry spans: one per run and one per attempt, with GenAI semantic-convention attributes.

Only the OpenTelemetry API is used here; the app configures the SDK (exporter, sampler), and
without one the API's tracer records nothing and costs next to nothing. Without the
`opentelemetry-api` package at all (`pip install 'cascade-router[otel]'`), there are no spans.

    run span      chat <cascade name>   gen_ai.request.model = the cascade, gen_ai.response.model =
                                        the answering tier's model, token totals, cascade.* outcome
    attempt span  chat <tier model>     one child per tier tried: provider, tokens, cost, and the
                                        verifier's confidence and the router's decision, both as
                                        cascade.* attributes and as a `gen_ai.evaluation.result` event

An attempt's span is recorded when its turn ends, spanning its measured latency.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cascade.types import Attempt, CascadeResult, MemberResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

TRACER_NAME = "cascade"


def _tracer() -> Tracer | None:
    try:
        from opentelemetry import trace
    except ImportError:  # the `otel` extra is not installed: no spans
        return None
    from cascade._version import __version__

    return trace.get_tracer(TRACER_NAME, __version__)


class RunSpan:
    """The span of one run; `attempt()` records each tier's turn as a child span."""

    def __init__(self, span: Span | None) -> None:
        self.span = span if span is not None and span.is_recording() else None

    @property
    def recording(self) -> bool:
        """Whether anything records this run (an OpenTelemetry SDK is configured and sampling it)."""
        return self.span is not None

    def attempt(self, attempt: Attempt, index: int) -> None:
        if self.span is None:
            return
        from opentelemetry import trace

        tracer = _tracer()
        assert tracer is not None  # a recording span means the API is there
        ended = time.time_ns()
        span = tracer.start_span(
            f"chat {attempt.model}",
            context=trace.set_span_in_context(self.span),
            kind=trace.SpanKind.CLIENT,
            start_time=ended - int(attempt.latency_s * 1e9),
            attributes=attempt_attributes(attempt, index),
        )
        span.add_event("gen_ai.evaluation.result", evaluation_attributes(attempt), timestamp=ended)
        for number, member in enumerate(attempt.members):
            self._member(tracer, span, member, number, ended - int(attempt.latency_s * 1e9))
        if attempt.error is not None:
            span.set_status(trace.StatusCode.ERROR, attempt.error[:200])
        span.end(end_time=ended)

    @staticmethod
    def _member(tracer: Tracer, parent: Span, member: MemberResult, number: int, started: int) -> None:
        """An ensemble member's call: a model call of its own, under its tier's attempt."""
        from opentelemetry import trace

        span = tracer.start_span(
            f"chat {member.model}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.CLIENT,
            start_time=started,
            attributes=member_attributes(member, number),
        )
        if member.error is not None:
            span.set_status(trace.StatusCode.ERROR, member.error[:200])
        span.end(end_time=started + int(member.latency_s * 1e9))

    def finish(self, result: CascadeResult) -> None:
        if self.span is None:
            return
        self.span.set_attributes(result_attributes(result))
        if result.error is not None:
            from opentelemetry import trace

            self.span.set_status(trace.StatusCode.ERROR, result.error[:200])


@contextmanager
def run_span(cascade_name: str, output_type: str, tag: str | None, *, current: bool = True) -> Iterator[RunSpan]:
    """The span of a run. `current`: made the active span, so model calls inside it (instrumented
    HTTP clients) nest under it; a generator that yields to its caller must not (its context is
    the caller's), and passes False."""
    tracer = _tracer()
    if tracer is None:
        yield RunSpan(None)
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": cascade_name,
        "gen_ai.output.type": output_type,
    }
    if tag is not None:
        attributes["cascade.tag"] = tag
    if current:
        with tracer.start_as_current_span(f"chat {cascade_name}", attributes=attributes) as span:
            yield RunSpan(span)
        return
    span = tracer.start_span(f"chat {cascade_name}", attributes=attributes)
    try:
        yield RunSpan(span)
    finally:
        span.end()


def member_attributes(member: MemberResult, number: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_of(member.model),
        "gen_ai.request.model": member.model,
        "gen_ai.usage.input_tokens": member.prompt_tokens,
        "gen_ai.usage.output_tokens": member.completion_tokens,
        "cascade.member.index": number,
        "cascade.member.weight": member.weight,
        "cascade.cost_usd": member.cost_usd,
    }
    if member.answer is not None:
        attributes["gen_ai.response.model"] = member.model
    if member.error is not None:
        attributes["error.type"] = "provider_error"
    return attributes


def attempt_attributes(attempt: Attempt, index: int) -> dict[str, Any]:
    """An attempt's span; an ensemble's names no one provider (its members' spans do)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "cascade.ensemble" if attempt.members else provider_of(attempt.model),
        "gen_ai.request.model": attempt.model,
        "gen_ai.usage.input_tokens": attempt.prompt_tokens,
        "gen_ai.usage.output_tokens": attempt.completion_tokens,
        "cascade.tier": attempt.tier,
        "cascade.attempt.index": index,
        "cascade.cost_usd": attempt.cost_usd,
        "cascade.decision": attempt.decision,
        "cascade.reason": attempt.reason[:500],
        "cascade.samples": attempt.samples,
    }
    optional = {"cascade.confidence": attempt.confidence, "cascade.threshold": attempt.threshold}
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if attempt.answer is not None:
        attributes["gen_ai.response.model"] = attempt.model
    if attempt.error is not None:
        attributes["error.type"] = "provider_error"
    elif attempt.invalid is not None:
        attributes["cascade.invalid"] = attempt.invalid[:500]
    return attributes


def evaluation_attributes(attempt: Attempt) -> dict[str, Any]:
    """The verifier's verdict and the router's decision in the GenAI evaluation event's terms."""
    attributes: dict[str, Any] = {
        "gen_ai.evaluation.name": "cascade.confidence",
        "gen_ai.evaluation.score.label": attempt.decision,
        "gen_ai.evaluation.explanation": attempt.reason[:500],
    }
    if attempt.confidence is not None:
        attributes["gen_ai.evaluation.score.value"] = attempt.confidence
    return attributes


def result_attributes(result: CascadeResult) -> dict[str, Any]:
    answered = next((a for a in result.attempts if a.tier == result.final_tier and a.answer is not None), None)
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": sum(a.prompt_tokens for a in result.attempts),
        "gen_ai.usage.output_tokens": sum(a.completion_tokens for a in result.attempts),
        "gen_ai.response.id": result.run_id,
        "cascade.run_id": result.run_id,
        "cascade.accepted": result.accepted,
        "cascade.attempts": len(result.attempts),
        "cascade.cost_usd": result.total_cost_usd,
        "cascade.stop_reason": result.stop_reason,
    }
    if answered is not None:
        attributes["gen_ai.response.model"] = answered.model
        attributes["cascade.final_tier"] = answered.tier
        attributes["gen_ai.response.finish_reasons"] = ["tool_calls" if result.tool_calls else "stop"]
    if result.error is not None:
        attributes["error.type"] = "no_answer"
    return attributes


def provider_of(model: str) -> str:
    """litellm's provider prefix (`openai/gpt-4o` → openai); a bare model name is OpenAI's, as in litellm."""
    return model.split("/", 1)[0] if "/" in model else "openai"
