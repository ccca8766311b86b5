"""The litellm completer offline: mock responses, error classification, key scrubbing, model checks."""

from __future__ import annotations

import asyncio

import pytest

from cascade import PermanentProviderError, TransientProviderError
from cascade.completers.litellm_completer import LiteLLMCompleter, classify, model_problem, scrub
from cascade.types import CompletionRequest


def request(**kw: object) -> CompletionRequest:
    base: dict[str, object] = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "2+2?"}],
        "max_tokens": 8,
    }
    base.update(kw)
    return CompletionRequest(**base)  # type: ignore[arg-type]


def test_mock_response_gives_text_usage_and_litellm_cost() -> None:
    completion = asyncio.run(LiteLLMCompleter().complete(request(extra={"mock_response": "4"})))
    assert completion.text == "4"
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert completion.cost_usd > 0  # gpt-4o-mini is in litellm's price map


def test_tier_prices_override_the_cost_map() -> None:
    req = request(extra={"mock_response": "4"}, input_price=1.0, output_price=10.0)
    completion = asyncio.run(LiteLLMCompleter().complete(req))
    assert completion.cost_usd == pytest.approx(completion.prompt_tokens + 10 * completion.completion_tokens)


def test_unknown_price_counts_zero_not_crash() -> None:
    req = request(model="openai/my-private-finetune", extra={"mock_response": "4"})
    assert asyncio.run(LiteLLMCompleter().complete(req)).cost_usd == 0.0


class _Status(Exception):
    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, TransientProviderError),
        (503, TransientProviderError),
        (408, TransientProviderError),
        (401, PermanentProviderError),
        (400, PermanentProviderError),
        (404, PermanentProviderError),
    ],
)
def test_status_codes_are_classified(status: int, kind: type) -> None:
    error = classify(_Status("boom", status), request())
    assert isinstance(error, kind) and error.status == status


def test_connection_errors_are_transient() -> None:
    class APIConnectionError(Exception):
        pass

    assert isinstance(classify(APIConnectionError("reset"), request()), TransientProviderError)


def test_keys_are_scrubbed_from_errors() -> None:
    req = request(api_key="sk-abcdefghijklmnop1234")
    error = classify(_Status("Incorrect API key provided: sk-abcdefghijklmnop1234", 401), req)
    assert "abcdefghijklmnop" not in str(error)
    assert "sk-***" in scrub("key sk-proj-ZZZZZZZZZZZZZZ leaked")


def test_mock_exception_is_classified_and_scrubbed() -> None:
    req = request(extra={"mock_response": Exception("server said 500 for key sk-zzzzzzzzzzzzzzzz")})
    with pytest.raises((TransientProviderError, PermanentProviderError)) as info:
        asyncio.run(LiteLLMCompleter().complete(req))
    assert "zzzzzzzz" not in str(info.value)


def test_model_problem_flags_unknown_provider() -> None:
    assert model_problem("openai/gpt-4o-mini") is None
    assert model_problem("anthropic/claude-haiku-4-5") is None
    problem = model_problem("nosuchprovider/some-model")
    assert problem is not None and "nosuchprovider/some-model" in problem
    local = model_problem("local/no-such-model")
    assert local is not None and "unknown local model" in local


def test_answer_format_stop_cuts_the_stream_once_the_answer_is_complete() -> None:
    req = request(stop_pattern=r"-?\d+(?=[^\d.,])", extra={"mock_response": "42 because six times seven is 42."})
    completion = asyncio.run(LiteLLMCompleter().complete(req))
    assert completion.text == "42"
    assert completion.finish_reason == "answer_complete"
    assert 0 < completion.completion_tokens < 8


def test_answer_format_stop_with_logprobs_streams_and_cuts_too() -> None:
    req = request(stop_pattern=r"-?\d+(?=[^\d.,])", logprobs=True, extra={"mock_response": "42 because 6*7."})
    assert asyncio.run(LiteLLMCompleter().complete(req)).text == "42"


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def test_response_format_and_tools_reach_litellm_and_tool_calls_come_back() -> None:
    calls = [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    req = request(
        tools=(TOOL,), tool_choice="required", response_format={"type": "json_object"}, extra={"mock_tool_calls": calls}
    )
    completer = LiteLLMCompleter()
    kwargs = completer._kwargs(req)
    assert kwargs["tools"] == [TOOL] and kwargs["tool_choice"] == "required"
    assert kwargs["response_format"] == {"type": "json_object"}
    assert "tools" not in completer._kwargs(request()) and "response_format" not in completer._kwargs(request())
    completion = asyncio.run(completer.complete(req))
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [("c9", "f", '{"x": 1}')]


def test_tools_problem_asks_litellm_which_providers_take_tools() -> None:
    completer = LiteLLMCompleter()
    assert completer.tools_problem("openai/gpt-4o-mini", None) is None
    assert completer.tools_problem("local/qwen2.5-0.5b", None) is None
    assert "does not take tools" in (completer.tools_problem("ollama/llama3", None) or "")
    assert "cannot tell" in (completer.tools_problem("nonsense-provider/x", None) or "")


def test_a_missing_key_is_an_authentication_error_and_never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm reports OpenAI's missing key as a 500 InternalServerError, which was retried; it is
    refused credentials, whatever the label: permanent, named as such, with the variable to set."""
    from cascade.completers.retrying import RetryingCompleter
    from cascade.config.schema import RetryConfig

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    async def no_wait(_: float) -> None:
        raise AssertionError("an authentication error was retried")

    retrying = RetryingCompleter(LiteLLMCompleter(), RetryConfig(attempts=4), sleep=no_wait)
    with pytest.raises(PermanentProviderError) as info:
        asyncio.run(retrying.complete(request()))
    message = str(info.value)
    assert info.value.status == 401 and retrying.retries == 0
    assert "AuthenticationError" in message and "OPENAI_API_KEY" in message
    assert "InternalServerError" not in message


@pytest.mark.parametrize(
    "detail",
    [
        "litellm.InternalServerError: InternalServerError: OpenAIException - Missing credentials. Please pass an "
        "`api_key`, or set the `OPENAI_API_KEY` environment variable.",
        "litellm.AuthenticationError: Missing Anthropic API Key - A call is being made to anthropic but no key is set",
    ],
)
def test_refused_credentials_are_permanent_whatever_the_label(detail: str) -> None:
    error = classify(_Status(detail, 500), request())
    assert isinstance(error, PermanentProviderError) and error.status == 401
    assert str(error).startswith("openai/gpt-4o-mini: AuthenticationError (no retry): ")
    assert "litellm." not in str(error)
