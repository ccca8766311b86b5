"""Budget escalation on a real local model: a short budget told in the prompt, cut off at its cap,
escalates with the reason written to the same model with a bigger budget."""

from __future__ import annotations

import pytest

from cascade import Cascade, CascadeConfig

pytestmark = pytest.mark.integration


def test_a_cut_off_short_budget_escalates_to_the_same_model_with_more(
    local_provider: object, local_model_path: object
) -> None:
    tier = {
        "model": "local/qwen2.5-0.5b",
        "seed": 0,
        "logprobs": True,
        "prompt": {"system": "Think step by step, then finish with 'The answer is X.'"},
        "answer": {"format": "final", "stop_when_complete": True},
    }
    short = tier | {"name": "short", "max_tokens": 48}
    short["budget_policy"] = {"type": "fixed", "tokens": 6, "prompt": "Use at most {budget} tokens."}
    config = {"tiers": [short, tier | {"name": "long", "max_tokens": 64}], "retry": {"timeout_s": 900}}
    result = Cascade(CascadeConfig.from_dict(config)).run("A shop sells 7 boxes of 12 pens. How many pens?")
    cut, longer = result.attempts
    assert cut.completion_tokens == 6 and cut.budget is not None and cut.budget.truncated
    assert cut.budget.sentence == "Use at most 6 tokens." and cut.decision == "escalate"
    assert "truncated: the answer hit max_tokens=6 (finish_reason length)" in cut.reason
    assert longer.tier == "long" and 0 < longer.completion_tokens <= 64
    # the last tier has nothing to escalate to: even a cut-off answer is judged, and the trace says it was cut
    assert longer.verifier == "logprob" and longer.confidence is not None
    assert (longer.budget is not None and longer.budget.truncated) == (longer.completion_tokens == 64)
