"""JSON and tools for local models, without loading one: grammars' schemas, prompts, parsing replies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cascade.local.structured import constraint_schema, parse_tool_calls, prepare_messages

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
TIME = {"type": "function", "function": {"name": "get_time"}}
CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}


def test_forced_calls_and_json_formats_become_a_schema_and_free_choice_none() -> None:
    single = constraint_schema(None, [WEATHER], {"type": "function", "function": {"name": "get_weather"}})
    assert single is not None and single["properties"]["name"] == {"const": "get_weather"}
    both = constraint_schema(None, [WEATHER, TIME], "required")
    assert both is not None and [v["properties"]["name"]["const"] for v in both["anyOf"]] == ["get_weather", "get_time"]
    assert both["anyOf"][1]["properties"]["arguments"] == {"type": "object", "properties": {}}
    assert constraint_schema({"type": "json_object"}, [WEATHER], "auto") is None  # the model may call or answer
    assert constraint_schema({"type": "json_object"}, [WEATHER], "none") == {"type": "object"}
    schema = {"type": "array"}
    assert constraint_schema({"type": "json_schema", "json_schema": {"schema": schema}}, [], None) == schema
    assert constraint_schema(None, [], None) is None


def test_a_template_that_knows_tools_gets_argument_objects() -> None:
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": "", "tool_calls": [CALL]}]
    (prepared,) = prepare_messages(messages, [WEATHER], template_knows_tools=True)
    assert prepared["tool_calls"][0]["function"]["arguments"] == {"city": "Rome"}
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == '{"city": "Rome"}'  # the input is untouched


def test_a_template_without_tools_gets_them_as_tagged_text_in_the_system_message() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    system, user, assistant, tool = prepare_messages(messages, [WEATHER], template_knows_tools=False)
    assert system["content"].startswith("Be brief.\n\n# Tools") and '"name": "get_weather"' in system["content"]
    assert user == messages[1]
    assert assistant == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>',
    }
    assert tool == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}
    no_system = prepare_messages([messages[1]], [WEATHER], template_knows_tools=False)
    assert [m["role"] for m in no_system] == ["system", "user"]


@pytest.mark.parametrize("knows_tools", [True, False])
def test_a_reply_to_tool_results_is_told_to_answer_from_them(knows_tools: bool) -> None:
    """Qwen2.5-Coder-1.5B, shown the tools again after a result, echoed their list instead of answering."""
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Rome?"}]
    answered = [*asked, {"role": "assistant", "content": "", "tool_calls": [CALL]}]
    answered.append({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    system = prepare_messages(answered, [WEATHER], template_knows_tools=knows_tools)[0]["content"]
    assert system.startswith("Be brief.\n\n") and "answer from them" in system
    for before_results in (asked, answered[:-1]):
        prepared = prepare_messages(before_results, [WEATHER], template_knows_tools=knows_tools)
        assert "answer from them" not in prepared[0]["content"]
    untold = prepare_messages(answered[1:], [], template_knows_tools=knows_tools)  # no tools offered
    assert untold[0]["role"] == "user"
    told = prepare_messages(answered[1:], [WEATHER], template_knows_tools=True)
    assert told[0] == {"role": "system", "content": told[0]["content"]} and "answer from them" in told[0]["content"]


def test_replies_are_parsed_into_calls_and_broken_ones_kept_for_validation() -> None:
    forced = parse_tool_calls(' {"name": "get_weather", "arguments": {"city": "Oslo"}} ', forced=True)
    assert forced == [("get_weather", json.dumps({"city": "Oslo"}))]
    text = 'Let me check.\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n<tool_call>{"name": "x"'
    assert parse_tool_calls(text, forced=False) == [("get_time", "{}"), ("", '{"name": "x"')]
    assert parse_tool_calls("Paris is sunny.", forced=False) == []
    assert parse_tool_calls("[1]", forced=True) == [("", "[1]")]
