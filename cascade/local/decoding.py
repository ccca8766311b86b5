"""One generation on a loaded model: the sampling loop, its stops, and answer probes.

Stops end generation as soon as the text is done, in process, so no token after the answer is
paid for: stop strings (cut before them), an answer-complete pattern (cut after its match; the
logprobs of the kept tokens stay available, unlike a stream cut short by the reader), or an early
exit of a reasoning.

Early exit (DEER-style answer probing): at the end of a line, once `every` new tokens have been
generated since the last probe, the suffix ("The answer is") is appended and the model answers
greedily; the probe is then rolled back and the reasoning resumes. llama.cpp keeps the KV cache of
the common prefix, so a probe costs its suffix and answer tokens only, and resuming re-evaluates
one token. Once `agree` consecutive probes agree and the last is sure enough, the reasoning ends
with the probed answer.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from cascade.types import Probe, probe_answer

if TYPE_CHECKING:
    from cascade.config.schema import EarlyExitConfig
    from cascade.local.params import GenerateParams, TokenLogprob

OnText = Callable[[str], bool]  # gets each new text piece; returns False to stop generating


class LoadedModel(Protocol):
    """What decoding needs of a loaded model (`cascade.local.engine.LocalModel`): llama.cpp itself,
    and its token-level helpers."""

    llama: Any

    def is_end(self, token: int) -> bool: ...
    def token_logprob(self, token: int, top_n: int) -> TokenLogprob: ...
    def decode(self, tokens: list[int], prompt: list[int]) -> str: ...
    def tokens_covering(self, tokens: list[int], prompt: list[int], length: int) -> int: ...
_NOISE = re.compile(r"[\s,$*`'\"]+")


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    logprobs: list[TokenLogprob] | None = None
    probes: tuple[Probe, ...] = ()
    stopped_by: str | None = None  # "answer_complete" or "early_exit" when we cut generation short


def stop_at(text: str, stops: tuple[str, ...]) -> int | None:
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(positions) if positions else None


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the tail that could still grow into a stop string, so streams never leak it."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def same_probe_answer(a: str, b: str) -> bool:
    return bool(a) and _NOISE.sub("", a.lower()) == _NOISE.sub("", b.lower())


@dataclass
class Decoder:
    """The state of one generation (tokens, logprobs, text, probes) and the loop that grows it."""

    model: LoadedModel
    prompt: list[int]
    budget: int
    params: GenerateParams
    stops: tuple[str, ...]
    on_text: OnText | None = None
    grammar: Any = None  # from params.json_schema (JSON output); its state lives in one stream, so no probes
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    last_probe: int = 0
    probe_logprobs: list[TokenLogprob] = field(default_factory=list)  # the latest probe's tokens

    def __post_init__(self) -> None:
        if self.grammar is None and self.params.json_schema:  # here, so no caller can leave it out
            self.grammar = grammar_for(self.params.json_schema)

    def run(self) -> Generation:
        finish, stopped_by = "length", None
        stream = self._stream()
        try:
            while len(self.tokens) < self.budget:
                token = next(stream, None)
                if token is None or self.model.is_end(token):
                    finish = "stop"
                    break
                self._take(token)
                stopped_by = self._stop_reason()
                if stopped_by is not None or not self._emit():
                    finish = "stop"
                    break
                if self._probe_due():
                    stream.close()
                    if self._probe_converged():
                        finish, stopped_by = "stop", "early_exit"
                        self._conclude()
                        break
                    stream = self._stream()
        finally:
            stream.close()
        self._flush()
        return self._generation(finish, stopped_by)

    def _stream(self) -> Generator[int, None, None]:
        p = self.params
        tokens: Generator[int, None, None] = self.model.llama.generate(
            self.prompt + self.tokens, temp=p.temperature, top_p=p.top_p, repeat_penalty=1.0, grammar=self.grammar
        )
        return tokens

    def _take(self, token: int) -> None:
        if self.params.logprobs:
            self.logprobs.append(self.model.token_logprob(token, self.params.top_logprobs))
        self.tokens.append(token)
        self.text = self.model.decode(self.tokens, self.prompt)

    def _stop_reason(self) -> str | None:
        """Cut the text at a stop string or after a complete answer; None while generation goes on."""
        cut = stop_at(self.text, self.stops)
        if cut is not None:
            self._keep(cut)
            return "stop_string"
        pattern = self.params.stop_pattern
        match = re.search(pattern, self.text, re.IGNORECASE) if pattern else None
        if match is None:
            return None
        self._keep(match.end())
        return "answer_complete"

    def _keep(self, length: int) -> None:
        """Keep the first `length` characters; logprobs keep the tokens that spell them."""
        self.text = self.text[:length]
        if self.params.logprobs:
            del self.logprobs[self.model.tokens_covering(self.tokens, self.prompt, length) :]

    def _emit(self) -> bool:
        if self.on_text is None:
            return True
        safe = len(self.text) - held_back(self.text, self.stops)
        if safe > self.emitted and not self.on_text(self.text[self.emitted : safe]):
            self.on_text = None  # the reader went away: stop early
            return False
        self.emitted = max(self.emitted, safe)
        return True

    def _flush(self) -> None:
        if self.on_text is not None and len(self.text) > self.emitted:
            self.on_text(self.text[self.emitted :])

    def _probe_due(self) -> bool:
        rule = self.params.early_exit
        return (
            rule is not None
            and self.grammar is None
            and self.text.endswith("\n")
            and len(self.tokens) - self.last_probe >= rule.every
            and len(self.tokens) < self.budget
        )

    def _probe_converged(self) -> bool:
        rule = self.params.early_exit
        assert rule is not None
        self.last_probe = len(self.tokens)
        found, self.probe_logprobs = probe(self.model, self.prompt + self.tokens, rule, self.text.endswith("\n"))
        self.probes.append(replace(found, at_char=len(self.text)))
        return rule.stop and converged(self.probes, rule)

    def _conclude(self) -> None:
        """End the reasoning with the converged probe's answer, as the tier's prompt asks for it."""
        last = self.probes[-1]
        rule = self.params.early_exit
        assert rule is not None
        ending = f"{rule.suffix} {last.answer}."
        if self.params.logprobs:
            self.logprobs.extend(self.probe_logprobs[: len(last.logprobs)])
        self.text = f"{self.text}{ending}"

    def _generation(self, finish: str, stopped_by: str | None) -> Generation:
        prompt = len(self.prompt) + sum(p.prompt_tokens for p in self.probes)
        completion = len(self.tokens) + sum(p.completion_tokens for p in self.probes)
        logprobs = self.logprobs if self.params.logprobs else None
        kind = stopped_by if stopped_by in ("answer_complete", "early_exit") else None
        return Generation(self.text, prompt, completion, finish, logprobs, tuple(self.probes), kind)


def converged(probes: list[Probe], rule: EarlyExitConfig) -> bool:
    """The last `rule.agree` probes gave one answer, each with every token at least `rule.min_prob` likely."""
    recent = probes[-rule.agree :]
    if len(recent) < rule.agree or not recent[-1].answer:
        return False
    last = recent[-1].answer
    return all(p.min_prob >= rule.min_prob and same_probe_answer(p.answer, last) for p in recent)


def probe(
    model: LoadedModel, context: list[int], rule: EarlyExitConfig, at_line_start: bool = True
) -> tuple[Probe, list[TokenLogprob]]:
    """Ask for the answer after `context` (greedy, at most `rule.max_tokens` tokens).

    Only a complete answer (ended by a line break, a sentence end or the end of generation) can
    count. A probe whose token falls below `rule.min_prob` before its answer is complete cannot meet
    the exit rule, so it is cut there (cheap probes while the reasoning is far from an answer); with
    `stop: false` the same floor applies, so recorded probes replay any rule with min_prob above it.
    Returns the probe and the logprobs of every token it generated.
    """
    lead = "" if at_line_start else "\n"
    floor = math.log(rule.min_prob) if rule.min_prob > 0 else -math.inf
    suffix = model.llama.tokenize(f"{lead}{rule.suffix}".encode(), add_bos=False, special=False)
    base = context + suffix
    tokens: list[int] = []
    logprobs: list[TokenLogprob] = []
    text, done = "", False
    stream = model.llama.generate(base, temp=0.0, top_p=1.0, repeat_penalty=1.0)
    try:
        for token in stream:
            if model.is_end(token):
                done = True
                break
            logprobs.append(model.token_logprob(token, 0))
            tokens.append(token)
            text = model.decode(tokens, base)
            done = _probe_done(text)
            if done or len(tokens) >= rule.max_tokens or logprobs[-1].logprob < floor:
                break
    finally:
        stream.close()
    answer = probe_answer(text)
    spelled = model.tokens_covering(tokens, base, text.find(answer) + len(answer)) if answer else 0
    values = tuple(t.logprob for t in (logprobs[:spelled] if done else logprobs))
    return Probe(len(context), text, values, len(suffix), len(tokens), complete=done), logprobs


def _probe_done(text: str) -> bool:
    """A probe's answer is complete at a line break or a sentence end (a period then a space, or a
    period after a non-digit: "12." may still become "12.5")."""
    stripped = text.lstrip()
    return "\n" in stripped or re.search(r"\.\s|\D\.$", stripped) is not None


@functools.lru_cache(maxsize=64)
def grammar_for(json_schema: str) -> Any:
    """A llama.cpp grammar for a JSON schema (llama-cpp-python's converter); ValueError if it has none."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json_schema, verbose=False)
    except Exception as exc:  # the converter raises bare Exceptions for schema features it lacks
        raise ValueError(f"cannot constrain output to this JSON schema: {exc}") from exc
