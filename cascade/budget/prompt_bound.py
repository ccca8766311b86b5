"""A prompt-token count that is never too low, known before the call: what budgets reserve.

A budget that must never be exceeded has to reserve a call's prompt before the provider counts
it. Four characters a token is an average, not a bound (digits, code and non-Latin text run far
denser), so the bound here is structural instead:

- **Text**: byte-level BPE (OpenAI's tiktoken, Llama 3, Qwen, GPT-2 style) and SentencePiece with
  byte fallback (Llama 2, Mistral, Gemma) emit tokens that each stand for at least one byte of the
  input, so a text costs at most its UTF-8 length in tokens.
- **Chat template**: role markers, special tokens and separators per message (ChatML: 5, Llama 3:
  5, Gemma: 5) and per request (the assistant header, BOS; Qwen's default system prompt is about
  20 tokens, Llama 3.1's date preamble about 25): `PER_MESSAGE` and `PER_REQUEST` allow more.
- **Tools**: their JSON schemas count as text, plus `PER_TOOL_REQUEST` for the instructions some
  providers add around them (Anthropic's tool-use system prompt is about 350 tokens).

After every call `PromptBounds.observe` compares the provider's count with the bound; a model
whose template needs more than the allowance (a long hidden system prompt) has its allowance
raised at once and a warning is logged, so at most that one call can overrun its reservation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from cascade.types import CompletionRequest

PER_MESSAGE = 16
PER_REQUEST = 64
PER_TOOL_REQUEST = 512

log = logging.getLogger("cascade.budget")


def text_bytes(value: Any) -> int:
    """UTF-8 bytes of a message part: strings as they are, anything else as its JSON."""
    if value is None:
        return 0
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return len(value.encode("utf-8", "surrogatepass"))


def prompt_bound(request: CompletionRequest, *, extra: int = 0) -> int:
    """At least as many tokens as any byte-level or byte-fallback tokenizer counts for `request`'s prompt."""
    total = PER_REQUEST + extra
    for message in request.messages:
        total += PER_MESSAGE + sum(text_bytes(_part(message, key)) for key in ("content", "name", "tool_calls"))
    if request.tools:
        total += PER_TOOL_REQUEST + text_bytes(list(request.tools))
    if request.response_format:
        total += text_bytes(dict(request.response_format))
    return total


def _part(message: Mapping[str, Any], key: str) -> Any:
    return message.get(key)


class PromptBounds:
    """`prompt_bound` plus what each model's template has been seen to need beyond the allowance."""

    def __init__(self) -> None:
        self._extra: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def exceeded(self) -> dict[str, int]:
        """Per model, how far its prompts have gone past the structural bound (empty: never)."""
        with self._lock:
            return dict(self._extra)

    def bound(self, request: CompletionRequest) -> int:
        return prompt_bound(request, extra=self._extra.get(request.model, 0))

    def observe(self, request: CompletionRequest, bound: int, actual: int) -> None:
        """Raise the model's allowance when the provider counted more than `bound`."""
        if actual <= bound:
            return
        with self._lock:
            self._extra[request.model] = self._extra.get(request.model, 0) + (actual - bound)
        log.warning(
            "%s: prompt used %d tokens, above its bound of %d; its allowance grows by %d",
            request.model,
            actual,
            bound,
            actual - bound,
        )
