"""Live streaming: which tier is tried, the last tier's text as written, accepted answers whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, RetryingCompleter, TransientProviderError
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.config.schema import RetryConfig
from cascade.run.engine import Event
from cascade.types import Attempt, CascadeResult, Completion, CompletionRequest, TextDelta, TierStart
from tests.unit.io.test_structured import JSON_SCHEMA

TIERS = [
    {"name": "small", "model": "fake/small", "logprobs": True},
    {"name": "large", "model": "fake/large", "logprobs": True, "answer": {"format": "text"}},
]


def cascade_of(small: Any, large: Any) -> Cascade:
    fake = FakeCompleter({"fake/small": small, "fake/large": large})
    config = {"tiers": TIERS, "router": {"type": "threshold", "threshold": 0.6}}
    return Cascade(CascadeConfig.from_dict(config), completer=fake)


def events(cascade: Cascade, query: str = "Capital of France?", **kwargs: Any) -> list[Event]:
    async def collect() -> list[Event]:
        return [e async for e in cascade.astream(query, tokens=True, **kwargs)]

    return asyncio.run(collect())


def kinds(items: list[Event]) -> list[str]:
    return [type(e).__name__ for e in items]


def test_the_last_tier_streams_its_text_as_written_after_the_tiers_before_it() -> None:
    items = events(cascade_of(FakeReply("Lyon", logprobs=[-2.0]), FakeReply("It is Paris.", logprobs=[-0.01])))
    assert kinds(items) == [
        "TierStart", "Attempt", "TierStart", "TextDelta", "TextDelta", "TextDelta", "Attempt", "CascadeResult",
    ]  # fmt: skip
    assert items[0] == TierStart("small", 0, "fake/small", live=False)
    assert items[2] == TierStart("large", 1, "fake/large", live=True)
    deltas = [e for e in items if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == ["It", " is", " Paris."] and all(d.live and d.tier == "large" for d in deltas)
    result = items[-1]
    assert isinstance(result, CascadeResult) and result.answer == "It is Paris." == "".join(d.text for d in deltas)


@pytest.mark.parametrize("written", [" Paris ", "\n  It is\n Paris.  \n", "Paris"])
def test_a_text_answer_streams_exactly_as_the_result_reads_it(written: str) -> None:
    """The answer's whitespace at either end is not the answer's: it never reaches the stream."""
    items = events(cascade_of(FakeReply("Lyon", logprobs=[-2.0]), FakeReply(written, logprobs=[-0.01])))
    result = items[-1]
    assert isinstance(result, CascadeResult) and result.answer == written.strip()
    assert "".join(e.text for e in items if isinstance(e, TextDelta)) == result.answer


def test_a_tier_whose_format_reads_the_answer_streams_its_text_as_reasoning_then_the_answer() -> None:
    """The reasoning tier of local.yaml: what it writes is not its answer, the last line is."""
    tiers = [TIERS[0], {**TIERS[1], "answer": {"format": "final"}}]
    fake = FakeCompleter(
        {
            "fake/small": FakeReply("36", logprobs=[-2.0]),
            "fake/large": "3 boxes of 12 is 36, plus 3.\nThe answer is 39.",
        }
    )
    cascade = Cascade(CascadeConfig.from_dict({"tiers": tiers}), completer=fake)
    items = events(cascade, "Tom has 3 boxes with 12 apples each and 3 more. How many?")
    deltas = [e for e in items if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas if d.reasoning) == "3 boxes of 12 is 36, plus 3.\nThe answer is 39."
    assert [d for d in deltas if not d.reasoning] == [TextDelta("large", "39", live=False)]
    result = items[-1]
    assert isinstance(result, CascadeResult) and result.answer == "39"
    assert asyncio.run(cascade.arun("Tom has 3 boxes with 12 apples each and 3 more. How many?")).answer == "39"


def test_an_earlier_tier_is_sent_whole_once_accepted_and_never_while_it_may_escalate() -> None:
    items = events(cascade_of(FakeReply("Paris", logprobs=[-0.01]), "unused"))
    assert kinds(items) == ["TierStart", "Attempt", "TextDelta", "CascadeResult"]
    assert items[2] == TextDelta("small", "Paris", live=False)


def test_json_answers_are_never_live_they_are_checked_whole_first() -> None:
    cascade = cascade_of(FakeReply("Lyon", logprobs=[-2.0]), FakeReply('{"city": "Paris"}', logprobs=[-0.01]))
    items = events(cascade, response_format=JSON_SCHEMA)
    assert [e.live for e in items if isinstance(e, TierStart)] == [False, False]
    assert [e for e in items if isinstance(e, TextDelta)] == [TextDelta("large", '{"city": "Paris"}', live=False)]


def test_without_tokens_astream_yields_attempts_and_the_result_only() -> None:
    cascade = cascade_of(FakeReply("Lyon", logprobs=[-2.0]), FakeReply("Paris", logprobs=[-0.01]))

    async def collect() -> list[Attempt | CascadeResult | Any]:
        return [e async for e in cascade.astream("Capital?")]

    assert kinds(asyncio.run(collect())) == ["Attempt", "Attempt", "CascadeResult"]


class BreaksMidStream:
    """Writes some text, then fails with a transient error: a retry would send that text twice."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        if request.on_text is not None:
            request.on_text("Par")
        raise TransientProviderError("connection reset", model=request.model, status=503)


def test_a_call_that_already_streamed_text_is_not_retried() -> None:
    inner = BreaksMidStream()
    retrying = RetryingCompleter(inner, RetryConfig(attempts=3, initial_wait_s=0), sleep=lambda _: asyncio.sleep(0))
    request = CompletionRequest("m", [{"role": "user", "content": "q"}], 8)
    written: list[str] = []
    with pytest.raises(TransientProviderError):
        asyncio.run(retrying.complete(request))
    assert inner.calls == 3  # no text went out: retried as usual
    inner.calls = 0
    with pytest.raises(TransientProviderError):
        asyncio.run(retrying.complete(CompletionRequest("m", [], 8, on_text=written.append)))
    assert inner.calls == 1 and written == ["Par"]


def test_litellm_streams_text_to_on_text_and_cuts_it_at_the_answer_pattern() -> None:
    written: list[str] = []
    request = CompletionRequest(
        "openai/gpt-4o-mini",
        [{"role": "user", "content": "q"}],
        16,
        extra={"mock_response": "Paris is the capital.\nMore text"},
        stop_pattern=r"\S[^\n]*\n",
        on_text=written.append,
    )
    completion = asyncio.run(LiteLLMCompleter().complete(request))
    assert completion.text == "Paris is the capital.\n" and "".join(written) == completion.text
    assert len(written) > 1
