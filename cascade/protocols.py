"""Extension points: completers, verifiers, routers and pre-routers.

Plugins implement these protocols and register a factory under a `type:` name
(see `cascade.registry`); the core only ever talks to the protocols.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cascade.types import (
    Allotment,
    Attempt,
    Completion,
    CompletionRequest,
    Decision,
    MemberOutput,
    Message,
    RoutePlan,
    Verdict,
)

if TYPE_CHECKING:
    from cascade.config.schema import TierConfig
    from cascade.io.conversation import Conversation
    from cascade.io.structured import OutputSpec
    from cascade.store.base import Store


@runtime_checkable
class Completer(Protocol):
    """The one I/O boundary: turn a request into a completion, or raise a ProviderError."""

    async def complete(self, request: CompletionRequest) -> Completion: ...


class Stores(Protocol):
    """Where the plugins of one cascade find their store while it is built (`cascade.store.access`):
    the plugin's own `store:` when its config names one, else the cascade's."""

    def address(self, own: str | None = None) -> str | None: ...
    def open(self, own: str | None = None) -> AbstractContextManager[Store]: ...


@runtime_checkable
class ToolAwareCompleter(Protocol):
    """A completer that can tell, before any call, that a model cannot take an OpenAI parameter
    (`tools`, `logprobs`): why not, or None."""

    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None: ...


@runtime_checkable
class PromptCounter(Protocol):
    """A completer that knows, before the call, how many prompt tokens a request will report
    (budgets reserve that instead of an upper bound); None when it cannot tell."""

    def count_prompt_tokens(self, request: CompletionRequest) -> int | None: ...


@runtime_checkable
class PricedCompleter(Protocol):
    """A completer that knows a model's USD per prompt and per completion token (budgets reserve with
    them when a tier sets no `prices`); None for a model it does not price."""

    def unit_prices(self, request: CompletionRequest) -> tuple[float, float] | None: ...


@dataclass(slots=True, kw_only=True)
class VerifyContext:
    """Everything a verifier may look at for one tier's attempt.

    `samples` grows when a verifier calls `draw()` (self-consistency); every drawn sample is
    paid for and counted in the attempt. `judge` sends extra requests (self-verification) whose
    usage the verifier reports in its Verdict. `query` is the last user turn; `conversation` (when
    the caller sent one) has the history and the output contract (JSON schema, tools).

    On an ensemble tier, `members` holds every member's output (completion, answer, weight, or
    error) in the configured order, `samples[0]` is the voted member's text with the members'
    usage summed, and `answer` is the vote's winner. On a one-model tier `members` is empty.
    """

    query: str
    tier: TierConfig
    tier_index: int
    samples: list[Completion]
    answers: list[str | None]
    previous: list[Attempt]
    draw: Callable[[], Awaitable[tuple[Completion, str | None]]]
    judge: Completer
    extract: Callable[[str], str | None]
    conversation: Conversation | None = None
    members: list[MemberOutput] = field(default_factory=list)

    @property
    def history(self) -> tuple[Message, ...]:
        """The turns before the query (empty for a single question)."""
        return self.conversation.history if self.conversation is not None else ()

    @property
    def output(self) -> OutputSpec | None:
        """What form of answer the caller asked for (None: plain text)."""
        return self.conversation.output if self.conversation is not None else None

    @property
    def answer(self) -> str | None:
        """The answer of the first sample, which is the tier's answer unless a verifier votes."""
        return self.answers[0] if self.answers else None


@runtime_checkable
class Verifier(Protocol):
    """Scores an attempt: returns a Verdict with confidence in [0, 1]."""

    async def verify(self, ctx: VerifyContext) -> Verdict: ...


@runtime_checkable
class ChecksTier(Protocol):
    """A verifier that only makes sense on some tiers says why it cannot judge `tier`.

    Checked when the cascade is built, so a verifier on a tier it cannot judge (self-consistency on
    an ensemble, an ensemble vote on one model) is a ConfigError naming the place, not a silent
    surprise at run time.
    """

    def tier_problem(self, tier: TierConfig) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DecideContext:
    """What a router sees when it decides to accept or escalate."""

    query: str
    tier: TierConfig
    tier_index: int
    n_tiers: int
    verdict: Verdict
    answer: str | None
    previous: list[Attempt] = field(default_factory=list)
    tag: str | None = None  # the caller's label for the query's context (see `Cascade.arun`)
    history: tuple[Message, ...] = ()  # the conversation's turns before the query


@runtime_checkable
class Router(Protocol):
    """Accepts an attempt or sends the query up a tier."""

    def decide(self, ctx: DecideContext) -> Decision: ...


@runtime_checkable
class PreRouter(Protocol):
    """Chooses the starting tier and per-tier token budgets before any model is called."""

    def plan(self, query: str, tiers: list[TierConfig]) -> RoutePlan: ...


@dataclass(frozen=True, slots=True)
class BudgetContext:
    """What a budget policy sees before a tier is called: the query, the tier, and the attempts of
    the tiers called before it (their answers, confidences, tokens; empty for the first)."""

    query: str
    tier: TierConfig
    tier_index: int
    previous: tuple[Attempt, ...] = ()


@runtime_checkable
class BudgetPolicy(Protocol):
    """Sets a tier's token budget per query: its `max_tokens`, a budget sentence, the provider's knob."""

    def allot(self, ctx: BudgetContext) -> Allotment: ...
