"""Budgets that hold: every model call reserves its worst case before it is made, and settles after.

    with charge_to(MemoryAccount("team-a", max_tokens=50_000)) as tab:   # optional, any number
        result = await cascade.arun(query)                               # + the query's own budget
    tab.spent                                                            # what the runs cost

A run's `Ledger` holds its accounts: the query's budget (`budget:` in the config) and whatever
`charge_to` added (an API key's budget in `cascade serve`, kept in the store and shared by its
workers). Before each call, `MeteredCompleter` asks every account for the call's worst case: its
prompt (a bound that is never too low, `cascade.budget.prompt_bound`) plus its completion cap, in tokens
and in dollars. Each account grants the largest cap it can afford, the call is made with the
smallest grant, and when it returns the reservation is replaced by the provider's usage. A call
no account can afford even one completion token for is not made (`CallOverBudgetError`). So
under any concurrency, runs in one process or workers sharing a store, what is charged stays
within every budget, provided the prompt bound holds (see `cascade.budget.prompt_bound`).

A call that fails is charged nothing (providers do not bill errors); a call cut off while in
flight (a timeout, a client that disconnected) is charged its whole reservation, since the
provider may have generated all of it.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast, runtime_checkable

from cascade.budget.prompt_bound import PromptBounds
from cascade.completers.wrapper import WrapperCompleter, prices_known, prompt_tokens_known
from cascade.errors import CallOverBudgetError
from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest, Usage

NOTHING = Usage()

CallState = Literal["reserved", "done", "failed", "cut_off", "refused"]


@dataclass(frozen=True, slots=True)
class Ask:
    """One call's worst case: `prompt_tokens` (a bound) and up to `max_completion` completion tokens."""

    model: str
    prompt_tokens: int
    max_completion: int
    input_price: float = 0.0
    output_price: float = 0.0

    def usage(self, completion_tokens: int) -> Usage:
        """What the call costs if it uses its whole prompt bound and `completion_tokens`."""
        cost = self.prompt_tokens * self.input_price + completion_tokens * self.output_price
        return Usage(self.prompt_tokens, completion_tokens, cost)

    def cap_within(self, tokens_left: int | None, usd_left: float | None) -> int:
        """The largest completion cap (≤ `max_completion`) whose worst case fits what is left; < 1 if none."""
        cap = self.max_completion
        if tokens_left is not None:
            cap = min(cap, tokens_left - self.prompt_tokens)
        if usd_left is not None:
            usd = usd_left - self.prompt_tokens * self.input_price
            if usd < 0:
                return 0
            cap = affordable_tokens(usd, self.output_price, cap)
        return cap


def affordable_tokens(usd: float, price: float, cap: int) -> int:
    """How many tokens at `price` each `usd` pays for, at most `cap`. Reads 4.999999999 (dollars
    divided in floating point) as the 5 it stands for; a huge budget (1e308 dollars, whose
    quotient overflows to infinity) simply leaves `cap` as it is."""
    if price <= 0 or usd >= cap * price:
        return cap
    return math.floor(usd / price + 1e-9)


@dataclass(frozen=True, slots=True)
class Left:
    """What an account can still spend; None: no limit of that kind."""

    tokens: int | None = None
    usd: float | None = None

    def __and__(self, other: Left) -> Left:
        return Left(_smaller(self.tokens, other.tokens), _smaller(self.usd, other.usd))


UNLIMITED = Left()


def _smaller(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation in one account: the ask and the completion cap it was granted."""

    account: Account
    ask: Ask
    cap: int
    ref: Any = None  # the account's own handle (a row id in the store)

    @property
    def usage(self) -> Usage:
        return self.ask.usage(self.cap)


@runtime_checkable
class Account(Protocol):
    """Somewhere spend is limited and recorded: a query's budget, an API key's, a team's."""

    name: str

    def peek(self) -> Left:
        """What is left as last known, without waiting (for planning; `reserve` decides)."""
        ...

    async def reserve(self, ask: Ask) -> Hold:
        """Hold the ask's worst case with the largest cap that fits; CallOverBudgetError if not even 1."""
        ...

    async def shrink(self, hold: Hold, cap: int) -> Hold:
        """Lower a hold's cap (another account granted less)."""
        ...

    async def settle(self, hold: Hold, spent: Usage) -> None:
        """Replace the hold by what the call really spent."""
        ...


class MemoryAccount:
    """An account in this process's memory: limits, what was spent, what is held."""

    def __init__(
        self, name: str, *, max_tokens: int | None = None, max_cost_usd: float | None = None, spent: Usage = NOTHING
    ):
        self.name = name
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.spent = spent
        self.held = Usage()
        self._lock = threading.Lock()

    def peek(self) -> Left:
        used = self.spent + self.held
        tokens = None if self.max_tokens is None else self.max_tokens - used.prompt_tokens - used.completion_tokens
        usd = None if self.max_cost_usd is None else self.max_cost_usd - used.cost_usd
        return Left(tokens, usd)

    async def reserve(self, ask: Ask) -> Hold:
        with self._lock:
            left = self.peek()
            cap = ask.cap_within(left.tokens, left.usd)
            if cap < 1:
                raise over_budget(self.name, ask, left, self.held)
            self.held += ask.usage(cap)
        return Hold(self, ask, cap)

    async def shrink(self, hold: Hold, cap: int) -> Hold:
        with self._lock:
            self.held = (self.held - hold.usage) + hold.ask.usage(cap)
        return replace(hold, cap=cap)

    async def settle(self, hold: Hold, spent: Usage) -> None:
        with self._lock:
            self.held = self.held - hold.usage
            self.spent += spent

    def __repr__(self) -> str:
        return f"MemoryAccount({self.name!r}, max_tokens={self.max_tokens}, max_cost_usd={self.max_cost_usd})"


def over_budget(name: str, ask: Ask, left: Left, held: Usage = NOTHING) -> CallOverBudgetError:
    """The refusal of `ask`; `held`: what calls in flight hold, which may come back when they settle."""
    why = shortfall(name, left, ask.usage(1), f"{ask.model} not called")
    freed = Left(
        None if left.tokens is None else left.tokens + held.prompt_tokens + held.completion_tokens,
        None if left.usd is None else left.usd + held.cost_usd,
    )
    return CallOverBudgetError(
        why or f"{name} budget: {ask.model} not called",
        model=ask.model,
        account=name,
        may_fit_later=held != NOTHING and ask.cap_within(freed.tokens, freed.usd) >= 1,
    )


def shortfall(name: str, left: Left, need: Usage, what: str) -> str | None:
    """Why `need` does not fit in what `name` has left (tokens first, then dollars), or None if it does."""
    tokens = need.prompt_tokens + need.completion_tokens
    if left.tokens is not None and tokens > left.tokens:
        return f"{name} token budget: {what}: {max(left.tokens, 0)} tokens left, {tokens} or more needed"
    if left.usd is not None and need.cost_usd > left.usd:
        return f"{name} cost budget: {what}: ${max(left.usd, 0.0):.6g} left, ${need.cost_usd:.6g} or more needed"
    return None


@dataclass
class CallRecord:
    """One metered call: its model, what was reserved, and how it ended."""

    model: str
    reserved: Usage
    state: CallState = "reserved"
    spent: Usage = NOTHING
    reason: str = ""


@dataclass
class Tab:
    """The calls charged to `charge_to`'s accounts while its context was open."""

    accounts: tuple[Account, ...]
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def spent(self) -> Usage:
        return sum((c.spent for c in self.calls), Usage())

    @property
    def refusals(self) -> list[CallRecord]:
        return [c for c in self.calls if c.state == "refused"]


_TABS: ContextVar[tuple[Tab, ...]] = ContextVar("cascade_tabs", default=())
_LEDGER: ContextVar[Ledger | None] = ContextVar("cascade_ledger", default=None)


@contextmanager
def charge_to(*accounts: Account) -> Iterator[Tab]:
    """Runs started inside this context also reserve from and charge `accounts`."""
    tab = Tab(tuple(accounts))
    token = _TABS.set((*_TABS.get(), tab))
    try:
        yield tab
    finally:
        _TABS.reset(token)


class Ledger:
    """One run's accounts: every call reserves from all of them and settles in all of them."""

    def __init__(self, accounts: Sequence[Account], tabs: Sequence[Tab] = ()):
        self.accounts = tuple(accounts)
        self.tabs = tuple(tabs)

    def left(self) -> Left:
        result = UNLIMITED
        for account in self.accounts:
            result &= account.peek()
        return result

    async def reserve(self, ask: Ask) -> tuple[list[Hold], CallRecord]:
        """Holds in every account at the smallest cap any grants; a refusal releases the others."""
        holds: list[Hold] = []
        try:
            for account in self.accounts:
                granted = min([ask.max_completion, *(h.cap for h in holds)])
                holds.append(await account.reserve(replace(ask, max_completion=granted)))
        except CallOverBudgetError as exc:
            for hold in holds:
                await hold.account.settle(hold, Usage())
            self._record(CallRecord(ask.model, Usage(), "refused", reason=str(exc)))
            raise
        cap = min((h.cap for h in holds), default=ask.max_completion)
        holds = [h if h.cap == cap else await h.account.shrink(h, cap) for h in holds]
        record = CallRecord(ask.model, ask.usage(cap))
        self._record(record)
        return holds, record

    async def settle(self, holds: Sequence[Hold], record: CallRecord, spent: Usage, state: CallState) -> None:
        record.spent, record.state = spent, state
        for hold in holds:
            await hold.account.settle(hold, spent)

    def _record(self, record: CallRecord) -> None:
        for tab in self.tabs:
            tab.calls.append(record)


def current_ledger() -> Ledger | None:
    return _LEDGER.get()


@contextmanager
def run_ledger(query_account: Account | None) -> Iterator[Ledger | None]:
    """The ledger of one run: its own budget (if any) plus the accounts of every open `charge_to`.
    None (calls pass straight through) when there is neither a budget nor a tab recording calls."""
    tabs = _TABS.get()
    accounts = ([query_account] if query_account is not None else []) + [a for t in tabs for a in t.accounts]
    ledger = Ledger(accounts, tabs) if accounts or tabs else None
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        with suppress(ValueError):  # an async generator closed from another context: nothing to restore there
            _LEDGER.reset(token)


def cut_off_in_flight(exc: BaseException) -> bool:
    """A call that ended this way (cancelled, timed out) may have been generated, and billed, in full:
    it is charged its reservation, not nothing."""
    return isinstance(exc, asyncio.CancelledError | TimeoutError) or getattr(exc, "status", None) == 408


class MeteredCompleter(WrapperCompleter):
    """Wraps the provider-facing completer: reserve, call with the granted cap, settle.

    Without a run ledger (no budget anywhere) calls pass straight through.
    """

    def __init__(self, inner: Completer):
        super().__init__(inner)
        self.bounds = PromptBounds()

    async def complete(self, request: CompletionRequest) -> Completion:
        ledger = current_ledger()
        if ledger is None:
            return await self.inner.complete(request)
        ask = self.ask(request)
        holds, record = await ledger.reserve(ask)
        cap = holds[0].cap if holds else request.max_tokens
        call = request if cap >= request.max_tokens else replace(request, max_tokens=cap)
        try:
            completion = await self.inner.complete(call)
        except BaseException as exc:
            spent, state = (record.reserved, "cut_off") if cut_off_in_flight(exc) else (NOTHING, "failed")
            state = cast(CallState, state)
            await asyncio.shield(ledger.settle(holds, record, spent, state))
            raise
        spent = Usage(completion.prompt_tokens, completion.completion_tokens, completion.cost_usd)
        await ledger.settle(holds, record, spent, "done")
        self.bounds.observe(request, ask.prompt_tokens, completion.prompt_tokens)
        return completion

    def ask(self, request: CompletionRequest) -> Ask:
        """The call's worst case: its prompt bound (the completer's own count if it has one) and prices."""
        bound = prompt_tokens_known(self.inner, request)
        prices = _prices(self.inner, request)
        prompt = bound if bound is not None else self.bounds.bound(request)
        return Ask(request.model, prompt, request.max_tokens, *prices)


def _prices(completer: Completer, request: CompletionRequest) -> tuple[float, float]:
    if request.input_price is not None and request.output_price is not None:
        return request.input_price, request.output_price
    found = prices_known(completer, request)
    return found if found is not None else (request.input_price or 0.0, request.output_price or 0.0)
