"""Answer-complete stops and early exit on a real model, through the completer as the cascade calls it."""

from __future__ import annotations

import asyncio

import pytest

from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.config.schema import AnswerConfig, EarlyExitConfig
from cascade.io.answers import completion_pattern
from cascade.types import Completion, CompletionRequest

pytestmark = pytest.mark.integration

REASON = [
    {"role": "system", "content": "Think step by step. Always finish with a last line 'The answer is X.'"},
    {"role": "user", "content": "Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?"},
]


def _complete(model: str, messages: list[dict[str, str]], **kw: object) -> Completion:
    request = CompletionRequest(model=model, messages=messages, **kw)  # type: ignore[arg-type]
    return asyncio.run(LiteLLMCompleter().complete(request))


def test_answer_complete_stop_keeps_logprobs_and_top_alternatives(smollm2: str) -> None:
    pattern = completion_pattern(AnswerConfig(format="first_line", stop_when_complete=True))
    question = [{"role": "user", "content": "Is Paris the capital of France? Answer yes or no, then explain why."}]
    full = _complete(smollm2, question, max_tokens=16, logprobs=True)
    stopped = _complete(smollm2, question, max_tokens=16, logprobs=True, top_logprobs=3, stop_pattern=pattern)
    assert full.text.lower().startswith(("yes,", "no,", "yes.", "no.")), full.text  # what the stop is for
    assert stopped.text.lower() in ("yes", "no") and stopped.finish_reason == "answer_complete"
    assert stopped.completion_tokens < full.completion_tokens  # the explanation was never generated
    assert stopped.token_logprobs and stopped.top_logprobs and len(stopped.top_logprobs[0]) == 3


def test_a_greedy_reasoning_does_not_depend_on_the_call_before(qwen05: str) -> None:
    """llama.cpp's numbers depend on how a prompt is batched: cached by the call before, this prompt
    had its last token evaluated alone (first token's logprob -0.59129 against -0.59194 evaluated
    after another prompt), and the reasoning went another way 50 tokens on."""
    _complete(qwen05, [{"role": "user", "content": "Hi"}], max_tokens=1)
    after_another, again = (_complete(qwen05, REASON, max_tokens=4, logprobs=True) for _ in range(2))
    assert after_another.token_logprobs == again.token_logprobs and after_another.text == again.text


def test_probing_leaves_the_reasoning_unchanged_and_early_exit_shortens_it(qwen05: str) -> None:
    record = EarlyExitConfig(every=16, min_prob=0.3, agree=1, stop=False)
    recorded = _complete(qwen05, REASON, max_tokens=160, early_exit=record)
    plain = _complete(qwen05, REASON, max_tokens=160)
    assert recorded.probes and plain.probes == ()
    probe_tokens = sum(p.completion_tokens for p in recorded.probes)
    assert recorded.text == plain.text  # probes are rolled back: the reasoning is the same text
    assert recorded.completion_tokens == plain.completion_tokens + probe_tokens
    exiting = _complete(qwen05, REASON, max_tokens=160, early_exit=record.model_copy(update={"stop": True}))
    if exiting.exited_early:
        head = exiting.text[: exiting.text.rindex("The answer is")]
        assert plain.text.startswith(head) and exiting.completion_tokens < recorded.completion_tokens
    assert [p.at_token for p in exiting.probes] == [p.at_token for p in recorded.probes][: len(exiting.probes)]
