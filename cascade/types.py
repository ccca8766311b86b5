"""Runtime records passed between the completer, verifiers, routers and the trace.

Small frozen dataclasses on the hot path (one per call); pydantic models for what users
get back, so results serialise to JSON without glue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, Any]
"""An OpenAI-style chat message: `role`, `content`, and for tool use `tool_calls` / `tool_call_id`."""
DecisionAction = Literal["accept", "escalate", "stop", "failed"]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One model call as the cascade asks for it; the completer maps it onto a provider."""

    model: str
    messages: list[Message]
    max_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    timeout_s: float | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    input_price: float | None = None
    output_price: float | None = None
    stop_pattern: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    on_text: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    """Called with each piece of text as the model writes it (live streaming); None: no streaming."""


@dataclass(frozen=True, slots=True)
class TierStart:
    """A tier's turn begins (`Cascade.astream(..., tokens=True)`); `live`: its text streams as written."""

    tier: str
    index: int
    model: str
    live: bool


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text for a stream: a live tier's text as it is written, or (`live=False`) the answer of a
    tier that was not live, whole, once the cascade has accepted it."""

    tier: str
    text: str
    live: bool


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call a model asked for; `arguments` is the JSON text exactly as the model wrote it."""

    name: str
    arguments: str
    id: str = ""

    def openai(self, index: int = 0) -> dict[str, Any]:
        """OpenAI's `tool_calls` item; a call without an id gets a stable one from its position."""
        call_id = self.id or f"call_{index}"
        return {"id": call_id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class Completion:
    """What one model call produced, with its usage, cost and (optional) token logprobs."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = 0.0
    latency_s: float = 0.0
    token_logprobs: tuple[float, ...] | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class MemberOutput:
    """One ensemble member's call: its completion and extracted answer, or the error it failed with."""

    model: str
    weight: float
    completion: Completion | None
    answer: str | None
    error: str | None = None
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class EnsembleCompletion(Completion):
    """An ensemble tier's generation: the voted member's text, logprobs and model, with tokens and cost
    summed over every member, the wall-clock latency of the concurrent calls, and each member's output."""

    members: tuple[MemberOutput, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and money spent by a step that is not a generation (e.g. a judge call)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.cost_usd - other.cost_usd,
        )

    @classmethod
    def of(cls, completions: list[Completion]) -> Usage:
        return cls(
            sum(c.prompt_tokens for c in completions),
            sum(c.completion_tokens for c in completions),
            sum(c.cost_usd for c in completions),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's judgement: confidence in [0, 1], why, and what judging cost.

    `answer` overrides the tier's answer (e.g. the majority vote of several samples).
    """

    confidence: float
    reason: str
    answer: str | None = None
    usage: Usage = Usage()
    samples_used: int | None = None
    samples_saved: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if math.isnan(self.confidence) or not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """A router's verdict on one attempt."""

    action: Literal["accept", "escalate"]
    reason: str
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A pre-router's choice: where to start and how many tokens each tier may use."""

    start_tier: int = 0
    max_tokens: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    features: dict[str, Any] = field(default_factory=dict)


class MemberResult(BaseModel):
    """One ensemble member's part in an attempt: its answer (None: it abstained), usage and error."""

    model_config = ConfigDict(extra="forbid")

    model: str
    weight: float = 1.0
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Attempt(BaseModel):
    """One tier's turn at the query: what it answered, what it cost, what was decided.

    A tier that called tools has them in `tool_calls` (OpenAI's shape) and, as its `answer`, their
    canonical JSON text, so verifiers compare calls like any answer. `invalid` says why an output
    broke the requested format (JSON schema, tool schema); such an attempt has no answer and escalates.
    On an ensemble tier `model` is the members' models joined by ' + ', `members` lists each
    member's call, and tokens and cost are the sums over them.
    """

    model_config = ConfigDict(extra="forbid")

    tier: str
    model: str
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    model_latency_s: float = 0.0
    confidence: float | None = None
    threshold: float | None = None
    decision: DecisionAction
    reason: str = ""
    samples: int = 0
    samples_saved: int = 0
    verifier_details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    invalid: str | None = None
    members: list[MemberResult] = Field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def answering_attempt(attempts: list[Attempt]) -> Attempt | None:
    """Whose answer a run returns: the accepted attempt's, else the strongest tier's that answered."""
    accepted = next((a for a in attempts if a.decision == "accept"), None)
    return accepted or next((a for a in reversed(attempts) if a.answer is not None), None)


NodeName = Literal["route", "generate", "verify", "approve"]


class NodeStep(BaseModel):
    """One workflow node's run: what it spent and how long it took (`note` says what it decided).

    A tier's attempt is its `generate` step (the tier's call) plus its `verify` step (extra
    samples and judge calls), so their tokens and cost add up to the attempt's.
    """

    model_config = ConfigDict(extra="forbid")

    node: NodeName
    tier: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    note: str = ""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ApprovalRequest(BaseModel):
    """What a person is asked before a tier marked `approve: true` is called.

    `max_cost_usd` is the most the call can cost at its models' prices (the prompt estimate plus
    its token cap); None when the tier has no prices in the config.
    """

    model_config = ConfigDict(extra="forbid")

    tier: str
    model: str
    query: str
    max_tokens: int
    max_cost_usd: float | None = None
    spent_tokens: int = 0
    spent_cost_usd: float = 0.0
    best_answer: str | None = None


class CascadeResult(BaseModel):
    """A query's outcome: the answer, whether a tier accepted it, and every attempt.

    `query` is the last user turn; `messages` the whole conversation when the caller sent one;
    `tool_calls` the calls the answering tier made (the `answer` is then their JSON text).
    """

    model_config = ConfigDict(extra="forbid")

    query: str
    answer: str | None
    accepted: bool
    final_tier: str | None
    attempts: list[Attempt]
    route_reason: str = ""
    stop_reason: str = ""
    run_id: str = ""
    error: str | None = None
    tag: str | None = None
    messages: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    steps: list[NodeStep] = Field(default_factory=list)
    thread_id: str | None = None
    awaiting_approval: ApprovalRequest | None = None
    experiment: str | None = None  # the experiment and variant that answered (config `experiment:`)
    variant: str | None = None

    @property
    def total_tokens(self) -> int:
        return sum(a.total_tokens for a in self.attempts)

    @property
    def total_cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    @property
    def latency_s(self) -> float:
        return sum(a.latency_s for a in self.attempts)

    def raise_for_error(self) -> CascadeResult:
        """Raise AllTiersFailedError when no tier answered; return self otherwise."""
        if self.error is not None:
            from cascade.errors import AllTiersFailedError

            raise AllTiersFailedError(f"{self.error}: {self.stop_reason}", attempts=list(self.attempts))
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's `--json` shape: the result plus totals that equal the sums over attempts."""
        data = self.model_dump(mode="json")
        data["total_tokens"] = self.total_tokens
        data["total_cost_usd"] = self.total_cost_usd
        return data
