"""Real GGUF models through litellm's `local/` provider: answers, usage, stops, logprobs, async, streams."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litellm
import pytest

from cascade.errors import ModelNotFoundError
from cascade.local.engine import loaded_models
from cascade.local.provider import cascade_error_of

pytestmark = pytest.mark.integration

SYSTEM = {"role": "system", "content": "Answer with only the final answer."}
CAPITAL = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
LIST = [{"role": "user", "content": "Name three colors of the rainbow."}]


def _ask(model: str, messages: list[dict[str, str]], **kwargs: object) -> Any:  # litellm's unions are loose
    options: dict[str, object] = {"max_tokens": 8, "temperature": 0, **kwargs}
    return litellm.completion(model=model, messages=messages, **options)


@pytest.fixture(params=["smollm2", "qwen05"])
def model(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_completion_has_text_and_usage(model: str) -> None:
    response = _ask(model, CAPITAL)
    choice = response.choices[0]
    assert choice.message.content.strip()
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 8
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert choice.finish_reason in {"stop", "length"}
    assert getattr(choice, "logprobs", None) is None  # only when asked


def test_qwen_answers_paris(qwen05: str) -> None:
    assert _ask(qwen05, CAPITAL).choices[0].message.content.strip().rstrip(".") == "Paris"


def test_stop_sequence_cuts_the_answer(model: str) -> None:
    full = _ask(model, LIST, max_tokens=12).choices[0].message.content
    words = full.split()
    assert len(words) >= 3, full
    stop = f" {words[2]}"
    stopped = _ask(model, LIST, max_tokens=12, stop=[stop])
    assert stopped.choices[0].message.content == full[: full.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_logprobs_when_asked(model: str) -> None:
    response = _ask(model, CAPITAL, logprobs=True, top_logprobs=3)
    logprobs = response.choices[0].logprobs
    content = logprobs.content
    assert len(content) == response.usage.completion_tokens
    assert all(token.logprob <= 0.0 for token in content)
    assert logprobs["content"][0]["logprob"] == content[0].logprob  # dict-style access works too
    assert "".join(token.token for token in content).strip() == response.choices[0].message.content.strip()
    first = content[0]
    assert len(first.top_logprobs) == 3 and first.top_logprobs[0].token == first.token  # greedy picks the top-1
    assert [t.logprob for t in first.top_logprobs] == sorted((t.logprob for t in first.top_logprobs), reverse=True)


def test_logprobs_cover_only_the_answer_before_a_stop(model: str) -> None:
    full = _ask(model, LIST, max_tokens=12).choices[0].message.content
    stop = f" {full.split()[2]}"
    response = _ask(model, LIST, max_tokens=12, stop=[stop], logprobs=True)
    content = response.choices[0].logprobs.content
    assert "".join(token.token for token in content) == response.choices[0].message.content
    assert len(content) < response.usage.completion_tokens  # usage still counts the stop token


def test_seed_makes_sampling_repeatable(smollm2: str) -> None:
    answers = {_ask(smollm2, LIST, temperature=0.9, seed=7).choices[0].message.content for _ in range(2)}
    assert len(answers) == 1


def test_gguf_path_model_string(smollm2: str, local_model_path: Callable[[str], Path]) -> None:
    path = local_model_path("smollm2-135m")
    by_path = _ask(f"local/{path}", CAPITAL).choices[0].message.content
    assert by_path == _ask(smollm2, CAPITAL).choices[0].message.content
    assert [key for key in loaded_models() if key[0] == path.resolve()] == [(path.resolve(), 2048)]  # loaded once


def test_unknown_model_is_a_not_found_error(local_provider: object) -> None:
    with pytest.raises(litellm.NotFoundError) as info:
        _ask("local/no-such-model", CAPITAL, num_retries=0)
    assert isinstance(cascade_error_of(info.value), ModelNotFoundError)
    assert "smollm2-135m" in str(info.value)


def test_prompt_longer_than_context_is_a_bad_request(smollm2: str) -> None:
    long_prompt = [{"role": "user", "content": "apple " * 3000}]
    with pytest.raises(litellm.BadRequestError, match="context window"):
        _ask(smollm2, long_prompt, num_retries=0)


def test_async_completion_and_concurrent_calls(smollm2: str) -> None:
    expected = [_ask(smollm2, m).choices[0].message.content for m in (CAPITAL, LIST)]

    async def both() -> list[Any]:
        calls = [litellm.acompletion(model=smollm2, messages=m, max_tokens=8, temperature=0) for m in (CAPITAL, LIST)]
        return list(await asyncio.gather(*calls))

    responses = asyncio.run(both())
    assert [r.choices[0].message.content for r in responses] == expected
    assert all(r.usage.completion_tokens > 0 for r in responses)


def test_async_call_does_not_block_the_event_loop(smollm2: str) -> None:
    async def measure() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await litellm.acompletion(model=smollm2, messages=LIST, max_tokens=16, temperature=0)
        task.cancel()
        return ticks

    assert asyncio.run(measure()) >= 3


def test_stream_yields_the_same_text(smollm2: str) -> None:
    expected = _ask(smollm2, CAPITAL).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in _ask(smollm2, CAPITAL, stream=True) if c.choices]
    assert len([p for p in pieces if p]) >= 2 and "".join(pieces) == expected


def test_async_stream_and_early_stop(smollm2: str) -> None:
    async def first_piece() -> str:
        stream = await litellm.acompletion(model=smollm2, messages=LIST, max_tokens=64, temperature=0, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return str(chunk.choices[0].delta.content)
        return ""

    assert asyncio.run(first_piece())
    started = time.monotonic()
    assert _ask(smollm2, CAPITAL).choices[0].message.content  # the model is not left locked
    assert time.monotonic() - started < 30


def test_abandoned_sync_stream_releases_the_model(smollm2: str) -> None:
    stream = _ask(smollm2, LIST, max_tokens=64, stream=True)
    next(iter(stream))
    done = threading.Event()

    def ask_again() -> None:
        _ask(smollm2, CAPITAL)
        done.set()

    worker = threading.Thread(target=ask_again)
    worker.start()
    worker.join(timeout=60)
    assert done.is_set()
    del stream
