"""Budgets that hold: each call reserves its worst case first, settles after, and is capped or not
made when the budget cannot pay; under concurrency the spend never passes a budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.budget.metering import Ask, MemoryAccount, MeteredCompleter, charge_to, run_ledger
from cascade.budget.prompt_bound import PER_MESSAGE, PER_REQUEST, PromptBounds, prompt_bound
from cascade.errors import CallOverBudgetError, ConfigError
from cascade.types import CompletionRequest, Usage
from tests.unit.scripted import make_cascade

LARGE = {
    "name": "large",
    "model": "fake/large",
    "max_tokens": 256,
    "prices": {"input_per_token": 1e-6, "output_per_token": 4e-6},
}


def request(text: str = "2+2?", max_tokens: int = 100, **extra: Any) -> CompletionRequest:
    return CompletionRequest(model="m", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, **extra)


def test_the_cap_is_the_largest_completion_whose_worst_case_fits() -> None:
    ask = Ask("m", prompt_tokens=10, max_completion=100, input_price=1e-6, output_price=4e-6)
    assert ask.cap_within(None, None) == 100
    assert ask.cap_within(50, None) == 40
    assert ask.cap_within(None, 10e-6 + 20e-6) == 5  # $10e-6 of prompt, then 5 tokens at $4e-6
    assert ask.cap_within(None, 9e-6) == 0  # not even the prompt
    assert ask.usage(5) == Usage(10, 5, pytest.approx(30e-6))


async def test_an_account_grants_what_fits_and_refuses_what_does_not() -> None:
    account = MemoryAccount("key", max_tokens=20)
    hold = await account.reserve(Ask("m", prompt_tokens=5, max_completion=100))
    assert hold.cap == 15 and account.peek().tokens == 0
    with pytest.raises(CallOverBudgetError, match="key token budget: m not called: 0 tokens left, 2 or more needed"):
        await account.reserve(Ask("m", prompt_tokens=1, max_completion=1))
    await account.settle(hold, Usage(5, 3))
    assert account.peek().tokens == 12 and account.held == Usage()
    smaller = await account.shrink(await account.reserve(Ask("m", 2, 100)), 4)
    assert smaller.cap == 4 and account.peek().tokens == 6


@pytest.mark.parametrize(("limit", "cap"), [(0.00001, None), (0.00002, 3)])
def test_the_cost_probe_of_issue_14_stays_within_the_dollars(limit: float, cap: int | None) -> None:
    """max_cost_usd 0.00001 with a large tier spent $0.000508 before: only the prompt was priced.
    Now the output is priced too: the tier is capped to what the dollars buy, or not called."""
    fake = FakeCompleter({"fake/large": FakeReply("Paris", prompt_tokens=8, completion_tokens=200)})
    config = {"tiers": [LARGE], "budget": {"max_cost_usd": limit}}
    result = Cascade(CascadeConfig.from_dict(config), completer=fake).run("What is the capital of France?")
    assert result.total_cost_usd <= limit
    if cap is None:  # $8e-6 of prompt + $4e-6 a token: not one token fits in $1e-5
        assert not fake.calls and "cost budget" in result.stop_reason
    else:  # $2e-5 buys the prompt and 3 tokens
        assert [c.max_tokens for c in fake.calls] == [cap] and result.total_cost_usd == pytest.approx(limit)


def test_a_huge_dollar_budget_is_no_limit_and_an_infinite_one_is_refused_at_load() -> None:
    """Issue 22.11: `max_cost_usd: 1e308` overflowed to infinity in the cap (every run a traceback,
    every served request a 500) and `.inf` passed `validate`."""
    fake = FakeCompleter({"fake/large": FakeReply("Paris", prompt_tokens=8, completion_tokens=2)})
    huge = CascadeConfig.from_dict({"tiers": [LARGE], "budget": {"max_cost_usd": 1e308}})
    assert Cascade(huge, completer=fake).run("Capital of France?").answer == "Paris"
    assert fake.calls[0].max_tokens == 256
    assert Ask("m", 10, 100, 1e-6, 4e-6).cap_within(None, 1e308) == 100
    for infinite in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=r"budget\.max_cost_usd: Input should be a finite number"):
            CascadeConfig.from_dict({"tiers": [LARGE], "budget": {"max_cost_usd": infinite}})


def test_a_tier_that_cannot_be_afforded_is_never_called() -> None:
    small = {"name": "small", "model": "fake/small", "max_tokens": 8, "prices": LARGE["prices"]}
    fake = FakeCompleter(
        {
            "fake/small": FakeReply("Lyon", logprobs=[-3.0], prompt_tokens=8, completion_tokens=1),
            "fake/large": FakeReply("Paris", prompt_tokens=8, completion_tokens=200),
        }
    )
    config = {"tiers": [small, LARGE], "budget": {"max_cost_usd": 0.000015}, "router": {"type": "threshold"}}
    result = Cascade(CascadeConfig.from_dict(config), completer=fake).run("What is the capital of France?")
    assert [c.model for c in fake.calls] == ["fake/small"]  # 12e-6 spent; large needs 8e-6 + 4e-6 at least
    assert "cost budget" in result.stop_reason and result.total_cost_usd <= 0.000015


def test_a_token_budget_is_never_passed() -> None:
    cascade, _fake = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9}, budget={"max_total_tokens": 12})
    result = cascade.run("What is the answer to this question?")
    assert result.total_tokens <= 12 and "token budget" in result.stop_reason


async def test_fifty_concurrent_runs_never_pass_a_shared_budget() -> None:
    """Every run reserves before each call from one 20-token account: the spend stays within it."""
    fake = FakeCompleter({"*": FakeReply("4", logprobs=[-0.01], prompt_tokens=3, completion_tokens=1, delay_s=0.01)})
    config = {"tiers": [{"name": "only", "model": "fake/m", "max_tokens": 8, "logprobs": True}]}
    cascade = Cascade(CascadeConfig.from_dict(config), completer=fake)
    account = MemoryAccount("key", max_tokens=20)

    async def one() -> Any:
        with charge_to(account) as tab:
            result = await cascade.arun("2+2?")
        return result, tab

    outcomes = await asyncio.gather(*(one() for _ in range(50)))
    answered = [r for r, _ in outcomes if r.answer == "4"]
    assert account.spent.prompt_tokens + account.spent.completion_tokens <= 20
    assert sum(r.total_tokens for r, _ in outcomes) == account.spent.prompt_tokens + account.spent.completion_tokens
    assert 1 <= len(answered) <= 5 and account.held == Usage()
    refused = [r for r, _ in outcomes if r.answer is None]
    assert refused and all(r.stop_reason.startswith("key token budget: ") for r in refused)


async def test_a_call_cut_off_in_flight_is_charged_its_reservation() -> None:
    fake = FakeCompleter({"m": FakeReply("x", prompt_tokens=3, completion_tokens=2, delay_s=5)})
    meter = MeteredCompleter(fake)
    account = MemoryAccount("key", max_tokens=100)

    async def call() -> None:
        with charge_to(account), run_ledger(None):
            await meter.complete(request(max_tokens=10))

    task = asyncio.create_task(call())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert account.spent == Usage(3, 10) and account.held == Usage()


async def test_a_failed_call_is_charged_nothing() -> None:
    meter = MeteredCompleter(FakeCompleter({"m": FakeReply(error="server")}))
    account = MemoryAccount("key", max_tokens=100)
    with charge_to(account) as tab, run_ledger(None), pytest.raises(Exception, match="server error"):
        await meter.complete(request())
    assert account.spent == Usage() and account.held == Usage() and tab.calls[0].state == "failed"


async def test_the_smallest_grant_of_all_accounts_caps_the_call() -> None:
    fake = FakeCompleter({"m": FakeReply("x", prompt_tokens=2, completion_tokens=50)})
    meter = MeteredCompleter(fake)
    wide, narrow = MemoryAccount("team", max_tokens=1000), MemoryAccount("key", max_tokens=10)
    with charge_to(wide, narrow), run_ledger(None):
        completion = await meter.complete(request(max_tokens=100))
    assert fake.calls[0].max_tokens == 8 and completion.completion_tokens == 8
    assert wide.spent == narrow.spent == Usage(2, 8) and wide.held == narrow.held == Usage()


def test_the_prompt_bound_counts_bytes_and_the_template() -> None:
    text = "日本語 😀 12345"
    bound = prompt_bound(request(text))
    assert bound == PER_REQUEST + PER_MESSAGE + len(text.encode())
    with_tools = request(text, tools=({"type": "function", "function": {"name": "f"}},))
    assert prompt_bound(with_tools) > bound + 500


@pytest.mark.parametrize(
    "text",
    ["What is the capital of France?", "日本語のテキストです。" * 20, "1234567890" * 50, "😀🎉🚀" * 30, "\u200b" * 100],
)
def test_the_prompt_bound_is_above_real_tokenizers_counts(text: str) -> None:
    """OpenAI's tokenizers (tiktoken, shipped with litellm) count at most the bound."""
    from cascade.completers.litellm_setup import import_litellm

    litellm = import_litellm()
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}]
    bound = prompt_bound(CompletionRequest(model="gpt-4o", messages=messages, max_tokens=1))
    for model in ("gpt-4o", "gpt-3.5-turbo"):
        assert litellm.token_counter(model=model, messages=messages) <= bound


def test_a_model_that_needs_more_than_the_bound_gets_a_larger_allowance(caplog: pytest.LogCaptureFixture) -> None:
    bounds = PromptBounds()
    call = request("hi")
    first = bounds.bound(call)
    bounds.observe(call, first, first + 300)  # e.g. a long hidden system prompt
    assert bounds.bound(call) == first + 300 and "above its bound" in caplog.text


def test_litellm_prices_come_from_its_cost_map() -> None:
    from cascade.completers.litellm_completer import LiteLLMCompleter

    prices = LiteLLMCompleter().unit_prices(request().__class__(model="openai/gpt-4o-mini", messages=[], max_tokens=1))
    assert prices is not None and prices[0] > 0 and prices[1] > prices[0]
    assert LiteLLMCompleter().unit_prices(request()) is None  # "m" is in no price map
