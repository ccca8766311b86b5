"""The OpenAI chat-completions wire format, as far as `cascade serve` speaks it.

A request carries a conversation (system, user, assistant and tool messages); the cascade answers
its last user turn in the context of the rest, each tier wrapping it in its own prompt (see
`cascade.io.conversation` for how the two compose). `response_format` (JSON object or JSON schema),
`tools` and `tool_choice` are honoured and every answer is checked against them; so are the legacy
`functions` and `function_call` (answered as a `function_call`). `max_tokens` (or
`max_completion_tokens`) cuts every tier's own cap, `stop` adds to every tier's stop sequences, and
`logprobs`/`top_logprobs` return the answer's token logprobs (a 400 if a tier's provider has none).
`temperature` is accepted and checked but the tiers' configured temperatures apply.

Responses are standard `chat.completion` objects plus a top-level `cascade` field (run id, the
tier that answered, every attempt); clients that do not know it ignore it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512  # OpenAI's request metadata limits
MAX_TOOLS = 128
"""OpenAI's own limit on a request's tools; checking each one's schema takes milliseconds."""
TOOL_CHOICE_SHAPE = "{'type': 'function', 'function': {'name': ...}}"
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None  # legacy: an assistant's call of `functions`


def _null_is_default(data: Any) -> Any:
    """OpenAI's schema lets clients send `null` for an optional field (litellm and langchain-openai
    do): it means the field's default, so nulls are dropped before validation."""
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _null_is_default(data)


class ChatCompletionRequest(BaseModel):
    """What clients send; unknown OpenAI parameters (top_p, seed, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None
    metadata: dict[str, str] | None = None  # OpenAI's request metadata; "tag" labels the query's context
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    stop: str | list[str] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    functions: list[dict[str, Any]] | None = None  # legacy form of `tools`
    function_call: str | dict[str, Any] | None = None  # legacy form of `tool_choice`

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _null_is_default(data)

    @field_validator("metadata")
    @classmethod
    def _openai_metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """OpenAI's limits (16 pairs, keys of 64 characters, values of 512), and a tag with text."""
        if not value:
            return value
        if len(value) > METADATA_PAIRS:
            raise ValueError(f"at most {METADATA_PAIRS} key-value pairs, got {len(value)}")
        for key, text in value.items():
            if len(key) > METADATA_KEY_CHARS or len(text) > METADATA_VALUE_CHARS:
                raise ValueError(
                    f"keys are at most {METADATA_KEY_CHARS} characters and values {METADATA_VALUE_CHARS}; "
                    f"{key[:METADATA_KEY_CHARS]!r} has {len(key)} and {len(text)}"
                )
        if "tag" in value and not value["tag"].strip():
            raise ValueError("'tag' must be a non-empty string")
        return value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _choice_is_a_name_or_an_object(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | dict):
            raise ValueError(f"must be 'none', 'auto', 'required' or {TOOL_CHOICE_SHAPE}, got {value!r:.80}")
        return value

    @property
    def tag(self) -> str | None:
        return (self.metadata or {}).get("tag")

    def conversation(self) -> list[dict[str, Any]]:
        """The messages as plain dicts, for `Cascade.conversation` to check (legacy function calls
        and results as tool calls and tool messages)."""
        return tool_messages([m.model_dump(exclude_none=True) for m in self.messages])

    @property
    def legacy_functions(self) -> bool:
        """Whether the request uses `functions` (so the answer is a `function_call`)."""
        return self.functions is not None

    def output_options(self) -> dict[str, Any]:
        """The request's output contract and limits, as `Cascade.conversation` takes them."""
        tools, choice = self.tools, self.tool_choice
        if self.functions is not None:
            if tools is not None:
                raise ValueError("functions: send either tools or the legacy functions, not both")
            tools = [{"type": "function", "function": f} for f in self.functions]
            choice = _tool_choice_of(self.function_call)
        elif self.function_call is not None:
            raise ValueError("function_call: needs functions")
        return {
            "response_format": self.response_format,
            "tools": tools,
            "tool_choice": choice,
            "max_tokens": self.requested_tokens,
            "stop": self.stop,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
        }

    def prompt_text(self) -> str:
        """Everything the request puts before a model: the messages' text and tool calls, and the
        tools and response format (their schemas go into the prompt too)."""
        parts = [str(m.content or "") + (json.dumps(m.tool_calls) if m.tool_calls else "") for m in self.messages]
        parts += [json.dumps(value) for value in (self.tools, self.response_format) if value]
        return "\n".join(parts)

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _tool_choice_of(function_call: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """Legacy `function_call` ("none", "auto" or {"name": ...}) as a `tool_choice`."""
    if isinstance(function_call, dict):
        return {"type": "function", "function": {"name": function_call.get("name")}}
    return function_call


def tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Legacy function turns as tool turns: an assistant's `function_call` becomes a tool call with
    an id, and the `function` message after it the `tool` message answering that id."""
    converted, pending = [], ""
    for index, message in enumerate(messages):
        call = message.pop("function_call", None)
        if message.get("role") == "assistant" and isinstance(call, dict):
            pending = f"call_legacy_{index}"
            function = {"name": call.get("name"), "arguments": call.get("arguments") or "{}"}
            message = {**message, "tool_calls": [{"id": pending, "type": "function", "function": function}]}
        elif message.get("role") == "function":
            message = {"role": "tool", "tool_call_id": pending, "content": message.get("content")}
        converted.append(message)
    return converted


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class MemberInfo(BaseModel):
    """One ensemble member's part in an attempt."""

    model: str
    answer: str | None
    tokens: int
    cost_usd: float
    error: str | None = None


class AttemptInfo(BaseModel):
    tier: str
    model: str
    tokens: int
    cost_usd: float
    confidence: float | None
    decision: str
    error: str | None = None
    members: list[MemberInfo] | None = None  # ensemble tiers only


class CascadeInfo(BaseModel):
    """The cascade's own account of the run, next to the OpenAI fields."""

    run_id: str
    final_tier: str | None
    accepted: bool
    stop_reason: str
    attempts: list[AttemptInfo]
    tag: str | None = None
    experiment: str | None = None  # the experiment and variant that answered (config `experiment:`)
    variant: str | None = None
    answer: str | None = Field(default=None, exclude_if=lambda answer: answer is None)  # in a 422's body only


class AssistantMessage(BaseModel):
    """`content` is null when the answer is tool calls; `tool_calls` (or the legacy `function_call`)
    is left out when there are none."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = Field(default=None, exclude_if=lambda calls: calls is None)
    function_call: dict[str, Any] | None = Field(default=None, exclude_if=lambda call: call is None)


class ChoiceLogprobs(BaseModel):
    content: list[dict[str, Any]] | None
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    cascade: CascadeInfo


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None  # the text the answer is read from (DeepSeek's, vLLM's, llama.cpp's field)
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    cascade: CascadeInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cascade"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
    cascade: CascadeInfo | None = None

    def to_json(self) -> str:
        """OpenAI's shape: `param` and `code` always present (null when they do not apply)."""
        body = self.model_dump(mode="json", exclude_none=True)
        body["error"] = self.error.model_dump(mode="json")
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
