"""Reading answers out of model text, per answer format.

The same extractors serve the cascade (the answer a tier returns, what samples vote on)
and evaluation (what is compared with the gold answer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from cascade.config.schema import AnswerConfig

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_MARKED = re.compile(
    r"####\s*(-?[\d,.$]+)"
    r"|\\boxed\{\s*\\?\$?\s*(-?\d[\d,]*(?:\.\d+)?)"
    r"|\banswer(?:\s+is)?\s*[:=]?\s*\**\s*\$?(-?\d[\d,]*(?:\.\d+)?)",
    re.IGNORECASE,
)
_ANSWER_MARKER = re.compile(r"\banswer(?:\s+is\s*:?|\s*:)\**", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_LATEX_TEXT = re.compile(r"\\text\{([^{}]*)\}")
_WRAPPERS = re.compile(r"\\[()\[\]]|[*$`\"{}]")
_YES = {"yes", "true", "y", "correct"}
_NO = {"no", "false", "n", "incorrect"}
_CHOICE = re.compile(r"\b([A-J])\b")
_NOISE = re.compile(r"(?!(?<=\d)\.(?=\d))(?!-(?=\d))[\W_]")
_LEAD_IN = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:\-]?\s*", re.IGNORECASE)
# A closing sentence that names what was asked and states it: "Therefore, the sentiment of this
# review is negative." The subject must be a definite description (the/this/its ... or "it"), so
# "Paris is the capital of France." is not read as "the capital of France".
_CLOSING = re.compile(
    r"^(?:(?:so|thus|therefore|hence|overall|finally|in (?:conclusion|summary))\b[\s,]*)?"
    r"(?:the|this|that|these|its|their|his|her|our|your|my|it)\b[^.!?:;]*?"
    r"\b(?:is|are|was|were|would be|will be)\s*:?\s+(?P<value>.+)$",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r",\s|;|\s(?:because|since|as|which)\s", re.IGNORECASE)


def normalise(answer: str) -> str:
    """Lowercase, with whitespace and punctuation removed (numbers keep their sign and decimal point).

    Two answers are the same when their normal forms are equal: cross-tier agreement and ensemble
    votes compare answers this way.
    """
    return _NOISE.sub("", answer.lower())


def first_line(text: str) -> str | None:
    for line in text.strip().splitlines():
        line = _LEAD_IN.sub("", line.strip()).strip()
        if line:
            return line.rstrip(".").strip() or None
    return None


def number(text: str) -> str | None:
    """The number the text marks as its answer, else the last number in it, canonicalised.

    Reasoning often restates other numbers after its conclusion ("The answer is 6. Joan gave 2
    away."), so an explicit marker wins over position: GSM8K's `#### N`, LaTeX `\\boxed{N}`, or
    "answer is N" / "Answer: N" (the last marker, when there are several).
    """
    marked = [next(g for g in m.groups() if g) for m in _MARKED.finditer(text)]
    found = marked or _NUMBER.findall(text)
    if not found:
        return None
    raw = found[-1].replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(raw)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def final(text: str) -> str | None:
    """The conclusion of a reasoning text: what follows its last "answer is" / "Answer:" up to the
    end of that sentence, else its last `\\boxed{}`, else its last line, or what that line's closing
    sentence states ("Thus the sentiment is negative." gives "negative").

    For tiers that think before answering; LaTeX wrappers and emphasis are removed, so
    "The answer is \\(\\boxed{18}\\)." gives "18" and "**Answer:** Paris" gives "Paris".
    """
    text = _LATEX_TEXT.sub(r"\1", text)
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        rest = text[markers[-1].end() :].strip()
        line = rest.splitlines()[0] if rest else ""
        boxed = _BOXED.search(line)
        return _unwrap(boxed.group(1) if boxed else _SENTENCE_END.split(line)[0])
    boxed_all = _BOXED.findall(text)
    if boxed_all:
        return _unwrap(boxed_all[-1])
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _unwrap(closing_value(lines[-1]) or lines[-1]) if lines else None


def closing_value(line: str) -> str | None:
    """What a closing sentence states ("The sentiment of this review is negative." gives
    "negative"), up to the end of its clause; None when the line's last sentence is not one."""
    sentences = [s for s in _SENTENCE_END.split(_WRAPPERS.sub("", line).strip()) if s.strip()]
    match = _CLOSING.match(sentences[-1].strip()) if sentences else None
    return _CLAUSE_END.split(match.group("value"), maxsplit=1)[0] if match else None


def _unwrap(answer: str) -> str | None:
    answer = _WRAPPERS.sub("", answer).strip().rstrip(".").strip()
    return answer or None


def yesno(text: str) -> str | None:
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _YES:
            return "yes"
        if word in _NO:
            return "no"
    return None


def choice(text: str, choices: list[str] | None = None) -> str | None:
    """A choice letter, or the choice whose text the answer starts with."""
    stripped = text.strip()
    if choices:
        lowered = stripped.lower()
        for option in choices:
            if lowered.startswith(option.lower()):
                return option
    match = _CHOICE.search(stripped.upper()[:40])
    return match.group(1) if match else None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def extractor(config: AnswerConfig) -> Callable[[str], str | None]:
    """The function that reads an answer of `config.format` from model text (None: no answer)."""
    fmt = config.format
    if fmt == "text":
        return lambda text: text.strip() or None
    if fmt == "first_line":
        return first_line
    if fmt == "number":
        return number
    if fmt == "final":
        return final
    if fmt == "yesno":
        return yesno
    if fmt == "choice":
        return lambda text: choice(text, config.choices)
    pattern = _compiled(config.pattern or "")

    def by_regex(text: str) -> str | None:
        match = pattern.search(text)
        if not match:
            return None
        return (match.group(1) if match.groups() else match.group(0)).strip() or None

    return by_regex


# A complete answer of each format followed by something that cannot continue it.
# first_line: the line is done, or it opened with a yes/no followed by punctuation ("No, there
# is not..." is answered at "No") or with an option label ("C) rocks" is answered at "C").
_COMPLETE = {
    "number": r"-?\$?\d[\d,]*(?:\.\d+)?(?=[^\d.,])",
    "yesno": r"\b(?:yes|no|true|false)\b(?=\W)",
    "choice": r"\b[A-J]\b(?=[\s).:,])",
    "first_line": r"\S[^\n]*\n|^\s*(?:yes|no|true|false)\b(?=\s*[,.;:!])|^\s*(?:\([A-J]\)|[A-J](?=\)))",
    "final": r"\banswer is\b[^\n]*?(?:\.(?=\s)|\n)",
}


def completion_pattern(config: AnswerConfig) -> str | None:
    """A regex that matches once an answer of this format is fully generated, or None."""
    if not config.stop_when_complete:
        return None
    if config.format == "regex":
        return config.pattern
    return _COMPLETE.get(config.format)


def answer_tokens(tokens: Sequence[str], answer: str, *, last: bool = False) -> range:
    """The positions of the tokens that spell `answer` in the text they make up (its first occurrence,
    or with `last` its last: where a reasoning states its conclusion); all of them when the answer is
    not written there as such (a normalised number, tool calls)."""
    text = "".join(tokens)
    start = text.rfind(answer) if last else text.find(answer)
    if start < 0 or not answer:
        return range(len(tokens))
    end, offset, first, stop = start + len(answer), 0, None, len(tokens)
    for i, token in enumerate(tokens):
        if first is None and offset + len(token) > start:
            first = i
        offset += len(token)
        if offset >= end:
            stop = i + 1
            break
    return range(first if first is not None else 0, stop)


def openai_logprobs(
    tokens: Sequence[str],
    logprobs: Sequence[float],
    top: Sequence[Sequence[tuple[str, float]]] | None,
    positions: range,
    alternatives: int,
) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content` entries of the tokens at `positions`, with `alternatives` each."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return [
        {
            **entry(tokens[i], logprobs[i]),
            "top_logprobs": [entry(t, lp) for t, lp in (top[i] if top and i < len(top) else ())][:alternatives],
        }
        for i in positions
    ]
