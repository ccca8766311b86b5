"""Fault injection through the server: provider timeouts, 429s, 5xx, malformed replies, auth failures.

Two sources of faults: the fake completer's scripted errors and delays, and a misbehaving
OpenAI-compatible HTTP server on loopback reached through litellm's `openai/` provider. Calls are
counted at the source to show that retries happen, that a failing tier falls through to the next,
and that usage counts only what the providers billed, once. Keys never reach responses, logs or traces.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from rich.console import Console

from cascade import Cascade, CascadeConfig, FakeReply
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.run.trace import Trace
from cascade.serve import CooldownCompleter, ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.types import CompletionRequest
from tests.unit.serve.test_app import CONFIG, ask, client, demo

TIER_KEY = "tier-secret-7f3a9c0e51d2"  # matches no key-like pattern: only exact scrubbing hides it
SERVER_KEY = "serve-secret-2b8e4d1c66a0"


# --- faults from the fake completer -------------------------------------------------------------


async def test_rate_limits_are_retried_and_only_the_answer_is_billed() -> None:
    small = [FakeReply(error="rate_limit", times=1), FakeReply("4", logprobs=[-0.01], prompt_tokens=5)]
    cascade, fake = demo(small=small)
    async with client(cascade) as http:
        body = (await http.post("/v1/chat/completions", json=ask())).json()
    assert body["choices"][0]["message"]["content"] == "4" and body["cascade"]["final_tier"] == "small"
    assert [c.model for c in fake.calls] == ["fake/small", "fake/small"]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


async def test_a_tier_failing_with_5xx_falls_through_after_its_retries() -> None:
    cascade, fake = demo(small=FakeReply(error="server"))
    async with client(cascade) as http:
        body = (await http.post("/v1/chat/completions", json=ask())).json()
    assert body["cascade"]["final_tier"] == "large" and body["choices"][0]["message"]["content"] == "Paris"
    assert [c.model for c in fake.calls] == ["fake/small", "fake/small", "fake/large"]  # retry attempts: 2
    small, large = body["cascade"]["attempts"]
    assert small["decision"] == "failed" and small["tokens"] == 0 and "503" in small["error"]
    assert body["usage"]["total_tokens"] == large["tokens"] == 14


async def test_a_provider_timeout_is_retried_then_falls_through() -> None:
    tiers = [{**CONFIG["tiers"][0], "timeout_s": 0.05}, CONFIG["tiers"][1]]
    cascade, fake = demo(small=FakeReply("late", delay_s=5), tiers=tiers)
    started = time.perf_counter()
    async with client(cascade) as http:
        body = (await http.post("/v1/chat/completions", json=ask())).json()
    assert time.perf_counter() - started < 5  # under the small tier's 5 s delay: the timeout cut it short
    assert (
        body["cascade"]["final_tier"] == "large"
        and "no answer within 0.05 s" in body["cascade"]["attempts"][0]["error"]
    )
    assert [c.model for c in fake.calls] == ["fake/small", "fake/small", "fake/large"]


async def test_an_auth_failure_is_not_retried() -> None:
    cascade, fake = demo(small=FakeReply(error="auth"))
    async with client(cascade) as http:
        body = (await http.post("/v1/chat/completions", json=ask())).json()
    assert [c.model for c in fake.calls] == ["fake/small", "fake/large"] and body["cascade"]["final_tier"] == "large"


async def test_a_tier_that_keeps_failing_is_cooled_down_across_requests() -> None:
    config = CascadeConfig.from_dict({**CONFIG, "retry": {"attempts": 1}})
    _, fake = demo(small=FakeReply(error="server"))
    cascade = Cascade(config, completer=CooldownCompleter(fake, failures=2, cooldown_s=60))
    async with client(cascade) as http:
        bodies = [(await http.post("/v1/chat/completions", json=ask())).json() for _ in range(5)]
    assert [b["cascade"]["final_tier"] for b in bodies] == ["large"] * 5
    assert [c.model for c in fake.calls].count("fake/small") == 2
    assert "cooling down" in bodies[-1]["cascade"]["attempts"][0]["error"]


async def test_concurrent_faulty_runs_are_each_counted_once() -> None:
    small = [FakeReply(error="rate_limit", times=20), FakeReply("4", logprobs=[-0.01], prompt_tokens=5)]
    cascade, fake = demo(small=small, large=FakeReply("Paris", logprobs=[-0.01], prompt_tokens=12))
    async with client(cascade, max_concurrency=10) as http:
        responses = await asyncio.gather(*(http.post("/v1/chat/completions", json=ask()) for _ in range(40)))
        metrics = (await http.get("/metrics")).text
    bodies = [r.json() for r in responses]
    assert [r.status_code for r in responses] == [200] * 40
    by_small = sum(b["cascade"]["final_tier"] == "small" for b in bodies)
    by_large = 40 - by_small
    models = [c.model for c in fake.calls]
    assert models.count("fake/small") == 20 + by_small and models.count("fake/large") == by_large
    billed = sum(b["usage"]["total_tokens"] for b in bodies)
    assert billed == by_small * (5 + 1) + by_large * (12 + 1)  # failed calls cost nothing, successes once
    counted = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("cascade_tokens_total"))
    assert counted == billed


# --- faults from a misbehaving HTTP server, through litellm ----------------------------------------

OK_BODY = {
    "id": "chatcmpl-x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
}


class Misbehaving:
    """An OpenAI-compatible server whose reply to each model follows a script; the last step repeats."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.app = FastAPI()
        self.app.add_api_route("/v1/chat/completions", self.chat, methods=["POST"])

    def script(self, **steps: list[str]) -> None:
        self.scripts = {model: list(actions) for model, actions in steps.items()}
        self.calls.clear()

    async def chat(self, request: Request) -> Response:
        model = (await request.json())["model"]
        self.calls[model] += 1
        steps = self.scripts.get(model, ["ok"])
        action = steps.pop(0) if len(steps) > 1 else steps[0]
        if action == "hang":
            await asyncio.sleep(3)
        if action in ("429", "503"):
            return Response('{"error": {"message": "try later"}}', status_code=int(action))
        if action == "401":
            echoed = request.headers.get("authorization", "")
            return Response(json.dumps({"error": {"message": f"bad credentials: {echoed}"}}), status_code=401)
        if action == "malformed":
            return Response('{"choices": [{"message": ', media_type="application/json")
        return Response(json.dumps(OK_BODY), media_type="application/json")


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[tuple[Misbehaving, str]]:
    server = Misbehaving()
    with serve_in_thread(server.app) as url:
        warm_up(f"{url}/v1")
        yield server, f"{url}/v1"


def warm_up(api_base: str) -> None:
    """litellm's first import and first call take seconds: not inside a tier's 1 s timeout."""
    request = CompletionRequest("openai/warm", [{"role": "user", "content": "hi"}], 8, api_base=api_base, api_key="k")
    asyncio.run(LiteLLMCompleter().complete(request))


def http_cascade(api_base: str) -> Cascade:
    """flaky → steady, both on the misbehaving server; litellm's own retries off so ours are counted."""
    tier = {"api_base": api_base, "api_key_env": "FAULT_TIER_KEY", "max_tokens": 8, "timeout_s": 1.0,
            "extra": {"max_retries": 0}, "prices": {"input_per_token": 1e-6, "output_per_token": 2e-6}}  # fmt: skip
    config = {
        "name": "faulty",
        "tiers": [
            {"name": "flaky", "model": "openai/flaky", **tier},
            {"name": "steady", "model": "openai/steady", **tier},
        ],
        "verifier": {"type": "format", "kind": "nonempty"},
        "router": {"type": "threshold", "threshold": 0.5},
        "retry": {"attempts": 3, "initial_wait_s": 0, "max_wait_s": 0},
    }
    return Cascade(CascadeConfig.from_dict(config))


@pytest.fixture
def faulty(
    misbehaving: tuple[Misbehaving, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Misbehaving, httpx.AsyncClient, Cascade]]:
    server, api_base = misbehaving
    monkeypatch.setenv("FAULT_TIER_KEY", TIER_KEY)
    cascade = http_cascade(api_base)
    app = create_app({"faulty": cascade}, ServeSettings(api_keys=(SERVER_KEY,)))
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://cascade.test",
        headers={"authorization": f"Bearer {SERVER_KEY}"},
    )
    yield server, http, cascade


async def served(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/v1/chat/completions", json={**ask(), "model": "faulty"})


@pytest.mark.parametrize(
    ("steps", "flaky_calls", "tier", "error"),
    [
        (["429", "ok"], 2, "flaky", None),
        (["503", "503", "ok"], 3, "flaky", None),
        (["503"], 3, "steady", "ServiceUnavailableError"),
        (["429"], 3, "steady", "RateLimitError"),
        (["hang"], 3, "steady", "no answer within 1 s"),
        (["malformed"], 3, "steady", "InternalServerError"),
        (["401"], 1, "steady", "AuthenticationError"),
    ],
)
async def test_http_faults_are_retried_or_fall_through_and_billed_once(
    faulty: tuple[Misbehaving, httpx.AsyncClient, Cascade],
    steps: list[str],
    flaky_calls: int,
    tier: str,
    error: str | None,
) -> None:
    server, http, _ = faulty
    server.script(flaky=steps)
    response = await served(http)
    body = response.json()
    assert response.status_code == 200, body
    assert body["cascade"]["final_tier"] == tier and body["choices"][0]["message"]["content"] == "Paris"
    assert server.calls == Counter({"flaky": flaky_calls, **({"steady": 1} if tier == "steady" else {})})
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}  # one paid reply
    first = body["cascade"]["attempts"][0]
    if error:
        assert first["decision"] == "failed" and error in first["error"] and first["tokens"] == 0
    assert float(response.headers["x-cascade-cost-usd"]) == pytest.approx(7e-6 + 4e-6)


async def test_when_every_http_tier_fails_the_client_gets_a_502_with_both_causes(
    faulty: tuple[Misbehaving, httpx.AsyncClient, Cascade],
) -> None:
    server, http, _ = faulty
    server.script(flaky=["503"], steady=["malformed"])
    response = await served(http)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "every tier failed" in message and "flaky:" in message and "steady:" in message
    assert server.calls == Counter({"flaky": 3, "steady": 3})


async def test_keys_never_reach_responses_logs_or_traces(
    faulty: tuple[Misbehaving, httpx.AsyncClient, Cascade], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, http, cascade = faulty
    server.script(flaky=["401"], steady=["401"])
    response = await served(http)
    assert response.status_code == 502 and "bad credentials" in response.text  # the provider's words, scrubbed
    result = await cascade.arun("What is the capital of France?")
    console = Console(file=io.StringIO(), color_system=None, width=200)
    console.print(Trace(result))
    seen = [response.text, str(response.headers), caplog.text, console.file.getvalue(), result.model_dump_json()]
    for text in seen:
        assert TIER_KEY not in text and SERVER_KEY not in text
    metrics = (await http.get("/metrics")).text
    assert TIER_KEY not in metrics and SERVER_KEY not in metrics
