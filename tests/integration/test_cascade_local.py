"""The default cascade end to end on the real local models, in process and over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cascade import Cascade, load_config
from cascade.budget.metering import MemoryAccount, charge_to
from tests.integration.conftest import LOCAL_CALL_TIMEOUT_S

pytestmark = pytest.mark.integration

HARD = "A farmer has 17 cows and buys 3 times as many. How many cows does he have now?"


@pytest.fixture(scope="module")
def default_cascade(local_provider: object, patient_config: Callable[[str], Path]) -> Cascade:
    return Cascade(load_config(patient_config("local.yaml")))


def test_default_cascade_answers_paris(default_cascade: Cascade) -> None:
    result = default_cascade.run("What is the capital of France?")
    assert result.answer == "Paris"
    assert result.accepted
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 for a in result.attempts)


def test_a_budget_holds_on_real_tokenizers(default_cascade: Cascade) -> None:
    """The tier a factoid goes to (qwen2.5-1.5b: prompt bound + 48 tokens) fits in 400 tokens: what
    is charged stays within 400, and no real prompt passed its bound."""
    account = MemoryAccount("test", max_tokens=400)
    with charge_to(account):
        result = default_cascade.run("What is the capital of France?")
    assert result.answer is not None and len(result.attempts) == 1
    assert account.spent.prompt_tokens + account.spent.completion_tokens == result.total_tokens <= 400
    assert default_cascade.meter.bounds.exceeded == {}


def test_arithmetic_skips_the_small_models_and_may_reason(default_cascade: Cascade) -> None:
    """Task-aware skipping: on arithmetic the smaller models did not pay, so the default starts at
    qwen2.5-1.5b (the trace says why) and reasons when its quick answer is not sure enough."""
    result = default_cascade.run(HARD)
    tiers = [a.tier for a in result.attempts]
    assert tiers in (["qwen2.5-1.5b"], ["qwen2.5-1.5b", "qwen2.5-1.5b-think"]), [a.reason for a in result.attempts]
    assert "skip smollm2-135m, qwen2.5-0.5b" in result.route_reason
    for attempt in result.attempts:
        assert attempt.prompt_tokens > 0 and attempt.completion_tokens > 0
        assert attempt.cost_usd > 0 and attempt.confidence is not None
    assert result.total_cost_usd == pytest.approx(sum(a.cost_usd for a in result.attempts))
    assert default_cascade.meter.bounds.exceeded == {}  # every real prompt within its reserved bound


def test_cli_json_on_default_config_has_real_token_counts(patient_config: Callable[[str], Path]) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    question = "What is the capital of France?"
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "run", "--json", "--config", str(patient_config("local.yaml")), question],
        capture_output=True,
        text=True,
        timeout=2 * LOCAL_CALL_TIMEOUT_S,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["answer"] == "Paris"
    assert data["total_tokens"] == sum(a["prompt_tokens"] + a["completion_tokens"] for a in data["attempts"]) > 0


def test_cascade_over_the_llama_server(
    llama_server: str, monkeypatch: pytest.MonkeyPatch, patient_config: Callable[[str], Path]
) -> None:
    monkeypatch.setenv("CASCADE_LOCAL_SERVER", llama_server)
    cascade = Cascade.from_yaml(patient_config("local_http.yaml"))
    easy = cascade.run("What is the capital of France?")
    assert easy.answer == "Paris" and easy.accepted
    assert all(a.error is None for a in easy.attempts)
    assert all(a.confidence is not None and a.confidence > 0 for a in easy.attempts)  # logprobs over HTTP
    hard = cascade.run(HARD)
    assert [a.tier for a in hard.attempts] == ["smollm2-135m", "qwen2.5-0.5b"]
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 for a in hard.attempts)
