"""An ensemble tier of two real local models voting, in process and over llama.cpp's OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import pytest

from cascade import Cascade, CascadeConfig
from cascade.run.ensemble import vote
from cascade.types import Attempt

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"
PRICES = {"input_per_token": 1e-8, "output_per_token": 4e-8}


def _cascade(models: list[Any], **tier: Any) -> Cascade:
    return Cascade(
        CascadeConfig.from_dict(
            {
                "tiers": [
                    {
                        "name": "pair",
                        "models": models,
                        "max_tokens": 8,
                        "stop": ["\n"],
                        "seed": 0,
                        "logprobs": True,
                        "prompt": {"system": "Answer with only the final answer."},
                        "prices": PRICES,
                        **tier,
                    }
                ],
                "router": {"type": "threshold", "threshold": 0.5},
            }
        )
    )


def _check_vote(attempt: Attempt) -> None:
    """The attempt is what the members' own answers and usage say it must be."""
    members = attempt.members
    assert len(members) == 2 and all(m.error is None for m in members), members
    assert all(m.prompt_tokens > 0 and m.completion_tokens > 0 for m in members)
    assert attempt.prompt_tokens == sum(m.prompt_tokens for m in members)
    assert attempt.completion_tokens == sum(m.completion_tokens for m in members)
    assert attempt.cost_usd == pytest.approx(sum(m.cost_usd for m in members)) and attempt.cost_usd > 0
    expected = vote([m.answer for m in members], [m.weight for m in members])
    assert attempt.answer == expected.answer is not None


def test_two_local_models_vote_in_process(smollm2: str, qwen05: str) -> None:
    result = _cascade([smollm2, qwen05]).run(QUESTION)
    (attempt,) = result.attempts
    assert attempt.model == f"{smollm2} + {qwen05}"
    _check_vote(attempt)
    share = vote([m.answer for m in attempt.members]).share
    assert attempt.confidence == pytest.approx(share) and share in (0.5, 1.0)
    assert "Paris" in {m.answer for m in attempt.members}  # Qwen2.5-0.5B knows it


def test_soft_vote_on_real_logprobs(smollm2: str, qwen05: str) -> None:
    attempt = (
        _cascade([qwen05, {"model": smollm2, "weight": 0.5}], verifier={"type": "logprob"}).run(QUESTION).attempts[0]
    )
    _check_vote(attempt)
    assert attempt.answer == "Paris"  # the heavier member's answer wins any disagreement
    assert 0 < (attempt.confidence or 0) <= vote([m.answer for m in attempt.members], [1.0, 0.5]).share
    assert "token probability of 'Paris' weighted over 2 members" in attempt.reason


def test_two_models_vote_over_the_openai_compatible_server(llama_server: str) -> None:
    models = [{"model": "openai/smollm2-135m"}, {"model": "openai/qwen2.5-0.5b"}]
    cascade = _cascade(models, api_base=llama_server, extra={"api_key": "local"})
    attempt = cascade.run(QUESTION).attempts[0]
    _check_vote(attempt)
    assert "Paris" in {m.answer for m in attempt.members}
