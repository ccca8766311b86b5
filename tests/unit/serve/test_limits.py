"""Admission queue (429 + Retry-After), body size (413), token limits (400), and a free event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cascade import FakeReply
from cascade.serve.api_errors import ApiError
from cascade.serve.limits import Admission
from tests.unit.serve.test_app import ask, client, demo


async def test_admission_runs_at_most_max_concurrency_and_queues_the_rest() -> None:
    admission = Admission(max_concurrency=2, max_queue=10)
    peak = 0

    async def job() -> None:
        nonlocal peak
        async with admission.slot():
            peak = max(peak, admission.running)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(job() for _ in range(8)))
    assert peak == 2 and admission.running == 0 and admission.waiting == 0


async def test_admission_refuses_beyond_the_queue_with_retry_after() -> None:
    admission = Admission(max_concurrency=1, max_queue=1, retry_after_s=3)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    tasks = [asyncio.create_task(hold()), asyncio.create_task(hold())]
    await asyncio.sleep(0)
    assert (admission.running, admission.waiting) == (1, 1)
    with pytest.raises(ApiError) as caught:
        async with admission.slot():
            pass
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": "3"}
    assert caught.value.code == "queue_full" and "1 requests running and 1 queued" in caught.value.message
    release.set()
    await asyncio.gather(*tasks)
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_cancelled_waiter_leaves_no_count_behind() -> None:
    admission = Admission(max_concurrency=1, max_queue=5)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert admission.waiting == 0
    release.set()
    await holder
    assert admission.running == 0


async def test_server_answers_429_when_the_queue_is_full_and_loses_nothing_else() -> None:
    cascade, fake = demo(small=FakeReply("4", logprobs=[-0.01], delay_s=0.2))
    async with client(cascade, max_concurrency=1, max_queue=1, retry_after_s=2) as http:
        responses = await asyncio.gather(*(http.post("/v1/chat/completions", json=ask()) for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "2" and refused.json()["error"]["type"] == "rate_limit_error"
    assert len(fake.calls) == 2  # exactly the admitted runs reached the model


async def test_many_concurrent_requests_all_get_their_own_answer() -> None:
    cascade, fake = demo(small=lambda request: FakeReply(request.messages[-1]["content"], logprobs=[-0.01]))
    async with client(cascade, max_concurrency=8, max_queue=200) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=ask(f"question {i}")) for i in range(150))
        )
    assert [r.json()["choices"][0]["message"]["content"] for r in responses] == [f"question {i}" for i in range(150)]
    assert len({r.headers["x-cascade-run-id"] for r in responses}) == 150 and len(fake.calls) == 150


async def test_a_slow_run_does_not_hold_up_the_event_loop() -> None:
    """/health is answered while a run is still in flight: the order proves it, not a clock (a clock
    reads slow on a loaded machine)."""
    cascade, _ = demo(small=FakeReply("4", logprobs=[-0.01], delay_s=3.0))
    async with client(cascade) as http:
        slow = asyncio.create_task(http.post("/v1/chat/completions", json=ask()))
        health = await http.get("/health")
        while health.json()["running"] == 0 and not slow.done():  # until the run is admitted
            await asyncio.sleep(0.01)  # in-process requests need not suspend: let the run's task go on
            health = await http.get("/health")
        assert health.status_code == 200 and health.json()["running"] == 1
        assert not slow.done()  # answered before the run it would have waited for
        assert (await slow).status_code == 200


async def test_body_over_the_limit_is_413_with_or_without_content_length() -> None:
    cascade, fake = demo()
    big = b'{"model": "demo", "messages": [{"role": "user", "content": "' + b"x" * 2000 + b'"}]}'

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 100):
            yield big[start : start + 100]

    async with client(cascade, max_body_bytes=1000) as http:
        declared = await http.post("/v1/chat/completions", content=big)
        streamed = await http.post("/v1/chat/completions", content=chunked())
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert "larger than 1000 bytes" in response.json()["error"]["message"]
    assert not fake.calls


async def test_max_tokens_above_the_server_limit_is_400() -> None:
    cascade, fake = demo()
    async with client(cascade, max_tokens=100) as http:
        over = await http.post("/v1/chat/completions", json=ask(max_tokens=101))
        also = await http.post("/v1/chat/completions", json=ask(max_completion_tokens=500))
        fine = await http.post("/v1/chat/completions", json=ask(max_tokens=100))
    assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
    assert "max_tokens 101 exceeds this server's limit of 100" in over.json()["error"]["message"]
    assert also.status_code == 400 and fine.status_code == 200
    assert len(fake.calls) == 2  # only the request within the limit ran


async def test_a_query_longer_than_the_token_limit_is_400() -> None:
    cascade, fake = demo()
    async with client(cascade, max_query_tokens=10) as http:
        response = await http.post("/v1/chat/completions", json=ask("word " * 20))
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert not fake.calls
