"""Served runs go to the store; POST /v1/feedback judges them; keys never reach the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade import FakeReply
from cascade.serve import ServeSettings, create_app
from cascade.serve.auth import key_id
from cascade.store import Store, open_store
from tests.unit.serve.test_app import ask, demo

KEY = "sk-feedback-test-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "store.sqlite"))
    yield opened
    opened.close()


def client(store: Any, **replies: Any) -> httpx.AsyncClient:
    cascade, _ = demo(**replies)
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(KEY,)), store=store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH)


async def test_every_served_run_is_recorded_before_the_answer_is_sent(store: Store) -> None:
    async with client(store) as http:
        body = (await http.post("/v1/chat/completions", json=ask())).json()
    run = store.get_run(body["cascade"]["run_id"])
    assert run is not None and run.config_name == "demo" and run.answer == "Paris" and run.final_tier == "large"
    assert run.total_tokens == body["usage"]["total_tokens"] and len(run.attempts) == 2


async def test_failed_runs_are_recorded_too(store: Store) -> None:
    async with client(store, small=FakeReply(error="server"), large=FakeReply(error="server")) as http:
        response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 502
    run = store.get_run(response.headers["x-cascade-run-id"])
    assert run is not None and run.error == "every tier failed" and run.answer is None


async def test_feedback_on_a_served_run(store: Store) -> None:
    async with client(store) as http:
        run_id = (await http.post("/v1/chat/completions", json=ask())).headers["x-cascade-run-id"]
        up = await http.post("/v1/feedback", json={"run_id": run_id, "kind": "thumbs_up", "user": "ann"})
        fix = await http.post("/v1/feedback", json={"run_id": run_id, "kind": "correction", "value": "Paris"})
        metrics = (await http.get("/metrics")).text
    assert up.status_code == 200 and up.json()["object"] == "feedback" and up.json()["run_id"] == run_id
    assert fix.json()["id"] > up.json()["id"]
    assert [(f.kind, f.value, f.user) for f in store.feedback_for(run_id)] == [
        ("thumbs_up", None, "ann"),
        ("correction", "Paris", None),
    ]
    assert 'cascade_feedback_total{kind="thumbs_up"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"run_id": "nope", "kind": "thumbs_up"}, 404, "no run 'nope' in the store"),
        ({"run_id": "x", "kind": "meh"}, 400, "kind: Input should be 'thumbs_up'"),
        ({"run_id": "x", "kind": "label"}, 400, "label feedback needs a value"),
        ({"kind": "thumbs_up"}, 400, "run_id: Field required"),
        ({"run_id": "x", "kind": "thumbs_up", "extra": 1}, 400, "extra: Extra inputs are not permitted"),
    ],
)
async def test_bad_feedback_gets_a_clear_4xx(store: Store, body: dict[str, Any], status: int, message: str) -> None:
    async with client(store) as http:
        response = await http.post("/v1/feedback", json=body)
    assert response.status_code == status and message in response.json()["error"]["message"]


async def test_feedback_needs_a_key_and_a_store(store: Store) -> None:
    async with client(store) as http:
        refused = await http.post(
            "/v1/feedback", json={"run_id": "x", "kind": "thumbs_up"}, headers={"authorization": ""}
        )
    async with client(None) as http:
        disabled = await http.post("/v1/feedback", json={"run_id": "x", "kind": "thumbs_up"})
    assert refused.status_code == 401
    assert disabled.status_code == 501 and "--store" in disabled.json()["error"]["message"]


async def test_a_failing_store_costs_the_client_nothing_but_is_counted(store: Store) -> None:
    class Broken:
        def record_run(self, *args: Any, **kwargs: Any) -> str:
            raise OSError("disk full")

    async with client(Broken()) as http:
        response = await http.post("/v1/chat/completions", json=ask())
        metrics = (await http.get("/metrics")).text
    assert response.status_code == 200
    assert 'cascade_store_errors_total{operation="record_run"} 1.0' in metrics


async def test_keys_never_reach_the_store(store: Store, tmp_path: Path) -> None:
    async with client(store) as http:
        run_id = (await http.post("/v1/chat/completions", json=ask(f"my key is {KEY}, what is it?"))).headers[
            "x-cascade-run-id"
        ]
        await http.post("/v1/feedback", json={"run_id": run_id, "kind": "label", "value": KEY})
    store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert KEY.encode() not in raw and KEY[3:].encode() not in raw


async def test_feedback_on_a_streamed_run_by_its_header_or_chunk_id(store: Store) -> None:
    """A stream's headers go out before its run ends: they and every chunk name the run to judge."""
    async with client(store) as http:
        async with http.stream("POST", "/v1/chat/completions", json=ask(stream=True)) as response:
            run_id = response.headers["x-cascade-run-id"]
            chunk_ids = {
                line.split('"id":"')[1].split('"')[0] async for line in response.aiter_lines() if '"id":"' in line
            }
        down = await http.post("/v1/feedback", json={"run_id": run_id, "kind": "thumbs_down"})
    assert chunk_ids == {f"chatcmpl-{run_id}"} and down.status_code == 200
    run = store.get_run(run_id)
    assert run is not None and run.answer == "Paris" and [f.kind for f in store.feedback_for(run_id)] == ["thumbs_down"]


async def test_a_feedback_flood_from_one_key_gets_429s_and_other_keys_go_on(store: Store) -> None:
    """1,000 posts from key A: its first 60 in the minute are recorded, the rest refused with a 429 in
    OpenAI's shape and a Retry-After; key B is not held up; the store names each key."""
    other = "sk-feedback-other-9876543210"
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(KEY, other)), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as http:
        run_id = (await http.post("/v1/chat/completions", json=ask())).headers["x-cascade-run-id"]
        verdict = {"run_id": run_id, "kind": "thumbs_down"}
        flood = [await http.post("/v1/feedback", json=verdict) for _ in range(1_000)]
        b = await http.post("/v1/feedback", json=verdict, headers={"authorization": f"Bearer {other}"})
        metrics = (await http.get("/metrics")).text
    statuses = [r.status_code for r in flood]
    assert statuses.count(200) == 60 and statuses.count(429) == 940 and statuses[:60] == [200] * 60
    refused = flood[-1]
    error = refused.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "gave 60 feedback events in the last 60 s" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert b.status_code == 200
    keys = [f.key for f in store.feedback_for(run_id)]
    assert len(keys) == 61 and set(keys) == {key_id(KEY), key_id(other)}
    assert "cascade_feedback_rate_limited_total 940.0" in metrics
