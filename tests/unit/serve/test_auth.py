"""API keys from the environment, constant-time checks, key ids, per-key budgets."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from cascade.serve import ServeSettings, create_app
from cascade.serve.api_errors import ApiError
from cascade.serve.auth import ApiKeys, key_id, keys_from_env
from tests.unit.serve.test_app import ask, demo

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-fedcba9876543210"


def client(**settings: Any) -> httpx.AsyncClient:
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(ALICE, BOB), **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cascade.test")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_come_from_the_environment_comma_separated() -> None:
    assert keys_from_env({"CASCADE_API_KEYS": f" {ALICE}, ,{BOB} "}) == (ALICE, BOB)
    assert keys_from_env({}) == ()
    settings = ServeSettings.from_env({"CASCADE_API_KEYS": ALICE}, max_queue=3)
    assert settings.api_keys == (ALICE,) and settings.max_queue == 3


def test_settings_never_show_the_keys() -> None:
    settings = ServeSettings(api_keys=(ALICE,))
    assert ALICE not in repr(settings) and ALICE not in str(settings)
    assert ALICE not in settings.model_dump_json()


def test_key_id_names_a_key_without_revealing_it() -> None:
    ident = key_id(ALICE)
    assert ident.startswith("key-") and len(ident) == 12 and ident != key_id(BOB)
    assert ALICE[3:] not in ident


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "missing_api_key"), ("Bearer", "missing_api_key"), (f"Basic {ALICE}", "missing_api_key"),
     ("Bearer sk-alice-0123456789abcdeX", "invalid_api_key"), (f"Bearer {ALICE}x", "invalid_api_key")],
)  # fmt: skip
def test_authenticate_refuses_missing_and_wrong_keys(header: str | None, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiKeys([ALICE, BOB]).authenticate(header)
    assert caught.value.status == 401 and caught.value.code == code
    assert ALICE not in caught.value.message


def test_authenticate_names_the_matching_key_and_is_open_without_keys() -> None:
    keys = ApiKeys([ALICE, BOB])
    assert keys.authenticate(f"Bearer {BOB}") == key_id(BOB)
    assert keys.authenticate(f"bearer {ALICE}") == key_id(ALICE)
    assert ApiKeys([]).authenticate(None) == "anonymous" and not ApiKeys([]).enabled


async def test_endpoints_need_a_key_except_health_and_metrics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with client() as http:
        refused = await http.post("/v1/chat/completions", json=ask())
        wrong = await http.post("/v1/chat/completions", json=ask(), headers=bearer("sk-guess-000000000000"))
        models = await http.get("/v1/models")
        answered = await http.post("/v1/chat/completions", json=ask(), headers=bearer(ALICE))
        health = await http.get("/health")
        metrics = await http.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401 and "sk-guess" not in wrong.text
    assert models.status_code == 401
    assert answered.status_code == 200 and health.status_code == 200 and metrics.status_code == 200
    everything = caplog.text + answered.text + str(answered.headers) + metrics.text
    assert ALICE not in everything and ALICE[3:12] not in everything
    assert key_id(ALICE) in caplog.text  # the run is logged under the key's id


async def test_token_budget_per_key_refuses_with_insufficient_quota() -> None:
    """Each run costs 25 tokens (11 + 14); with 60 per key the third cannot reserve its first call."""
    async with client(key_max_tokens=60) as http:
        first = await http.post("/v1/chat/completions", json=ask(), headers=bearer(ALICE))
        second = await http.post("/v1/chat/completions", json=ask(), headers=bearer(ALICE))
        third = await http.post("/v1/chat/completions", json=ask(), headers=bearer(ALICE))
        other = await http.post("/v1/chat/completions", json=ask(), headers=bearer(BOB))
    assert first.json()["usage"]["total_tokens"] == second.json()["usage"]["total_tokens"] == 25
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
    assert f"{key_id(ALICE)} token budget" in error["message"]
    assert "10 tokens left, 11 or more needed" in error["message"]
    assert other.status_code == 200  # budgets are per key


async def test_a_cost_budget_caps_the_run_and_answers_with_what_it_could_pay_for() -> None:
    """$0.000045: the small tier ($1.2e-5) fits; the large one needs $1.2e-4 of prompt alone."""
    async with client(key_max_cost_usd=0.000045) as http:
        first = await http.post("/v1/chat/completions", json=ask(), headers=bearer(ALICE))
        metrics = (await http.get("/metrics")).text
    body = first.json()
    assert first.status_code == 200 and body["choices"][0]["message"]["content"] == "Lyon"
    assert not body["cascade"]["accepted"] and body["cascade"]["stop_reason"].startswith(f"{key_id(ALICE)} cost budget")
    assert float(first.headers["x-cascade-cost-usd"]) <= 0.000045
    assert "cascade_requests_total" in metrics
