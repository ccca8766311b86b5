"""Exact Match with SQuAD-style normalisation and the cascade's own answer extractors.

Evaluation must read answers exactly as the cascade does (`cascade.io.answers`), otherwise EM would
measure the extractor instead of the model. Gold answers go through the same extractor, so
"1,000" and "1000" or "(B)" and "B" compare equal.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from cascade.io.answers import choice, first_line, number, yesno

# An item's `task` names one of these answer formats (the extractor that reads its answers); the
# query categories a features router detects (`cascade.io.features.TASKS`: multiple_choice, ...) are another thing.
ANSWER_FORMATS = ("number", "yesno", "choice", "first_line", "text")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_LETTER = re.compile(r"\b([A-J])\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation and articles, squeeze whitespace.

    Rajpurkar et al. 2016, the official `evaluate-v1.1.py` `normalize_answer`.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract(text: str | None, task: str = "first_line", letters: Sequence[str] | None = None) -> str | None:
    """The answer of format `task` in model text (None: no answer found).

    `letters` limits choice answers to the options a question offers ("I do" is not option I).
    """
    if text is None:
        return None
    if task == "number":
        return number(text)
    if task == "yesno":
        return yesno(text)
    if task == "choice":
        found = choice(text)
        if found is None or not letters or found in letters:
            return found
        return next((c for c in _LETTER.findall(text.strip().upper()[:40]) if c in letters), None)
    if task == "text":
        return text.strip() or None
    return first_line(text)


def _canonical(text: str | None, task: str) -> str | None:
    if text is None:
        return None
    if task in ("number", "yesno", "choice"):
        return extract(text, task)
    return normalize_answer(text)


def exact_match(prediction: str | None, answers: str | Sequence[str], task: str = "first_line") -> bool:
    """True when the prediction's extracted answer equals any accepted alias after normalisation."""
    golds = [answers] if isinstance(answers, str) else list(answers)
    predicted = _canonical(extract(prediction, task), task)
    if not predicted:
        return False
    return any(predicted == _canonical(gold, task) for gold in golds)
