"""JSON and tool calls for the in-process models, the way llama-cpp-python's chat handlers do them.

- `response_format` and a forced tool call (`tool_choice: "required"` or a named tool) become a
  JSON schema, compiled to a llama.cpp grammar: the sampler can only produce text that parses and
  validates, so even a 135M model answers in the requested shape.
- Tools are shown to the model by its own chat template when the template knows tools (Qwen2.5's
  renders them in the system prompt and asks for `<tool_call>{"name", "arguments"}</tool_call>`);
  for a template that does not (SmolLM2's), the same instructions go into the system message,
  and earlier tool calls and results are written as the tagged text the model was shown.
- With `tool_choice: "auto"` the model chooses: `<tool_call>` blocks in its text are its calls.
- A turn that replies to tool results says so in the system message. Rendered exactly as Qwen2.5's
  template asks (`<tool_response>` in a user turn), the tool list shown again made Qwen2.5-Coder-1.5B
  echo it (`<tools>\n{"type": "function", ...`) or call the answered tool again; told to answer from
  the results it did ("The weather in Paris is currently 18°C with a sunny sky."), and still called
  a tool the results did not cover.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_HERMES = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)
_ANSWER_FROM_RESULTS = "When the tool responses answer the question, answer from them; do not call a tool again."


def constraint_schema(
    response_format: dict[str, Any] | None, tools: Sequence[dict[str, Any]], tool_choice: Any
) -> dict[str, Any] | None:
    """The JSON schema the output must follow, or None for free text (tools by choice, plain text)."""
    forced = tool_choice == "required" or isinstance(tool_choice, dict)
    if tools and forced:
        named = tool_choice["function"]["name"] if isinstance(tool_choice, dict) else None
        variants = [_call_schema(t["function"]) for t in tools if named in (None, t["function"]["name"])]
        return variants[0] if len(variants) == 1 else {"anyOf": variants}
    if tools and tool_choice != "none":
        return None
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        return dict(response_format["json_schema"]["schema"])  # type: ignore[index]
    return None


def _call_schema(function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
    }


def prepare_messages(
    messages: list[dict[str, Any]], tools: Sequence[dict[str, Any]], template_knows_tools: bool
) -> list[dict[str, Any]]:
    """Messages as the template can render them: tool calls and results in the model's own format,
    and in the system message what the template cannot say (the tools, that results are in)."""
    additions = []
    if template_knows_tools:
        prepared = [_with_argument_objects(m) for m in messages]
    else:
        prepared = [_as_tagged_text(m) for m in messages]
        if tools:
            additions.append(_HERMES.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools)))
    if tools and messages and messages[-1]["role"] == "tool":
        additions.append(_ANSWER_FROM_RESULTS)
    return _with_system_text(prepared, "\n\n".join(additions))


def _with_system_text(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if not text:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _with_argument_objects(message: dict[str, Any]) -> dict[str, Any]:
    """HF templates `tojson` the arguments: give them the object, not OpenAI's JSON text."""
    if not message.get("tool_calls"):
        return message
    calls = []
    for call in message["tool_calls"]:
        function = call.get("function", {})
        calls.append({**call, "function": {**function, "arguments": _arguments_object(function.get("arguments"))}})
    return {**message, "tool_calls": calls}


def _as_tagged_text(message: dict[str, Any]) -> dict[str, Any]:
    if message["role"] == "tool":
        return {"role": "user", "content": f"<tool_response>\n{message.get('content') or ''}\n</tool_response>"}
    if not message.get("tool_calls"):
        return message
    blocks = [
        "<tool_call>\n"
        + json.dumps({"name": c["function"]["name"], "arguments": _arguments_object(c["function"].get("arguments"))})
        + "\n</tool_call>"
        for c in message["tool_calls"]
    ]
    text = "\n".join([message["content"], *blocks] if message.get("content") else blocks)
    return {"role": "assistant", "content": text}


def _arguments_object(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments if arguments is not None else {}


def parse_tool_calls(text: str, *, forced: bool) -> list[tuple[str, str]]:
    """(name, arguments JSON) of each call in a reply: the whole text when a grammar forced a call,
    else every `<tool_call>` block. A block that does not parse is kept with its raw text, so the
    cascade's validation names what is wrong instead of the text passing as an answer."""
    blocks = [text.strip()] if forced else _TOOL_CALL.findall(text)
    calls = []
    for block in blocks:
        try:
            value = json.loads(block)
        except ValueError:
            calls.append(("", block))
            continue
        if not isinstance(value, dict):
            calls.append(("", block))
            continue
        arguments = value.get("arguments", {})
        calls.append((str(value.get("name", "")), arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return calls
