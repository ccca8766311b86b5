"""A caller's JSON schema cannot make the server fetch URLs or recurse forever, and a model's deeply
nested JSON is an invalid answer (the tier escalates), never a crash after the models were paid."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, UserError
from cascade.io.structured import OutputSpec, find_json
from tests.unit.serve.test_app import ask, client, demo


def json_schema(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a) or pytest.fail("fetched"))
    return fetched


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "http://169.254.169.254/latest/meta-data"}, "only references inside the schema"),
        ({"properties": {"a": {"items": {"$ref": "other.json#/x"}}}}, "only references inside the schema"),
        ({"$ref": "#/$defs/missing"}, "points nowhere in the schema"),
        ({"properties": {"a": {"$id": "http://127.0.0.1:1/x"}}}, "'$id' is only supported at the schema's root"),
        ({"$ref": "#"}, "refers back to itself without descending"),
        ({"anyOf": [{"type": "string"}, {"$ref": "#"}]}, "refers back to itself without descending"),
        ({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}, "refers back to itself"),
    ],
)
def test_unsafe_schemas_are_refused_before_any_call(schema: Any, message: str, no_network: list[Any]) -> None:
    for output in ({"response_format": json_schema(schema)}, {"tools": [tool(schema)]}):
        with pytest.raises(UserError, match=re.escape(message)):
            OutputSpec.of(**output)
    assert no_network == []


def test_schemas_nested_past_the_limit_are_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(UserError, match="nested more than 64 levels"):
        OutputSpec.of(json_schema(schema))


def test_recursive_schemas_that_descend_and_local_refs_still_work(no_network: list[Any]) -> None:
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    spec = OutputSpec.of(json_schema(tree))
    assert spec.check_json('{"children": [{"children": []}]}') == {"children": [{"children": []}]}
    with pytest.raises(ValueError, match="children/0/children/0"):
        spec.check_json('{"children": [{"children": [5]}]}')
    rooted = {
        "$id": "http://127.0.0.1:1/s",
        "properties": {"a": {"$ref": "#/$defs/a"}},
        "$defs": {"a": {"type": "string"}},
    }
    with pytest.raises(ValueError, match="5 is not of type 'string'"):
        OutputSpec.of(json_schema(rooted)).check_json('{"a": 5}')
    named = {"properties": {"$ref": {"type": "string"}}, "enum": [{"$ref": "http://x"}]}  # not references
    OutputSpec.of(json_schema(named))
    assert no_network == []


def test_deeply_nested_model_json_is_invalid_and_the_run_escalates() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        find_json("[" * 100_000 + "]" * 100_000)
    fake = FakeCompleter(
        {"fake/small": FakeReply("[" * 5000 + "]" * 5000, logprobs=[-0.01]), "fake/large": FakeReply('{"a": 1}')}
    )
    tiers = [{"name": "small", "model": "fake/small"}, {"name": "large", "model": "fake/large"}]
    cascade = Cascade(CascadeConfig.from_dict({"tiers": tiers}), completer=fake)
    result = cascade.run("json?", response_format={"type": "json_object"})
    assert result.answer == '{"a": 1}' and "nested too deeply" in (result.attempts[0].invalid or "")
    weather = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    deep_args = {"name": "f", "arguments": '{"a":' + "[" * 3000 + "]" * 3000 + "}"}
    fake = FakeCompleter(
        {
            "fake/small": FakeReply(tool_calls=[deep_args]),
            "fake/large": FakeReply(tool_calls=[{"name": "f", "arguments": {}}]),
        }
    )
    result = Cascade(CascadeConfig.from_dict({"tiers": tiers}), completer=fake).run("call f", tools=[weather])
    assert result.tool_calls and "nested too deeply" in (result.attempts[0].invalid or "")


async def test_serve_answers_400_to_a_schema_that_points_outside_itself(no_network: list[Any]) -> None:
    cascade, fake = demo()
    async with client(cascade) as http:
        remote = await http.post(
            "/v1/chat/completions", json=ask(response_format=json_schema({"$ref": "http://127.0.0.1:1/"}))
        )
        endless = await http.post("/v1/chat/completions", json=ask(tools=[tool({"$ref": "#"})]))
    for response in (remote, endless):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert not fake.calls and no_network == []


HOSTILE = "^(a+)+$"  # backtracking time doubles with each 'a' before a final '!'


@pytest.fixture
def no_backtracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's `re` refuses the hostile pattern: it must never be asked to match it."""
    real = re.search

    def search(pattern: Any, string: Any, flags: int = 0) -> Any:
        assert pattern != HOSTILE, "a caller's pattern reached the backtracking engine"
        return real(pattern, string, flags)

    monkeypatch.setattr(re, "search", search)


def test_patterns_are_matched_in_linear_time(no_backtracking: None) -> None:
    """Issue 22.4: `^(a+)+$` against 25 a's and a '!' held the event loop 2.15 s (doubling per 'a')."""
    spec = OutputSpec.of(response_format=json_schema({"type": "string", "pattern": HOSTILE}))
    hostile = '"' + "a" * 10_000 + '!"'
    assert "does not match" in (spec.read_text(hostile, str).invalid or "")
    assert spec.read_text('"aaa"', str).answer == '"aaa"'
    keyed = {"type": "object", "patternProperties": {HOSTILE: {"type": "integer"}}, "additionalProperties": False}
    spec = OutputSpec.of(response_format=json_schema(keyed))
    assert "not allowed" in (spec.read_text('{"' + "a" * 10_000 + '!": 1}', str).invalid or "")
    assert "is not of type 'integer'" in (spec.read_text('{"aa": "x"}', str).invalid or "")
    assert spec.read_text('{"aa": 1}', str).answer == '{"aa": 1}'
    names = {"type": "object", "propertyNames": {"pattern": HOSTILE}}
    assert OutputSpec.of(response_format=json_schema(names)).read_text('{"a!": 1}', str).invalid


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": r"(a)\1"}, "cannot be matched in linear time: invalid escape sequence"),
        ({"patternProperties": {"(?=a)": {}}}, "cannot be matched in linear time: invalid perl operator"),
        ({"patternProperties": {"a": {}}, "unevaluatedProperties": False}, "cannot be combined"),
    ],
)
def test_patterns_a_linear_engine_cannot_run_are_refused_up_front(schema: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        OutputSpec.of(response_format=json_schema(schema))
