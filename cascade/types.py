"""Runtime records passed between the completer, verifiers, routers and the trace.

Small frozen dataclasses on the hot path (one per call); pydantic models for what users
get back, so results serialise to JSON without glue.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from cascade.config.schema import EarlyExitConfig

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
    top_logprobs: int = 0
    early_exit: EarlyExitConfig | None = None


@dataclass(frozen=True, slots=True)
class Allotment:
    """A tier's token budget for one query, and how the model is told about it (`cascade.token_budget`).

    `max_tokens` caps the completion; `sentence` ("Use at most 160 tokens.") is added to the query's
    turn for models that take a budget in the prompt; `extra` holds the provider's reasoning knob
    (`reasoning_effort`, `thinking`), merged into the request; `reason` says why, for the trace.
    """

    max_tokens: int
    sentence: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    policy: str = ""  # the budget policy's `type:` ("" when the tier has none)


@dataclass(frozen=True, slots=True)
class TierStart:
    """A tier's turn begins (`Cascade.astream(..., tokens=True)`); `live`: its text streams as written."""

    tier: str
    index: int
    model: str
    live: bool


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text for a stream: the answer, as a live tier writes it or (`live=False`) whole once accepted;
    or (`reasoning=True`) the text a live tier writes when its answer format reads the answer out of
    it (`final`, `first_line`, ...), which is followed by the answer itself, whole.

    Joined, a run's answer deltas are exactly `result.answer`, as a client that does not stream gets it."""

    tier: str
    text: str
    live: bool
    reasoning: bool = False


def new_call_id() -> str:
    """A fresh tool-call id, random as OpenAI's are (`call_` and 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


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


TopLogprobs = tuple[tuple[str, float], ...]
"""The most likely tokens at one position, best first, as (token, logprob) pairs."""


@dataclass(frozen=True, slots=True)
class Completion:
    """What one model call produced, with its usage, cost and (optional) token logprobs.

    `tokens[i]` is the text of generated token i (joined, they spell `text`) when the provider says.
    `top_logprobs[i]` holds the best alternatives at generated position i (when the request asked
    for `top_logprobs` and the provider gives them): the margin between the first answer token's
    best and second-best alternative is a confidence signal that carries across question types.
    `probes` records the answers probed during a reasoning with `early_exit` (local models).
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = 0.0
    latency_s: float = 0.0
    token_logprobs: tuple[float, ...] | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    top_logprobs: tuple[TopLogprobs, ...] | None = None
    probes: tuple[Probe, ...] = ()
    tokens: tuple[str, ...] | None = None  # the text of each token `token_logprobs` scores, when known

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def exited_early(self) -> bool:
        return self.finish_reason == "early_exit"


@dataclass(frozen=True, slots=True)
class Probe:
    """One answer probe: after `at_token` tokens (prompt and reasoning), what the model answered and how surely.

    `logprobs` are those of the tokens that spell the answer (of every token generated, when the
    probe was cut before its answer was complete). The probe evaluated `prompt_tokens` (its
    suffix) and generated `completion_tokens`; both are counted in the completion's usage.
    """

    at_token: int
    text: str
    logprobs: tuple[float, ...]
    prompt_tokens: int
    completion_tokens: int
    at_char: int = 0  # where in the completion's text the probe was asked (the reasoning before it)
    complete: bool = True  # False: cut before its answer was finished (it never counts)

    @property
    def answer(self) -> str:
        """The probed answer: its text up to the end of the first sentence or line."""
        return probe_answer(self.text)

    @property
    def min_prob(self) -> float:
        """The least likely token of a complete answer; 0 for an unfinished one."""
        return math.exp(min(self.logprobs)) if self.logprobs and self.complete else 0.0


def probe_answer(text: str) -> str:
    """The answer a probe gave: up to its first line break or sentence end, without wrappers."""
    line = text.strip().split("\n", 1)[0]
    return re.split(r"\.(?=\s|$)", line, maxsplit=1)[0].strip().strip("*$`").strip()


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
    """A pre-router's choice: where to start, which tiers not to call, how many tokens each may use.

    `skip` names tiers whose answers do not pay for this kind of query; the cascade goes from one
    called tier to the next called one (the last tier is called whatever `skip` says, so a query is
    never left without an answer).
    """

    start_tier: int = 0
    max_tokens: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    skip: tuple[str, ...] = ()


class EarlyExitTrace(BaseModel):
    """What answer probing did in one reasoning attempt (a tier with `early_exit`).

    `tokens_saved`: tokens of the budget the reasoning did not generate because it stopped early
    (0 when it ran to its end); how much shorter than the full reasoning it really was is only
    known by running that too (`benchmarks/local_default.py` does, on held-apart items).
    """

    model_config = ConfigDict(extra="forbid")

    exited: bool
    probes: int
    probe_tokens: int
    reasoning_tokens: int
    max_tokens: int
    tokens_saved: int
    answer: str | None = None

    @classmethod
    def of(cls, completion: Completion, max_tokens: int) -> EarlyExitTrace:
        probe_tokens = sum(p.prompt_tokens + p.completion_tokens for p in completion.probes)
        reasoning = completion.completion_tokens - sum(p.completion_tokens for p in completion.probes)
        exited = completion.exited_early
        return cls(
            exited=exited,
            probes=len(completion.probes),
            probe_tokens=probe_tokens,
            reasoning_tokens=reasoning,
            max_tokens=max_tokens,
            tokens_saved=max(0, max_tokens - reasoning) if exited else 0,
            answer=completion.probes[-1].answer if exited and completion.probes else None,
        )

    def describe(self) -> str:
        cost = f"{self.probes} answer probe(s), {self.probe_tokens} tokens"
        if not self.exited:
            return f"reasoning ran to its end ({self.reasoning_tokens} tokens; {cost})"
        return (
            f"early exit after {self.reasoning_tokens} reasoning tokens, answer {self.answer!r} converged "
            f"({cost}); {self.tokens_saved} of the {self.max_tokens}-token budget not generated"
        )


class BudgetTrace(BaseModel):
    """The token budget an attempt ran under: what its budget policy chose and why, and whether the
    answer hit the cap (`truncated`: the provider stopped at `max_tokens`)."""

    model_config = ConfigDict(extra="forbid")

    policy: str
    max_tokens: int
    sentence: str | None = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""
    truncated: bool = False

    @classmethod
    def of(cls, allotment: Allotment, max_tokens: int, truncated: bool) -> BudgetTrace:
        """The budget as called: `max_tokens` is the allotment's cap after the run's budget cut it."""
        return cls(
            policy=allotment.policy or "fixed",
            max_tokens=max_tokens,
            sentence=allotment.sentence,
            knobs=dict(allotment.extra),
            reason=allotment.reason,
            truncated=truncated,
        )

    def describe(self) -> str:
        told = [f"prompt {self.sentence!r}"] if self.sentence else []
        told += [f"{key}={value}" for key, value in self.knobs.items()]
        head = f"{self.max_tokens} tokens ({self.policy}{'; ' + ', '.join(told) if told else ''})"
        tail = "; hit the cap (finish_reason length)" if self.truncated else ""
        return f"{head}{': ' + self.reason if self.reason else ''}{tail}"


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
    early_exit: EarlyExitTrace | None = None
    verifier: str | None = None  # the `type:` of the verifier that scored the answer (None: none ran)
    budget: BudgetTrace | None = None  # the token budget chosen for this attempt (tiers with a budget policy)
    finish_reason: str | None = None  # why the model stopped writing the answer ("length": cut at its cap)
    logprobs: list[dict[str, Any]] | None = None  # the answer's tokens in OpenAI's shape, when the caller asked

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
    router: str | None = None  # the `type:` of the router that decided
    audit_rate: float | None = None  # under `audit:`, for an answer served below the last tier: its audit chance
    audited: bool = False  # this answer is also being put to the last tier, in the background (cascade.audit)

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
