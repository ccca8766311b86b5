"""The OpenAI chat-completions wire format, as far as `cascade serve` speaks it.

A request carries exactly one message, from the user: the cascade answers single queries and
wraps each in its own per-tier prompt (system prompt, worked examples, template from the YAML).
A client's system prompt or earlier turns would be silently dropped, so they are refused with
a 400 that says so instead. `temperature` is accepted and checked but the tiers' configured
temperatures apply; `max_tokens` is checked against the server's limit, and each tier's own
`max_tokens` bounds its generation.

Responses are standard `chat.completion` objects plus a top-level `cascade` field (run id, the
tier that answered, every attempt); clients that do not know it ignore it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text; content parts other than text cannot be answered by a text cascade."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        kinds = {part.get("type") for part in self.content}
        if kinds - {"text"}:
            raise ValueError(f"only text content parts are supported, got {sorted(map(str, kinds))}")
        return "".join(str(part.get("text", "")) for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


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

    @field_validator("metadata")
    @classmethod
    def _tag_has_text(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and "tag" in value and not value["tag"].strip():
            raise ValueError("'tag' must be a non-empty string")
        return value

    @property
    def tag(self) -> str | None:
        return (self.metadata or {}).get("tag")

    def query(self) -> str:
        """The one user message's text: the cascade's query. Raises ValueError with the reason."""
        if len(self.messages) != 1 or self.messages[0].role != "user":
            roles = ", ".join(m.role for m in self.messages)
            raise ValueError(
                "cascade serves single-turn queries: send exactly one message with role 'user' "
                f"(got: {roles}); each tier applies its own configured prompt"
            )
        text = self.messages[0].text()
        if not text.strip():
            raise ValueError("the user message is empty")
        return text

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AttemptInfo(BaseModel):
    tier: str
    model: str
    tokens: int
    cost_usd: float
    confidence: float | None
    decision: str
    error: str | None = None


class CascadeInfo(BaseModel):
    """The cascade's own account of the run, next to the OpenAI fields."""

    run_id: str
    final_tier: str | None
    accepted: bool
    stop_reason: str
    attempts: list[AttemptInfo]
    tag: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"
    logprobs: None = None


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


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


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
