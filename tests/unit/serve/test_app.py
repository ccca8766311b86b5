"""The OpenAI-compatible app in process (httpx + ASGITransport): shapes, usage, streaming, 4xx/5xx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.serve import ServeSettings, create_app

QUESTION = "What is the capital of France?"
CONFIG: dict[str, Any] = {
    "name": "demo",
    "tiers": [
        {"name": "small", "model": "fake/small", "max_tokens": 16, "logprobs": True,
         "prices": {"input_per_token": 1e-6, "output_per_token": 2e-6}},
        {"name": "large", "model": "fake/large", "max_tokens": 64, "logprobs": True,
         "prices": {"input_per_token": 1e-5, "output_per_token": 2e-5}},
    ],
    "verifier": {"type": "logprob", "aggregate": "min"},
    "router": {"type": "threshold", "threshold": 0.6},
    "retry": {"attempts": 2, "initial_wait_s": 0},
}  # fmt: skip


def demo(small: Any = None, large: Any = None, **overrides: Any) -> tuple[Cascade, FakeCompleter]:
    """A two-tier cascade: by default the small tier is unsure (escalates) and the large one answers."""
    fake = FakeCompleter(
        {
            "fake/small": small or FakeReply("Lyon", logprobs=[-2.0], prompt_tokens=10, completion_tokens=1),
            "fake/large": large or FakeReply("Paris", logprobs=[-0.01], prompt_tokens=12, completion_tokens=2),
        }
    )
    return Cascade(CascadeConfig.from_dict({**CONFIG, **overrides}), completer=fake), fake


def client(cascade: Cascade, **settings: Any) -> httpx.AsyncClient:
    app = create_app({cascade.config.name: cascade}, ServeSettings(**settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cascade.test")


def ask(content: Any = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}


async def test_answer_is_a_chat_completion_with_usage_summed_over_tiers() -> None:
    cascade, fake = demo()
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 200
    body = response.json()
    run_id = body["cascade"]["run_id"]
    assert body["id"] == f"chatcmpl-{run_id}" and body["object"] == "chat.completion" and body["model"] == "demo"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 22, "completion_tokens": 3, "total_tokens": 25}
    assert [(a["tier"], a["decision"], a["tokens"]) for a in body["cascade"]["attempts"]] == [
        ("small", "escalate", 11),
        ("large", "accept", 14),
    ]
    assert response.headers["x-cascade-run-id"] == run_id
    assert response.headers["x-cascade-tier"] == "large" and response.headers["x-cascade-accepted"] == "true"
    cost = 10e-6 + 2e-6 + 12e-5 + 4e-5
    assert float(response.headers["x-cascade-cost-usd"]) == pytest.approx(cost)
    assert len(fake.calls) == 2


async def test_the_query_is_the_user_message_inside_the_tier_prompt() -> None:
    cascade, fake = demo()
    async with client(cascade) as http:
        await http.post(
            "/v1/chat/completions",
            json=ask([{"type": "text", "text": "What is the "}, {"type": "text", "text": "capital?"}]),
        )
    assert fake.calls[0].messages[-1] == {"role": "user", "content": "What is the capital?"}


async def test_request_metadata_tag_labels_the_run() -> None:
    cascade, _ = demo()
    async with client(cascade) as http:
        tagged = await http.post("/v1/chat/completions", json=ask(metadata={"tag": "support", "other": "x"}))
        plain = await http.post("/v1/chat/completions", json=ask())
    assert tagged.json()["cascade"]["tag"] == "support"
    assert plain.json()["cascade"]["tag"] is None


async def test_answered_but_not_accepted_is_200_with_accepted_false() -> None:
    cascade, _ = demo(large=FakeReply("Paris?", logprobs=[-3.0]))
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 200
    assert response.headers["x-cascade-accepted"] == "false" and response.headers["x-cascade-tier"] == "large"
    assert response.json()["cascade"]["attempts"][-1]["decision"] == "stop"


def sse(text: str) -> tuple[list[str], list[Any]]:
    """A stream's comments and its data events (JSON, or the final "[DONE]")."""
    blocks = [b for b in text.split("\n\n") if b]
    comments = [b.removeprefix(": ") for b in blocks if b.startswith(":")]
    data = [b.removeprefix("data: ") for b in blocks if b.startswith("data: ")]
    return comments, [d if d == "[DONE]" else json.loads(d) for d in data]


async def test_stream_says_which_tier_is_tried_then_sends_the_answer_usage_and_done() -> None:
    cascade, _ = demo(large=FakeReply("Paris is the capital", logprobs=[-0.01]))
    async with client(cascade) as http:
        response = await http.post(
            "/v1/chat/completions", json=ask(stream=True, stream_options={"include_usage": True})
        )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    comments, events = sse(response.text)
    assert comments == [
        "cascade admitted",
        "cascade tier=small model=fake/small live=false",
        "cascade tier=small decision=escalate confidence=0.135",
        "cascade tier=large model=fake/large live=true",
        "cascade tier=large decision=accept confidence=0.990",
    ]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Paris is the capital"  # the last tier's words, as they were written
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["cascade"]["final_tier"] == "large"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_stream_sends_an_earlier_tiers_answer_only_once_it_is_accepted() -> None:
    cascade, _ = demo(small=FakeReply("Paris", logprobs=[-0.01]))
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask(stream=True))
    comments, events = sse(response.text)
    assert comments[-1] == "cascade tier=small decision=accept confidence=0.990"
    assert [c["choices"][0]["delta"].get("content") for c in events[:-1] if c["choices"]][:2] == [None, "Paris"]
    assert all("usage" not in c for c in events[:-1])


async def test_models_and_health() -> None:
    cascade, _ = demo()
    async with client(cascade) as http:
        models = (await http.get("/v1/models")).json()
        health = await http.get("/health")
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["demo"]
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_model_name_selects_the_cascade() -> None:
    first, fake_first = demo()
    second, fake_second = demo(name="other")
    app = create_app({"demo": first, "other": second}, ServeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.post("/v1/chat/completions", json={**ask(), "model": "other"})
        unknown = await http.post("/v1/chat/completions", json={**ask(), "model": "gpt-4"})
    assert response.json()["model"] == "other" and len(fake_second.calls) == 2 and not fake_first.calls
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found" and "demo, other" in unknown.json()["error"]["message"]


def chat(*messages: dict[str, str]) -> bytes:
    return json.dumps({"model": "demo", "messages": list(messages)}).encode()


MALFORMED = [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[]", "invalid request"),
    (json.dumps({"model": "demo"}).encode(), "messages: Field required"),
    (json.dumps({"model": "demo", "messages": []}).encode(), "messages: List should have at least 1 item"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), "model: Field required"),
    (json.dumps(ask(max_tokens=0)).encode(), "max_tokens: Input should be greater than or equal to 1"),
    (json.dumps(ask(temperature=9)).encode(), "temperature"),
    (json.dumps(ask(n=2)).encode(), "n: Input should be less than or equal to 1"),
    (json.dumps(ask(stream="maybe")).encode(), "stream"),
    (json.dumps({"model": "demo", "messages": [{"role": "robot", "content": "x"}]}).encode(), "messages.0.role"),
    (json.dumps(ask("   ")).encode(), "the last user message is empty"),
    (json.dumps(ask(metadata={"tag": " "})).encode(), "metadata: Value error, 'tag' must be a non-empty string"),
    (json.dumps(ask([{"type": "image_url", "image_url": {"url": "x"}}])).encode(), "only text parts"),
    (chat({"role": "system", "content": "Be brief"}), "at least one message with role 'user'"),
    (chat({"role": "user", "content": "a"}, {"role": "tool", "content": "b"}), "needs the 'tool_call_id'"),
    (json.dumps(ask(response_format={"type": "xml"})).encode(), "response_format.type"),
    (json.dumps(ask(tool_choice="required")).encode(), "tool_choice needs tools"),
    (json.dumps(ask(tools=[{"type": "function", "function": {"name": "a b"}}])).encode(), "function.name"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), MALFORMED)
async def test_malformed_requests_get_400_with_a_clear_message(body: bytes, message: str) -> None:
    cascade, fake = demo()
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]
    assert not fake.calls


async def test_unknown_route_and_method_get_openai_shaped_errors() -> None:
    cascade, _ = demo()
    async with client(cascade) as http:
        missing = await http.get("/v1/completions")
        wrong = await http.get("/v1/chat/completions")
    assert missing.status_code == 404 and "error" in missing.json()
    assert wrong.status_code == 405 and "error" in wrong.json()


async def test_every_error_has_openais_four_fields_null_where_they_do_not_apply() -> None:
    """OpenAI always sends `param` and `code`; clients that index them (not .get) broke on ours."""
    cascade, _ = demo(small=FakeReply(error="server"), large=FakeReply(error="server"))
    async with client(cascade) as http:
        responses = [
            await http.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}),
            await http.post("/v1/chat/completions", json=ask(model="gpt-4o")),
            await http.get("/v1/completions"),
            await http.post("/v1/chat/completions", json=ask()),
        ]
        streamed = await http.post("/v1/chat/completions", json=ask(stream=True))
    assert [r.status_code for r in responses] == [400, 404, 404, 502]
    for error in [r.json()["error"] for r in responses]:
        assert set(error) == {"message", "type", "param", "code"}, error
    assert responses[0].json()["error"]["param"] is None and responses[0].json()["error"]["code"] is None
    event = next(line for line in streamed.text.splitlines() if line.startswith('data: {"error"'))
    assert set(json.loads(event.removeprefix("data: "))["error"]) == {"message", "type", "param", "code"}


async def test_no_tier_answering_is_502_naming_the_cause_and_keeping_the_attempts() -> None:
    cascade, fake = demo(small=FakeReply(error="server"), large=FakeReply(error="auth"))
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 502
    body = response.json()
    assert body["error"]["code"] == "no_tier_answered" and body["error"]["type"] == "server_error"
    assert "every tier failed" in body["error"]["message"]
    assert (
        "server error (503)" in body["error"]["message"] and "authentication failed (401)" in body["error"]["message"]
    )
    assert [a["decision"] for a in body["cascade"]["attempts"]] == ["failed", "failed"]
    assert response.headers["x-cascade-run-id"] == body["cascade"]["run_id"]
    assert len(fake.calls) == 3  # the 503 was retried once (attempts: 2), the 401 was not


async def test_stream_of_a_failed_run_ends_with_an_error_event() -> None:
    cascade, _ = demo(small=FakeReply(error="bad_request"), large=FakeReply(error="bad_request"))
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask(stream=True))
    assert response.status_code == 200  # sent before the run ended, as OpenAI's streams do
    _, events = sse(response.text)
    error = events[-2]["error"]
    assert error["code"] == "no_tier_answered" and "every tier failed" in error["message"]
    assert events[-1] == "[DONE]"


async def test_a_full_queue_refuses_a_stream_with_429_before_it_starts() -> None:
    cascade, _ = demo(large=FakeReply("Paris", logprobs=[-0.01], delay_s=0.3))
    async with client(cascade, max_concurrency=1, max_queue=0) as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=ask(stream=True)))
        await asyncio.sleep(0.1)
        refused = await http.post("/v1/chat/completions", json=ask(stream=True))
        assert (await first).status_code == 200
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"


async def test_metrics_count_requests_escalations_tokens_cost_and_latency() -> None:
    cascade, _ = demo()
    async with client(cascade) as http:
        await http.post("/v1/chat/completions", json=ask())
        await http.post("/v1/chat/completions", json=ask())
        await http.post("/v1/chat/completions", content=b"{")
        text = (await http.get("/metrics")).text
    assert 'cascade_requests_total{model="demo",status="200"} 2.0' in text
    assert 'cascade_requests_total{model="unknown",status="400"} 1.0' in text
    assert 'cascade_escalations_total{model="demo",tier="small"} 2.0' in text
    assert 'cascade_attempts_total{decision="accept",model="demo",tier="large"} 2.0' in text
    assert 'cascade_tokens_total{kind="prompt",model="demo",tier="large"} 24.0' in text
    assert 'cascade_cost_usd_total{model="demo",tier="small"}' in text
    assert 'cascade_request_latency_seconds_count{model="demo"} 2.0' in text
    assert 'cascade_tier_latency_seconds_bucket{le="+Inf",model="demo",tier="small"} 2.0' in text
    assert 'cascade_rejected_total{reason="invalid_request_error"} 1.0' in text


async def test_each_app_has_its_own_metrics_registry() -> None:
    first, _ = demo()
    second, _ = demo()
    async with client(first) as a, client(second) as b:
        await a.post("/v1/chat/completions", json=ask())
        text = (await b.get("/metrics")).text
    assert 'status="200"' not in text
