"""Query features and task/answer-form detection: pure, deterministic, cheap.

The pre-routers match rules on `query_features`, the learned pre-router and the correctness scorer
train on them, and the scorer reads `answer_form`; all of them live in the core so that training
(offline, on logs) and inference (live, in a plugin) compute exactly the same thing.
"""

from __future__ import annotations

import re

Feature = float | str | bool
# Checked in this order; the first that matches is the query's task.
TASKS = ("code", "multiple_choice", "yesno", "reasoning_long", "arithmetic", "factoid", "other")
LONG_WORDS = 60

_CODE = re.compile(
    r"```|\bdef\s+\w+\s*\(|\bclass\s+\w+\s*[:(]|^\s*(?:import|from)\s+\w+|\bc\+\+"
    r"|\b(?:python|javascript|typescript|rust|golang|sql|bash)\b"
    r"|\b(?:write|implement|debug|refactor)\b.{0,40}?\b(?:function|program|script|code|method)\b",
    re.IGNORECASE | re.MULTILINE,
)
_AUX = r"(?:is|are|was|were|am|do|does|did|can|could|will|would|should|shall|has|have|had|may|might|must)"
# A question that opens with an auxiliary verb, at the start of a sentence or after a label
# ("Question: is it ...?", the way reading-comprehension prompts put it after their passage).
_YESNO_QUESTION = re.compile(rf"(?:^|[.!?\n:]\s*)({_AUX})\b[^.?!\n]*\?", re.IGNORECASE)
_YESNO_CUE = re.compile(r"\b(?:yes or no|true or false)\b", re.IGNORECASE)
_REASONING = re.compile(
    r"\b(?:explain (?:why|how)|step[- ]by[- ]step|prove that|show that|justify|derive)\b", re.IGNORECASE
)
_MATH_OP = re.compile(
    r"\d\s*(?:\*\*|[-+*/×÷^=%])\s*\(?\s*\d"
    r"|\b(?:plus|minus|times|divided by|multiplied by|squared|cubed|square root)\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\b(?:how (?:many|much)|total|sum|product|difference|average|percent|each|per)\b", re.IGNORECASE
)
# A word problem: at least two quantities (numerals or number words) and a question that asks for a
# quantity. Checked before length, so a long word problem is arithmetic, not `reasoning_long`.
_NUMBER_WORD = re.compile(
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred"
    r"|thousand|million|dozen|twice|thrice|half|double|triple)\b",
    re.IGNORECASE,
)
_ASKS_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|far|tall|old|often|fast|big|heavy|high|wide|deep|early|late)\b"
    r"|\b(?:calculate|compute|determine)\b"
    r"|\bwhat (?:amount|percent|percentage|fraction|number)\b"
    r"|\bwhat (?:is|was|will be|are|were) the (?:total|sum|difference|product|average|percentage|cost|price"
    r"|amount|number|value|area|perimeter|speed|rate|share|ratio)\b",
    re.IGNORECASE,
)
_WH = re.compile(r"\b(what|who|whom|whose|when|where|which|why|how)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


def query_features(query: str) -> dict[str, Feature]:
    """Cheap, deterministic features of a query: size, numbers, question shape and task."""
    words = len(query.split())
    return {
        "chars": len(query),
        "words": words,
        "sentences": max(1, len(_SENTENCE_END.findall(query.strip()))) if query.strip() else 0,
        "digits": sum(ch.isdigit() for ch in query),
        "numbers": len(_NUMBER.findall(query)),
        "has_math": _MATH_OP.search(query) is not None,
        "has_question_mark": "?" in query,
        "question_word": question_word(query),
        "task": task_of(query, words),
    }


def question_word(query: str) -> str:
    """The earliest wh-word or yes/no-question auxiliary ('what', 'is', ...), else ''."""
    found = [m for m in (_WH.search(query), _YESNO_QUESTION.search(query)) if m]
    return min(found, key=lambda m: m.start(1)).group(1).lower() if found else ""


def task_of(query: str, words: int | None = None) -> str:
    """The first task in `TASKS` order whose patterns match the query."""
    words = len(query.split()) if words is None else words
    if _CODE.search(query):
        return "code"
    if _has_choices(query):
        return "multiple_choice"
    if _YESNO_QUESTION.search(query) or _YESNO_CUE.search(query):
        return "yesno"
    if is_word_problem(query):
        return "arithmetic"
    if words >= LONG_WORDS or _REASONING.search(query):
        return "reasoning_long"
    if _MATH_OP.search(query) or (_QUANTITY.search(query) and any(ch.isdigit() for ch in query)):
        return "arithmetic"
    if _WH.search(query) or "?" in query:
        return "factoid"
    return "other"


def is_word_problem(query: str) -> bool:
    """Two or more quantities and a question asking for a quantity ("how many", "calculate", ...)."""
    quantities = len(_NUMBER.findall(query)) + len(_NUMBER_WORD.findall(query))
    return quantities >= 2 and _ASKS_QUANTITY.search(query) is not None


def _choice_label(letter: str) -> re.Pattern[str]:
    """`(A)`, `A)` anywhere, or `A.` / `A:` at the start of a line, followed by option text."""
    return re.compile(rf"(?:\({letter}\)|(?<![\w(]){letter}\)|^[ \t]*{letter}[.:])[ \t]*\S", re.MULTILINE)


_CHOICE_A, _CHOICE_B = _choice_label("A"), _choice_label("B")


def _has_choices(query: str) -> bool:
    first = _CHOICE_A.search(query)
    return first is not None and _CHOICE_B.search(query, first.end()) is not None


def length_scale(words: int, base_words: int = 50, max_scale: float = 4.0) -> float:
    """Budget multiplier for a query: 1 up to `base_words`, then proportional, capped at `max_scale`."""
    return min(max_scale, max(1.0, words / base_words))


# Forms an answer can take, checked in this order (see `answer_form`).
ANSWER_FORMS = ("none", "code", "yesno", "choice", "number", "short_text", "long_text")
SHORT_TEXT_WORDS = 12
_YESNO_ANSWER = re.compile(r"^\W*(?:yes|no|true|false)\b", re.IGNORECASE)
_CHOICE_ANSWER = re.compile(r"^\W*\(?([A-J])\)?(?:[.:)\s]|$)")
_NUMBER_ANSWER = re.compile(r"^\W*-?\$?\d[\d,]*(?:\.\d+)?\s*%?\W*$")
_CODE_ANSWER = re.compile(
    r"```|^\s*(?:def|class|import|from|function|public|#include)\b|\breturn\b.*[;)]\s*$|[{};]\s*$",
    re.MULTILINE,
)


def answer_form(answer: str | None, raw: str | None = None) -> str:
    """What an answer looks like: 'none', 'code', 'yesno', 'choice', 'number', 'short_text' or 'long_text'.

    `answer` is the extracted answer, `raw` the model's whole text (default: the answer). Code is
    recognised in the raw text (a fenced block, a definition, statement endings); the other forms
    in the extracted answer.
    """
    text = (answer or "").strip()
    if not text:
        return "none"
    if _CODE_ANSWER.search(raw if raw is not None else text):
        return "code"
    if _YESNO_ANSWER.match(text) and len(text.split()) <= 6:
        return "yesno"
    if _CHOICE_ANSWER.match(text) and len(text) <= 4:
        return "choice"
    if _NUMBER_ANSWER.match(text):
        return "number"
    return "short_text" if len(text.split()) <= SHORT_TEXT_WORDS else "long_text"
