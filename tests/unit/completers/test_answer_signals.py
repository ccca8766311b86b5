"""Top alternatives, answer-complete stops and answer probes: read from providers, cached, configured."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import litellm
import pytest

from cascade import ConfigError, FakeCompleter
from cascade.completers.litellm_completer import LiteLLMCompleter, _read
from cascade.config.schema import AnswerConfig, CascadeConfig, EarlyExitConfig
from cascade.eval.live.cache import CachingCompleter, request_key
from cascade.io.answers import completion_pattern
from cascade.local.decoding import Generation
from cascade.local.params import EARLY_EXIT, STOP_PATTERN
from cascade.local.provider import fill_response, params_from
from cascade.types import Completion, CompletionRequest, Probe, ToolCall


def _request(**kw: Any) -> CompletionRequest:
    base: dict[str, Any] = {
        "model": "local/smollm2-135m",
        "messages": [{"role": "user", "content": "q"}],
        "max_tokens": 8,
    }
    return CompletionRequest(**(base | kw))


def test_first_line_is_complete_at_a_leading_yes_no_or_option_label() -> None:
    pattern = completion_pattern(AnswerConfig(format="first_line", stop_when_complete=True))
    assert pattern is not None

    def cut(text: str) -> str | None:
        match = re.search(pattern, text, re.IGNORECASE)
        return text[: match.end()] if match else None

    assert cut("No, a kilowatt hour is") == "No"
    assert cut("C) rocks in the ground") == "C" and cut("(B) cells") == "(B)"
    assert cut("Paris\n") == "Paris\n"
    assert cut("No one knows") is None and cut("A dog") is None and cut("Positive") is None


def test_final_is_complete_after_the_sentence_that_gives_the_answer() -> None:
    pattern = completion_pattern(AnswerConfig(format="final", stop_when_complete=True))
    assert pattern is not None
    text = "3.5 each. The answer is 3.5.\nIn short"
    match = re.search(pattern, text, re.IGNORECASE)
    assert match and text[: match.end()] == "3.5 each. The answer is 3.5."
    assert re.search(pattern, "The answer is 3.5", re.IGNORECASE) is None


def test_local_provider_response_carries_top_alternatives_and_probes() -> None:
    from cascade.local.params import TokenLogprob

    probe = Probe(12, " 10.", (-0.05,), 3, 4)
    tokens = [TokenLogprob("No", -0.7, list(b"No"), [("No", -0.7, list(b"No")), ("Yes", -1.2, list(b"Yes"))])]
    generation = Generation("No", 40, 2, "stop", tokens, (probe,), "answer_complete")
    read = _read(fill_response(litellm.ModelResponse(), generation, "m"))
    assert read.text == "No" and read.logprobs == (-0.7,)
    assert read.top == ((("No", -0.7), ("Yes", -1.2)),)
    assert read.finish == "answer_complete" and read.probes == (probe,)


def test_local_requests_carry_the_stop_pattern_and_the_exit_rule() -> None:
    rule = EarlyExitConfig(every=16, min_prob=0.8)
    kwargs = LiteLLMCompleter()._kwargs(_request(stop_pattern="x", early_exit=rule, logprobs=True, top_logprobs=5))
    assert kwargs[STOP_PATTERN] == "x" and kwargs[EARLY_EXIT]["min_prob"] == 0.8 and kwargs["top_logprobs"] == 5
    params = params_from(kwargs)
    assert params.stop_pattern == "x" and params.early_exit == rule and params.top_logprobs == 5
    remote = LiteLLMCompleter()._kwargs(_request(model="openai/gpt-4o-mini", stop_pattern="x", logprobs=True))
    assert STOP_PATTERN not in remote and EARLY_EXIT not in remote and remote["top_logprobs"] == 1


def test_a_bad_exit_rule_is_a_bad_request_not_a_crash() -> None:
    from cascade.local.provider import LocalRequestError

    with pytest.raises(LocalRequestError, match="cascade_early_exit"):
        params_from({EARLY_EXIT: {"every": 0}})


def test_cache_round_trips_top_alternatives_and_probes(tmp_path: Path) -> None:
    stored = Completion(
        "No",
        "local/m",
        40,
        2,
        token_logprobs=(-0.7,),
        top_logprobs=((("No", -0.7), ("Yes", -1.2)),),
        probes=(Probe(12, " 10.", (-0.05,), 3, 4, 30),),
        tool_calls=(ToolCall("lookup", '{"q": "x"}', "call_0"),),
    )

    class Once:
        calls = 0

        async def complete(self, request: CompletionRequest) -> Completion:
            self.calls += 1
            return stored

    inner = Once()
    cache = CachingCompleter(inner, tmp_path / "c.sqlite")
    request = _request(top_logprobs=5, logprobs=True)
    asyncio.run(cache.complete(request))
    again = asyncio.run(cache.complete(request))
    assert inner.calls == 1 and again == stored


def test_cache_keys_of_plain_requests_do_not_change() -> None:
    plain = _request()
    assert request_key(plain) == request_key(_request(top_logprobs=0, early_exit=None))
    assert request_key(plain) != request_key(_request(top_logprobs=5))
    assert request_key(plain) != request_key(_request(early_exit=EarlyExitConfig()))


def test_early_exit_needs_a_local_model() -> None:
    tier = {"name": "t", "model": "openai/gpt-4o-mini", "early_exit": {"every": 16}}
    with pytest.raises(ConfigError, match="local"):
        CascadeConfig.from_dict({"tiers": [tier]})


def test_tier_asks_for_top_alternatives_only_with_logprobs() -> None:
    from cascade import Cascade

    tiers = [{"name": "a", "model": "m", "logprobs": True, "top_logprobs": 5}, {"name": "b", "model": "n"}]
    config = CascadeConfig.from_dict({"tiers": [*tiers[:1], {**tiers[1], "top_logprobs": 5}]})
    fake = FakeCompleter({"m": "?", "n": "4"})
    asyncio.run(Cascade(config, completer=fake).arun("2+2?"))
    assert [c.top_logprobs for c in fake.calls] == [5, 0]


def test_attempt_reports_the_early_exit_and_the_trace_shows_it() -> None:
    from cascade.run.trace import render_text
    from cascade.types import Attempt, CascadeResult, EarlyExitTrace

    probes = (Probe(40, " 12.", (-2.0,), 3, 1), Probe(90, " 10.", (-0.01,), 3, 3))
    completion = Completion("... The answer is 10.", "local/m", 70, 94, finish_reason="early_exit", probes=probes)
    report = EarlyExitTrace.of(completion, 384)
    assert (report.exited, report.reasoning_tokens, report.probe_tokens, report.tokens_saved) == (True, 90, 10, 294)
    assert report.answer == "10"
    attempt = Attempt(tier="think", model="local/m", answer="10", decision="accept", early_exit=report)
    text = render_text(CascadeResult(query="q", answer="10", accepted=True, final_tier="think", attempts=[attempt]))
    assert "early exit after 90 reasoning tokens" in text and "294 of the 384-token budget" in text
    ran = EarlyExitTrace.of(Completion("x", "local/m", 70, 100, finish_reason="stop", probes=probes[:1]), 384)
    assert not ran.exited and ran.tokens_saved == 0 and "ran to its end (99 tokens" in ran.describe()
