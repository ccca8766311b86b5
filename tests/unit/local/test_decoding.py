"""The in-process sampling loop on a scripted character-level model: stops, answer patterns, early exit."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from cascade.config.schema import EarlyExitConfig
from cascade.local.decoding import Decoder, Generation, converged, probe
from cascade.local.engine import LocalModel
from cascade.local.params import GenerateParams, TokenLogprob
from cascade.types import Probe

PROMPT = [1, 2, 3]
END = 0
REASONING = "Step 1: 3*4=12.\nStep 2: 12-2=10.\nSo Tom has 10 apples.\nThe answer is 10.\nDone.\n"
SUFFIX = "The answer is"


def _answer_after(lines: int) -> tuple[str, float]:
    """What a probe answers after `lines` reasoning lines, and how likely each of its characters is."""
    return {1: (" 12.\n", 0.6), 2: (" 10.\n", 0.95), 3: (" 10.\n", 0.97)}.get(lines, (" 10.\n", 0.99))


class ScriptedModel:
    """Characters as tokens. generate() continues REASONING, or answers a probe (a context that
    ends with SUFFIX) as `_answer_after` says, every character as likely as that answer is sure."""

    def __init__(self) -> None:
        self.llama = self
        self.p = 0.99

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return [ord(c) for c in text.decode()]

    def generate(self, tokens: list[int], **_: object) -> Iterator[int]:
        text = "".join(chr(t) for t in tokens[len(PROMPT) :])
        rest, self.p = REASONING[len(text) :], 0.99
        if not REASONING.startswith(text):
            assert text.endswith(SUFFIX), text
            rest, self.p = _answer_after(text[: -len(SUFFIX)].count("\n"))
        yield from (ord(c) for c in rest)
        yield END

    def is_end(self, token: int) -> bool:
        return token == END

    def decode(self, tokens: list[int], prompt: list[int]) -> str:
        return "".join(chr(t) for t in tokens)

    def tokens_covering(self, tokens: list[int], prompt: list[int], length: int) -> int:
        return LocalModel.tokens_covering(self, tokens, prompt, length)  # type: ignore[arg-type]

    def token_logprob(self, token: int, top_n: int) -> TokenLogprob:
        return TokenLogprob(chr(token), math.log(self.p), [token])


def run(params: GenerateParams, budget: int = 200) -> Generation:
    return Decoder(ScriptedModel(), list(PROMPT), budget, params, ()).run()  # type: ignore[arg-type]


def test_full_generation_without_probes() -> None:
    generation = run(GenerateParams(temperature=0.0, logprobs=True))
    assert generation.text == REASONING
    assert generation.completion_tokens == len(REASONING) and generation.prompt_tokens == len(PROMPT)
    assert generation.probes == () and generation.stopped_by is None


def test_recorded_probes_cost_tokens_but_do_not_change_the_reasoning() -> None:
    rule = EarlyExitConfig(every=5, suffix=SUFFIX, min_prob=0.5, agree=1, stop=False)
    generation = run(GenerateParams(temperature=0.0, logprobs=True, early_exit=rule))
    assert generation.text == REASONING  # recording never stops the reasoning
    assert [p.answer for p in generation.probes] == ["12", "10", "10", "10", "10"]
    lines = REASONING.splitlines(keepends=True)
    assert [p.at_char for p in generation.probes] == [len("".join(lines[: i + 1])) for i in range(5)]
    probe_tokens = sum(p.completion_tokens for p in generation.probes)
    assert generation.completion_tokens == len(REASONING) + probe_tokens
    assert generation.prompt_tokens == len(PROMPT) + sum(p.prompt_tokens for p in generation.probes)
    assert generation.probes[0].min_prob == pytest.approx(0.6)


def test_early_exit_once_two_sure_probes_agree() -> None:
    rule = EarlyExitConfig(every=5, suffix=SUFFIX, min_prob=0.9, agree=2, stop=True)
    generation = run(GenerateParams(temperature=0.0, logprobs=True, early_exit=rule))
    lines = REASONING.splitlines(keepends=True)
    assert generation.stopped_by == "early_exit"
    assert generation.text == "".join(lines[:3]) + "The answer is 10."
    assert len(generation.probes) == 3  # 12 (unsure, cut), 10, 10
    assert generation.completion_tokens < len(REASONING)
    assert generation.logprobs is not None and len(generation.logprobs) == len("".join(lines[:3])) + len(" 10")


def test_a_probe_below_the_floor_is_cut_and_never_counts() -> None:
    rule = EarlyExitConfig(every=5, suffix=SUFFIX, min_prob=0.9, agree=1, stop=True)
    model = ScriptedModel()
    context = list(PROMPT) + [ord(c) for c in REASONING.splitlines(keepends=True)[0]]
    found, generated = probe(model, context, rule)  # type: ignore[arg-type]
    assert found.completion_tokens == len(generated) == 1 and found.min_prob < 0.9  # cut at its first unsure token
    assert not converged([found], rule)
    sure = Probe(10, " 10.", (math.log(0.95),), 3, 4)
    assert converged([found, sure], rule) and not converged([found, sure], rule.model_copy(update={"agree": 2}))


def test_answer_pattern_stops_in_process_and_keeps_the_answers_logprobs() -> None:
    params = GenerateParams(temperature=0.0, logprobs=True, stop_pattern=r"3\*4=\d+(?=\D)")
    generation = run(params)
    assert generation.text == "Step 1: 3*4=12"
    assert generation.stopped_by == "answer_complete"
    assert generation.completion_tokens == len("Step 1: 3*4=12.")  # the token that showed the end is paid
    assert generation.logprobs is not None and len(generation.logprobs) == len("Step 1: 3*4=12")


def test_budget_is_respected_with_probes() -> None:
    rule = EarlyExitConfig(every=5, suffix=SUFFIX, min_prob=0.99, agree=3, stop=True)
    generation = run(GenerateParams(temperature=0.0, early_exit=rule), budget=20)
    assert generation.finish_reason == "length" and generation.text == REASONING[:20]


def test_an_unfinished_probe_never_counts() -> None:
    rule = EarlyExitConfig(every=5, suffix=SUFFIX, max_tokens=2, min_prob=0.5, agree=1, stop=True)
    context = list(PROMPT) + [ord(c) for c in "".join(REASONING.splitlines(keepends=True)[:2])]
    found, _ = probe(ScriptedModel(), context, rule)  # type: ignore[arg-type]
    assert found.text == " 1" and not found.complete and found.min_prob == 0.0
    assert not converged([found], rule)
    whole, _ = probe(ScriptedModel(), context, rule.model_copy(update={"max_tokens": 12}))  # type: ignore[arg-type]
    assert whole.complete and whole.answer == "10" and converged([whole], rule)


def test_a_json_schema_constrains_the_sampler_with_its_grammar() -> None:
    """A refactor once built the Decoder without the grammar: local JSON and tool calls came back as prose."""
    seen: list[object] = []

    class Recording(ScriptedModel):
        def generate(self, tokens: list[int], **kwargs: object) -> Iterator[int]:
            seen.append(kwargs.get("grammar"))
            return super().generate(tokens)

    schema = '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}'
    Decoder(Recording(), list(PROMPT), 200, GenerateParams(json_schema=schema), ()).run()  # type: ignore[arg-type]
    Decoder(Recording(), list(PROMPT), 200, GenerateParams(), ()).run()  # type: ignore[arg-type]
    grammar, none = seen
    assert none is None and type(grammar).__name__ == "LlamaGrammar"
    with pytest.raises(ValueError, match="cannot constrain output to this JSON schema"):
        Decoder(Recording(), list(PROMPT), 200, GenerateParams(json_schema="{not json"), ())  # type: ignore[arg-type]
