"""What a cap alone can save: per item, the fixed budget's reasoning tokens and whether its answer was
right. Under greedy decoding a cap cuts the same reasoning at its first `cap` tokens, and a right
answer cut before its last line is lost, so each cap's tokens and EM follow without a model call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CAPS = (128, 160, 192, 224, 256, 288, 320, 352)


def cap_table(tokens: Sequence[int], correct: Sequence[bool], target_saving: float = 0.25) -> dict[str, Any]:
    """Tokens kept and EM at each cap; the largest cap saving `target_saving` and its EM loss; what an
    oracle saves that stops every wrong answer at zero tokens (the most any budget could save at no loss
    without making the model reason differently)."""
    t, right = np.asarray(tokens, dtype=int), np.asarray(correct, dtype=bool)
    if not len(t) or not t.sum():
        return {"n": len(t)}
    em = float(right.mean())

    def at(cap: int) -> dict[str, float]:
        return {
            "tokens": round(float(np.minimum(t, cap).sum() / t.sum()), 3),
            "em": round(float((right & (t <= cap)).mean()), 3),
        }

    saving = [cap for cap in range(1, int(t.max()) + 1) if np.minimum(t, cap).sum() <= (1 - target_saving) * t.sum()]
    largest = max(saving) if saving else None
    return {
        "n": len(t),
        "em": round(em, 3),
        "right_answers_token_share": round(float(t[right].sum() / t.sum()), 3),
        "right_answer_tokens_p90": float(np.percentile(t[right], 90)) if right.any() else None,
        "oracle_saving": round(1 - float(t[right].sum() / t.sum()), 3),
        "caps": {str(cap): at(cap) for cap in CAPS},
        "largest_cap_saving_target": largest,
        "em_loss_at_that_cap": round(em - at(largest)["em"], 3) if largest else None,
    }
