"""Structured output and tools: checked requests, validated answers, escalation on invalid ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, UserError
from cascade.errors import ToolsUnsupportedError
from cascade.io.structured import OutputSpec, find_json
from cascade.types import Completion, ToolCall

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def cascade_of(small: Any, large: Any, **config: Any) -> tuple[Cascade, FakeCompleter]:
    fake = FakeCompleter({"fake/small": small, "fake/large": large})
    tiers = [
        {"name": "small", "model": "fake/small", "logprobs": True, "stop": ["\n"]},
        {"name": "large", "model": "fake/large", "logprobs": True},
    ]
    spec = {"tiers": tiers, "router": {"type": "threshold", "threshold": 0.5}, **config}
    return Cascade(CascadeConfig.from_dict(spec), completer=fake), fake


def sure(text: str = "", **kw: Any) -> FakeReply:
    return FakeReply(text, logprobs=[-0.01], **kw)


def test_find_json_takes_bare_fenced_or_embedded_json() -> None:
    assert find_json(' {"a": 1} ') == {"a": 1}
    assert find_json('Here:\n```json\n{"a": [1, 2]}\n```\nDone.') == {"a": [1, 2]}
    assert find_json('The answer is {"a": "}"} as asked') == {"a": "}"}
    with pytest.raises(ValueError, match="not valid JSON: 'Paris'"):
        find_json("Paris")


def test_an_answer_breaking_the_schema_escalates_and_the_valid_one_is_returned_as_json() -> None:
    cascade, fake = cascade_of(sure('{"city": "Lyon", "population": "many"}'), sure('```json\n{"city": "Paris"}\n```'))
    result = cascade.run("Capital of France?", response_format=JSON_SCHEMA)
    small = result.attempts[0]
    assert small.decision == "escalate" and small.answer is None and small.confidence == 0.0
    assert small.invalid is not None and "population" in small.invalid and "integer" in small.invalid
    assert "invalid json_schema output" in small.reason
    assert result.answer == '{"city": "Paris"}' and result.accepted and result.error is None
    assert json.loads(result.answer) == {"city": "Paris"}
    assert fake.calls[0].response_format == JSON_SCHEMA and fake.calls[0].stop == ()  # stops would cut JSON
    assert "Reply with a single JSON value" in fake.calls[0].messages[0]["content"]


def test_no_valid_json_from_any_tier_is_an_error_not_an_answer() -> None:
    cascade, _ = cascade_of(sure("Lyon"), sure("[1, 2]"))
    result = cascade.run("Capital of France?", response_format={"type": "json_object"})
    assert result.answer is None and result.error == "no tier produced valid json_object output"
    assert [a.invalid for a in result.attempts] == ["not valid JSON: 'Lyon'", "not a JSON object: '[1, 2]'"]
    assert [a.decision for a in result.attempts] == ["escalate", "stop"]


def test_a_valid_answer_still_goes_through_the_verifier() -> None:
    cascade, _ = cascade_of(FakeReply('{"city": "Lyon"}', logprobs=[-2.0]), sure('{"city": "Paris"}'))
    result = cascade.run("Capital?", response_format={"type": "json_object"})
    assert [a.decision for a in result.attempts] == ["escalate", "accept"]
    assert result.attempts[0].answer == '{"city": "Lyon"}' and result.attempts[0].invalid is None


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {"response_format": "json"},
            r"response_format must be an object such as \{'type': 'json_object'\}, got 'json'",
        ),
        ({"response_format": {"type": "json_schema"}}, "needs 'json_schema'"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}}, "invalid JSON schema"),
        ({"tools": [{"type": "retrieval"}]}, "only function tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "function.name"),
        ({"tools": [WEATHER, WEATHER]}, "unique"),
        ({"tool_choice": "required"}, "tool_choice needs tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ],
)
def test_malformed_output_requests_are_user_errors(kwargs: dict[str, Any], problem: str) -> None:
    cascade, fake = cascade_of(sure("x"), sure("y"))
    with pytest.raises(UserError, match=problem):
        cascade.run("q", **kwargs)
    assert not fake.calls


def call(name: str = "get_weather", arguments: Any = None) -> dict[str, Any]:
    return {"name": name, "arguments": {"city": "Paris"} if arguments is None else arguments}


@pytest.mark.parametrize(
    ("small", "why"),
    [
        (sure("It is sunny."), "tool_choice 'required' but the model answered in text"),
        (sure(tool_calls=[call("get_time")]), "unknown tool 'get_time'"),
        (sure(tool_calls=[call(arguments='{"city": ')]), "invalid call of 'get_weather'"),
        (sure(tool_calls=[call(arguments={"town": "Paris"})]), "'city' is a required property"),
    ],
)
def test_a_malformed_tool_call_escalates(small: FakeReply, why: str) -> None:
    cascade, fake = cascade_of(small, sure(tool_calls=[call()]))
    result = cascade.run("Weather in Paris?", tools=[WEATHER], tool_choice="required")
    assert result.attempts[0].invalid is not None and why in result.attempts[0].invalid
    assert result.tool_calls == [
        {"id": "call_fake_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert result.answer == '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    assert fake.calls[0].tools == (WEATHER,) and fake.calls[0].tool_choice == "required"


def test_auto_tool_choice_accepts_a_text_answer_and_none_sends_no_tools() -> None:
    cascade, fake = cascade_of(sure("Paris"), sure("?"))
    assert cascade.run("Capital?", tools=[WEATHER]).answer == "Paris"
    assert fake.calls[-1].tool_choice == "auto"
    result = cascade.run("Capital?", tools=[WEATHER], tool_choice="none")
    assert result.answer == "Paris" and fake.calls[-1].tools == () and fake.calls[-1].tool_choice is None


def test_the_follow_up_turn_with_the_tool_result_is_answered() -> None:
    cascade, fake = cascade_of(
        [sure(tool_calls=[call()], match="weather"), FakeReply("maybe", logprobs=[-3.0])],
        [sure("18 °C in Paris", match="18")],
    )
    first = cascade.run("What's the weather in Paris?", tools=[WEATHER])
    assert first.final_tier == "small" and first.tool_calls is not None
    follow_up = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": first.tool_calls[0]["id"], "content": '{"temp_c": 18}'},
    ]
    result = cascade.run(follow_up, tools=[WEATHER])
    assert result.answer == "18 °C in Paris" and result.final_tier == "large" and result.tool_calls is None
    assert result.query == "What's the weather in Paris?"
    assert [m["role"] for m in fake.calls[-1].messages] == ["user", "assistant", "tool"]


def test_a_named_tool_choice_must_be_that_tool() -> None:
    other = {"type": "function", "function": {"name": "get_time"}}
    choice = {"type": "function", "function": {"name": "get_weather"}}
    cascade, _ = cascade_of(sure(tool_calls=[call("get_time", {})]), sure(tool_calls=[call()]))
    result = cascade.run("Weather?", tools=[WEATHER, other], tool_choice=choice)
    assert "tool_choice asks for 'get_weather'" in (result.attempts[0].invalid or "")
    assert result.final_tier == "large"


class NoTools(FakeCompleter):
    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None:
        return f"{model!r} does not take {param}" if model == "fake/small" else None


def test_tools_on_a_provider_that_cannot_take_them_are_refused_before_any_call() -> None:
    fake = NoTools({"fake/small": "x", "fake/large": "y"})
    tiers = [{"name": "small", "model": "fake/small"}, {"name": "large", "model": "fake/large"}]
    cascade = Cascade(CascadeConfig.from_dict({"tiers": tiers}), completer=fake)
    with pytest.raises(ToolsUnsupportedError, match="tier 'small': 'fake/small' does not take tools"):
        cascade.run("Weather?", tools=[WEATHER])
    assert cascade.run("Weather?", tools=[WEATHER], tool_choice="none").error is None
    assert not [c for c in fake.calls if c.tools]


def test_output_spec_reads_tool_calls_and_json_directly() -> None:
    spec = OutputSpec.of(tools=[WEATHER])
    reading = spec.read(
        Completion("", "m", 1, 1, tool_calls=(ToolCall("get_weather", ' {"city":"Rome"} ', "id7"),)), str
    )
    assert reading.tool_calls == [
        {"id": "id7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
    ]
    assert OutputSpec.of({"type": "text"}).structured is False


def test_schema_verifier_in_yaml_vetoes_answers_that_are_not_the_apps_json() -> None:
    verifier = {"type": "ensemble", "mode": "all", "members": [{"type": "schema", "schema": CITY}, {"type": "logprob"}]}
    cascade, _ = cascade_of(sure('Sure! {"town": "Lyon"}'), sure('Here it is: {"city": "Paris"}'), verifier=verifier)
    result = cascade.run("Capital of France as JSON?")
    assert [a.decision for a in result.attempts] == ["escalate", "accept"]
    assert "'city' is a required property" in result.attempts[0].reason
    assert result.answer == '{"city": "Paris"}'


def test_schema_verifier_rejects_an_invalid_schema_in_yaml() -> None:
    from cascade.errors import ConfigError

    with pytest.raises((ConfigError, UserError), match="invalid JSON schema"):
        cascade_of(sure("x"), sure("y"), verifier={"type": "schema", "schema": {"type": "nonsense"}})


def test_the_store_keeps_the_conversation_and_the_tool_calls(tmp_path: Any) -> None:
    from cascade.store import open_store

    cascade, _ = cascade_of(sure(tool_calls=[call()]), sure("?"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
    result = cascade.run(messages, tools=[WEATHER])
    store = open_store(str(tmp_path / "runs.sqlite"))
    record = store.get_run(store.record_run(result, config_name="t"))
    store.close()
    assert record is not None and record.query == "Weather in Paris?"
    assert record.result().messages == messages and record.result().tool_calls == result.tool_calls
