"""The provider's reasoning knob for a token budget, where litellm passes one.

- `reasoning_effort` (OpenAI's o-series and gpt-5, Gemini, DeepSeek and others litellm maps it for):
  `low` / `medium` / `high` by the budget's share of the tier's `max_tokens`;
- `thinking` (Anthropic's extended thinking): `{"type": "enabled", "budget_tokens": B}`, with the
  completion cap above it by `answer_tokens` (Anthropic counts thinking in `max_tokens`), B at least
  Anthropic's minimum of 1024 (a smaller budget leaves thinking off, and says so), and temperature 1
  (Anthropic refuses any other with thinking on);
- `none`: models without a knob (local models, and any litellm does not list as reasoning); a
  budget sentence in the prompt and the cap are what they get.

`auto` asks litellm's model map (`supports_reasoning`) and the provider: `thinking` for Anthropic,
`reasoning_effort` for every other reasoning model, `none` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Knob = Literal["auto", "reasoning_effort", "thinking", "none"]
THINKING_MIN = 1024


def knob_for(model: str | None, choice: Knob) -> Literal["reasoning_effort", "thinking", "none"]:
    """The knob a tier's model takes (`choice` unless it is `auto`)."""
    if choice != "auto":
        return choice
    if model is None or model.startswith("local/"):
        return "none"
    from cascade.completers.litellm_setup import import_litellm

    litellm = import_litellm()
    try:
        if not litellm.supports_reasoning(model=model):
            return "none"
        _, provider, _, _ = litellm.get_llm_provider(model=model)
    except Exception:  # a model litellm cannot place: no knob, the cap still holds
        return "none"
    return "thinking" if provider == "anthropic" else "reasoning_effort"


@dataclass(frozen=True)
class Knobs:
    """How a budget becomes the knob's parameters (see the module)."""

    knob: Literal["reasoning_effort", "thinking", "none"]
    effort_shares: tuple[float, float] = (0.25, 0.5)  # up to these shares of max_tokens: low, medium
    answer_tokens: int = 1024

    def params(self, budget: int, cap: int, ceiling: int) -> tuple[dict[str, Any], int, str]:
        """(the request's extra parameters, its completion cap, what was set) for `budget` tokens;
        `ceiling` is the tier's `max_tokens`, which the cap never passes."""
        if self.knob == "reasoning_effort":
            share = budget / ceiling
            effort = "low" if share <= self.effort_shares[0] else "medium" if share <= self.effort_shares[1] else "high"
            return {"reasoning_effort": effort}, cap, f"reasoning_effort {effort}"
        if self.knob == "thinking":
            room = min(ceiling, budget + self.answer_tokens)
            thinking = min(budget, room - 1)
            if thinking < THINKING_MIN:
                return {}, cap, f"thinking off: {thinking} tokens is under Anthropic's minimum of {THINKING_MIN}"
            params = {"thinking": {"type": "enabled", "budget_tokens": thinking}, "temperature": 1.0}
            return params, room, f"thinking {thinking} tokens (at temperature 1, the only one it allows)"
        return {}, cap, ""
