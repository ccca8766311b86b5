"""Prompt evaluation in aligned chunks: every prompt position is computed in the same batch whatever
the model evaluated before, and whole shared chunks are still reused."""

from __future__ import annotations

import pytest

from cascade.local.prefill import prefill, reusable_prefix

CHUNK = 4
PROMPT = list(range(100, 114))  # 14 tokens: chunks [0,4) [4,8) [8,12) [12,14)


class RecordingLlama:
    """llama_cpp.Llama's cache bookkeeping; each cached position remembers the batch (start, size)
    that computed it, since llama.cpp's numbers for a position depend on that batch."""

    def __init__(self, drops_suffix: bool = True) -> None:
        self._ctx = self
        self.n_tokens = 0
        self.cache: list[tuple[int, tuple[int, int]]] = []
        self.evaluated = 0
        self.drops_suffix = drops_suffix

    def kv_cache_seq_rm(self, seq: int, start: int, end: int) -> bool:
        if not self.drops_suffix and start > 0:
            return False
        del self.cache[start:]
        return True

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:  # as llama_cpp.Llama.eval: drop what lies past n_tokens
        del self.cache[self.n_tokens :]
        self.cache += [(token, (self.n_tokens, len(tokens))) for token in tokens]
        self.n_tokens += len(tokens)
        self.evaluated += len(tokens)


def _generate(llama: RecordingLlama, tokens: list[int]) -> None:
    """What decoding leaves behind: generated tokens evaluated one at a time."""
    for token in tokens:
        llama.eval([token])


def _fresh(prompt: list[int]) -> RecordingLlama:
    llama = RecordingLlama()
    prefill(llama, [], prompt, CHUNK)
    return llama


EARLIER = {
    "the same prompt": PROMPT,
    "a shared prefix inside a chunk": [*PROMPT[:6], 7, 7, 7],
    "a shared prefix on a chunk boundary": [*PROMPT[:8], 7],
    "an earlier turn of the conversation": PROMPT[:9],
    "an unrelated prompt": [7] * 20,
}


@pytest.mark.parametrize("earlier", EARLIER.values(), ids=EARLIER.keys())
def test_a_prompt_is_computed_as_if_fresh_whatever_came_before(earlier: list[int]) -> None:
    llama = _fresh(earlier)
    _generate(llama, [1, 2, 3, 4, 5])  # a reply, which a later turn's prompt may repeat
    prefill(llama, earlier, PROMPT, CHUNK)
    assert llama.cache == _fresh(PROMPT).cache and llama.n_tokens == len(PROMPT)


def test_whole_shared_chunks_are_reused_and_the_last_token_is_always_evaluated() -> None:
    llama = _fresh([*PROMPT[:10], 7])
    llama.evaluated = 0
    prefill(llama, [*PROMPT[:10], 7], PROMPT, CHUNK)
    assert llama.evaluated == len(PROMPT) - 8  # chunks [0,4) and [4,8) kept
    llama.evaluated = 0
    prefill(llama, PROMPT, PROMPT, CHUNK)
    assert llama.evaluated == len(PROMPT) - 12  # the same prompt: its last partial chunk again


def test_a_cache_shorter_than_the_previous_prompt_is_not_trusted_beyond_its_end() -> None:
    llama = _fresh(PROMPT)
    llama.n_tokens = 5  # e.g. a generation that dropped the cache's tail
    assert reusable_prefix(PROMPT[: llama.n_tokens], PROMPT, CHUNK) == 4
    prefill(llama, PROMPT, PROMPT, CHUNK)
    assert llama.cache == _fresh(PROMPT).cache


def test_a_model_that_cannot_drop_a_suffix_evaluates_the_whole_prompt() -> None:
    llama = RecordingLlama(drops_suffix=False)
    prefill(llama, [], PROMPT, CHUNK)
    llama.evaluated = 0
    prefill(llama, PROMPT, PROMPT, CHUNK)
    assert llama.evaluated == len(PROMPT) and llama.cache == _fresh(PROMPT).cache
