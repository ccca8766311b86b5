"""What one local generation is asked (`GenerateParams`) and gives per token (`TokenLogprob`), what the
in-process provider reads beyond OpenAI's parameters, and the key it answers under.

The completer sends these to `local/` models only (no other provider knows them): an answer-complete
pattern to stop at in process, and an early-exit rule for answer probing. The provider puts what a
generation adds (why it stopped, its probes) in the response's `_hidden_params` under `HIDDEN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.config.schema import EarlyExitConfig

STOP_PATTERN = "cascade_stop_pattern"
EARLY_EXIT = "cascade_early_exit"
HIDDEN = "cascade"


@dataclass(frozen=True, slots=True)
class GenerateParams:
    """The sampling knobs the provider maps from OpenAI-style optional params."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    json_schema: str | None = None  # constrains the output to this schema (a llama.cpp grammar)
    tools: tuple[dict[str, Any], ...] = ()  # shown to the model (see cascade.local.structured)
    stop_pattern: str | None = None  # a regex: stop once the text matches it (cut after the match)
    early_exit: EarlyExitConfig | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token in OpenAI's shape: text, log-probability, bytes, best alternatives."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)
