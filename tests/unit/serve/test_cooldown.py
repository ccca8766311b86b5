"""CooldownCompleter: a model that keeps failing is skipped for a while, per model, with a probe after."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, PermanentProviderError, TransientProviderError
from cascade.serve import CooldownCompleter, CoolingDownError
from cascade.types import CompletionRequest
from tests.unit.serve.test_app import CONFIG


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(model: str = "fake/flaky") -> CompletionRequest:
    return CompletionRequest(model=model, messages=[{"role": "user", "content": "q"}], max_tokens=8)


def flaky(clock: Clock, *replies: FakeReply, **kw: Any) -> tuple[CooldownCompleter, FakeCompleter]:
    fake = FakeCompleter({"fake/flaky": list(replies), "fake/ok": "fine"})
    return CooldownCompleter(fake, clock=clock, **kw), fake


async def fail(completer: CooldownCompleter, model: str = "fake/flaky") -> type[Exception]:
    with pytest.raises(TransientProviderError) as caught:
        await completer.complete(request(model))
    return type(caught.value)


async def test_cools_down_after_n_failures_in_a_row_without_calling_the_provider() -> None:
    clock = Clock()
    cooldown, fake = flaky(clock, FakeReply(error="server"), failures=3, cooldown_s=30)
    assert [await fail(cooldown) for _ in range(3)] == [TransientProviderError] * 3
    assert cooldown.cooling("fake/flaky") and len(fake.calls) == 3
    with pytest.raises(CoolingDownError, match=r"cooling down for 30.0 s more after 3 failures") as caught:
        await cooldown.complete(request())
    assert caught.value.status == 503 and caught.value.model == "fake/flaky"
    assert len(fake.calls) == 3 and cooldown.skipped == 1
    assert (await cooldown.complete(request("fake/ok"))).text == "fine"  # other models are unaffected


async def test_after_the_cooldown_one_probe_decides() -> None:
    clock = Clock()
    cooldown, fake = flaky(clock, FakeReply(error="timeout", times=4), FakeReply("back"), failures=3, cooldown_s=30)
    for _ in range(3):
        await fail(cooldown)
    clock.now += 30.5
    await fail(cooldown)  # the probe fails: cooling again at once
    assert cooldown.cooling("fake/flaky") and len(fake.calls) == 4
    clock.now += 31
    assert (await cooldown.complete(request())).text == "back"  # probe succeeds: record cleared
    assert not cooldown.cooling("fake/flaky")


async def test_failures_must_be_in_a_row_and_within_the_window() -> None:
    clock = Clock()
    replies = [FakeReply(error="rate_limit", times=2), FakeReply("ok", times=1), FakeReply(error="rate_limit")]
    cooldown, _ = flaky(clock, *replies, failures=3, window_s=10)
    await fail(cooldown)
    await fail(cooldown)
    await cooldown.complete(request())  # a success resets the count
    await fail(cooldown)
    clock.now += 11
    await fail(cooldown)
    clock.now += 11
    await fail(cooldown)  # three in a row, but never three within 10 s
    assert not cooldown.cooling("fake/flaky")
    await fail(cooldown)
    await fail(cooldown)
    assert cooldown.cooling("fake/flaky")


async def test_permanent_errors_do_not_cool_a_model_down() -> None:
    clock = Clock()
    cooldown, fake = flaky(clock, FakeReply(error="bad_request"), failures=2)
    for _ in range(4):
        with pytest.raises(PermanentProviderError):
            await cooldown.complete(request())
    assert not cooldown.cooling("fake/flaky") and len(fake.calls) == 4


async def test_a_cancelled_call_counts_as_a_failure() -> None:
    clock = Clock()
    cooldown, _ = flaky(clock, FakeReply("slow", delay_s=5), failures=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await cooldown.complete(request())
    assert cooldown.cooling("fake/flaky")


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CooldownCompleter(FakeCompleter({}), failures=0)


async def test_in_a_cascade_a_cooling_tier_falls_through_without_provider_calls() -> None:
    config = CascadeConfig.from_dict({**CONFIG, "retry": {"attempts": 1}})
    fake = FakeCompleter({"fake/small": FakeReply(error="server"), "fake/large": FakeReply("Paris", logprobs=[-0.01])})
    clock = Clock()
    cascade = Cascade(config, completer=CooldownCompleter(fake, failures=2, cooldown_s=60, clock=clock))
    results = [await cascade.arun("capital of France?") for _ in range(5)]
    assert all(r.answer == "Paris" and r.final_tier == "large" for r in results)
    assert [c.model for c in fake.calls].count("fake/small") == 2  # then skipped for 60 s
    assert "cooling down" in (results[-1].attempts[0].error or "")
    assert sum(r.total_tokens for r in results) == sum(r.attempts[-1].total_tokens for r in results)
