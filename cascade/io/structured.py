"""What form of answer the caller asked for (text, JSON, tool calls), and whether an output has it.

The request fields are OpenAI's: `response_format` (`{"type": "json_object"}` or `{"type":
"json_schema", "json_schema": {"name", "schema"}}`), `tools` (function tools with a JSON-schema
`parameters`) and `tool_choice` (`"none"`, `"auto"`, `"required"` or one named function); and the
request's limits on the answer: `max_tokens` (each tier's cap is cut to it), `stop` (sequences added
to every tier's own) and `logprobs`/`top_logprobs` (the answer's token logprobs, asked of every tier).
`OutputSpec.of` checks them once, up front (a bad schema is the caller's mistake, a UserError);
`OutputSpec.read` turns each completion into the tier's answer or says why the completion breaks
the contract. A broken output is never an answer: the tier escalates, and when no tier gives a
valid one the run ends with an error instead of returning invalid JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from cascade.errors import UserError
from cascade.io.schema_refs import check_patterns, check_refs, schema_depth, schema_validator
from cascade.types import Completion, ToolCall, new_call_id

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_MAX_SCHEMA_DEPTH = 64  # nested objects and arrays; OpenAI's strict schemas allow far fewer
MAX_STOP_SEQUENCES = 4  # OpenAI's limit
_CALL_KEYS = {"name", "arguments", "parameters"}  # a tool call written as JSON text
MAX_TOP_LOGPROBS = 20  # OpenAI's limit


@dataclass(frozen=True, slots=True)
class Reading:
    """A completion read against the spec: the answer, the tool calls made, or why it is invalid."""

    answer: str | None
    tool_calls: list[dict[str, Any]] | None = None
    invalid: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """The caller's output contract; `PLAIN` (the default) asks for text and checks nothing.

    Its fields are the request's own (plain data, so a workflow checkpoint can store it); the
    schema validators are built from them on first use.
    """

    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None  # the caller's cap on the answer's tokens, below each tier's own
    stop: tuple[str, ...] = ()  # the caller's stop sequences, on top of each tier's own
    logprobs: int | None = None  # None: not asked; n: the answer's token logprobs with n alternatives each

    @classmethod
    def of(
        cls,
        response_format: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        *,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
    ) -> OutputSpec:
        """A checked spec; raises UserError naming what is wrong with the request's fields."""
        fmt = _check_response_format(response_format)
        checked_tools = tuple(_check_tool(t, i) for i, t in enumerate(tools or ()))
        names = [t["function"]["name"] for t in checked_tools]
        if len(set(names)) != len(names):
            raise UserError(f"tools: function names must be unique, got {names}")
        choice = _check_tool_choice(tool_choice, names)
        limit = _check_max_tokens(max_tokens)
        return cls(fmt, checked_tools, choice, limit, _check_stop(stop), _check_logprobs(logprobs, top_logprobs))

    @cached_property
    def _schema(self) -> Draft202012Validator | None:
        schema = (self.response_format or {}).get("json_schema", {}).get("schema")
        return schema_validator(schema) if schema is not None else None

    @cached_property
    def _tool_schemas(self) -> dict[str, Draft202012Validator]:
        return {t["function"]["name"]: schema_validator(t["function"]["parameters"]) for t in self.tools}

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format["type"] in ("json_object", "json_schema")

    @property
    def may_call_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def must_call_tools(self) -> bool:
        return bool(self.tools) and (self.tool_choice == "required" or isinstance(self.tool_choice, dict))

    @property
    def structured(self) -> bool:
        """Whether answers are checked (JSON or tools) rather than free text read by the tier's format."""
        return self.wants_json or self.may_call_tools

    @property
    def kind(self) -> str:
        """`text`, `json_object`, `json_schema` or `tools`: for reasons, traces and spans."""
        if self.may_call_tools:
            return "tools"
        return str(self.response_format["type"]) if self.response_format else "text"

    def instruction(self) -> str | None:
        """What the system prompt adds so that any model, with or without a JSON mode, knows the format."""
        if not self.wants_json:
            return None
        assert self.response_format is not None
        schema = self.response_format.get("json_schema", {}).get("schema")
        if schema is None:
            return "Reply with a single JSON object and nothing else."
        return "Reply with a single JSON value that conforms to this JSON Schema, and nothing else:\n" + json.dumps(
            schema, ensure_ascii=False
        )

    def read(self, completion: Completion, extract: Callable[[str], str | None]) -> Reading:
        """The answer of `completion` under this contract (plain text goes through `extract`)."""
        if completion.tool_calls:
            return self._read_calls(completion.tool_calls)
        return self.read_text(completion.text, extract)

    def read_text(self, text: str, extract: Callable[[str], str | None]) -> Reading:
        """The answer of a text reply: tool calls written as text, JSON when asked for, else what
        the tier's format reads (the whole reply when tools are offered: it is a reply to a person,
        not a short answer for the format to read, and its first line may be a fence)."""
        calls = self._calls_in_text(text) if self.may_call_tools else ()
        if calls:
            return self._read_calls(calls)
        if self.must_call_tools:
            return Reading(None, invalid=f"tool_choice {_choice_name(self.tool_choice)} but the model answered in text")
        if not self.wants_json:
            return Reading(text.strip() or None if self.may_call_tools else extract(text))
        try:
            value = self.check_json(text)
        except ValueError as exc:
            return Reading(None, invalid=str(exc))
        return Reading(json.dumps(value, ensure_ascii=False))

    def check_json(self, text: str) -> Any:
        """The JSON value in `text` if it meets the response format; ValueError saying why not."""
        value = find_json(text)
        if self.response_format and self.response_format["type"] == "json_object" and not isinstance(value, dict):
            raise ValueError(f"not a JSON object: {_snippet(text)}")
        if self._schema is not None:
            schema_problem(self._schema, value, "answer")
        return value

    def _calls_in_text(self, text: str) -> tuple[ToolCall, ...]:
        """Calls a model wrote as text (```json {"name": ..., "arguments": {...}}```, as models do
        without native tool calling): read as calls when each names an offered tool."""
        try:
            value = find_json(text)
        except ValueError:
            return ()
        names = {t["function"]["name"] for t in self.tools}
        calls = []
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or item.get("name") not in names or not set(item) <= _CALL_KEYS:
                return ()
            arguments = item.get("arguments", item.get("parameters", {}))
            calls.append(ToolCall(item["name"], arguments if isinstance(arguments, str) else json.dumps(arguments)))
        return tuple(calls)

    def _read_calls(self, calls: Sequence[ToolCall]) -> Reading:
        if not self.may_call_tools:
            return Reading(None, invalid="the model called tools, but the request allows none")
        wanted = self.tool_choice["function"]["name"] if isinstance(self.tool_choice, dict) else None
        checked = []
        for call in calls:
            validator = self._tool_schemas.get(call.name)
            if validator is None:
                return Reading(None, invalid=f"the model called an unknown tool {call.name!r}")
            if wanted is not None and call.name != wanted:
                return Reading(None, invalid=f"tool_choice asks for {wanted!r}, the model called {call.name!r}")
            try:
                arguments = _loads(call.arguments) if call.arguments.strip() else {}
                if not isinstance(arguments, dict):
                    raise ValueError(f"arguments of {call.name!r} are not a JSON object")
                schema_problem(validator, arguments, f"arguments of {call.name!r}")
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                return Reading(None, invalid=f"invalid call of {call.name!r}: {exc}")
            checked.append((ToolCall(call.name, json.dumps(arguments, ensure_ascii=False), call.id), arguments))
        answer = json.dumps([{"name": c.name, "arguments": a} for c, a in checked], ensure_ascii=False)
        return Reading(answer, [c.openai(i) for i, (c, _) in enumerate(checked)])


PLAIN = OutputSpec()


def unique_call_ids(calls: Sequence[Mapping[str, Any]], taken: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`calls` with ids unique in the response and unused in the conversation (`taken`), so a tool
    result names one call: a missing or repeated id (servers that number calls from 0 on every
    turn) gets a fresh random one, as OpenAI's are."""
    seen, unique = set(taken), []
    for call in calls:
        call_id = str(call.get("id") or "")
        if not call_id or call_id in seen:
            call_id = new_call_id()
        seen.add(call_id)
        unique.append({**call, "id": call_id})
    return unique


def find_json(text: str) -> Any:
    """The JSON value in a model's text: the whole text, a fenced ```json block, or the first {...}/[...]."""
    stripped = text.strip()
    candidates = [stripped, *(m.strip() for m in _FENCE.findall(stripped))]
    for candidate in candidates:
        try:
            return _loads(candidate)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(stripped) if ch in "{["):
        try:
            return decoder.raw_decode(stripped, start)[0]
        except RecursionError:
            raise ValueError(f"JSON nested too deeply: {_snippet(text)}") from None
        except ValueError:
            continue
    raise ValueError(f"not valid JSON: {_snippet(text)}")


def _loads(text: str) -> Any:
    """`json.loads`, with JSON nested past Python's recursion limit a ValueError like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply: {_snippet(text)}") from None


def schema_problem(validator: Draft202012Validator, value: Any, what: str) -> None:
    """Raise ValueError with the most relevant schema violation of `value`, if any."""
    try:
        error = best_match(validator.iter_errors(value))
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to check against the schema") from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise ValueError(f"{what} does not match the schema at {where}: {error.message[:200]}")


def checked_schema(schema: Any, where: str) -> dict[str, Any]:
    """`schema` if it is a valid JSON Schema (draft 2020-12), else UserError naming `where`."""
    if not isinstance(schema, dict):
        raise UserError(f"{where}: a JSON schema must be an object")
    if schema_depth(schema, _MAX_SCHEMA_DEPTH) > _MAX_SCHEMA_DEPTH:
        raise UserError(f"{where}: the JSON schema is nested more than {_MAX_SCHEMA_DEPTH} levels deep")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise UserError(f"{where}: invalid JSON schema: {exc.message[:200]}") from None
    check_refs(schema, where)
    check_patterns(schema, where)
    return schema


def _check_response_format(fmt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping):
        raise UserError(f"response_format must be an object such as {{'type': 'json_object'}}, got {fmt!r:.80}")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise UserError(f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}")
    spec = fmt.get("json_schema")
    if not isinstance(spec, Mapping) or "schema" not in spec:
        raise UserError("response_format json_schema needs 'json_schema': {'name': ..., 'schema': {...}}")
    schema = checked_schema(spec["schema"], "response_format.json_schema.schema")
    return {"type": "json_schema", "json_schema": {**spec, "name": str(spec.get("name") or "answer"), "schema": schema}}


def _check_tool(tool: Mapping[str, Any], index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function" or not isinstance(function, Mapping):
        raise UserError(f"{where}: only function tools are supported: {{'type': 'function', 'function': {{...}}}}")
    name = function.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise UserError(f"{where}.function.name must be 1-64 letters, digits, '_' or '-', got {name!r}")
    parameters = checked_schema(function.get("parameters") or _EMPTY_PARAMETERS, f"{where}.function.parameters")
    return {"type": "function", "function": {**function, "parameters": parameters}}


def _check_tool_choice(choice: str | Mapping[str, Any] | None, names: list[str]) -> str | dict[str, Any] | None:
    if choice is None:
        return "auto" if names else None
    if not names:
        raise UserError("tool_choice needs tools")
    if choice in ("none", "auto", "required"):
        return str(choice)
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or name not in names:
        raise UserError(f"tool_choice must be 'none', 'auto', 'required' or one of the tools {names}, got {choice!r}")
    return {"type": "function", "function": {"name": name}}


def _check_max_tokens(max_tokens: int | None) -> int | None:
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise UserError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    return max_tokens


def _check_stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    sequences = [stop] if isinstance(stop, str) else list(stop or ())
    if len(sequences) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in sequences):
        raise UserError(f"stop must be a non-empty string or a list of up to {MAX_STOP_SEQUENCES}, got {stop!r:.80}")
    return tuple(dict.fromkeys(sequences))


def _check_logprobs(logprobs: bool | None, top_logprobs: int | None) -> int | None:
    """How many alternatives per token the caller wants with the answer's logprobs; None: no logprobs."""
    if top_logprobs is not None:
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int):
            raise UserError(f"top_logprobs must be an integer, got {top_logprobs!r}")
        if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise UserError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {top_logprobs}")
        if not logprobs:
            raise UserError("top_logprobs needs logprobs: true")
    return (top_logprobs or 0) if logprobs else None


def _choice_name(choice: str | dict[str, Any] | None) -> str:
    return repr(choice["function"]["name"]) if isinstance(choice, dict) else repr(choice)


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")
