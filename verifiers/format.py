"""Format rules: an answer that is not even the right shape is wrong, whatever else says.

Cheap and exact, useful as an ensemble member (`mode: all`) that vetoes malformed answers:
a regex the answer must fullmatch, a kind (number, yes/no, choice, non-empty), a length limit.
Confidence is 1.0 when every configured rule passes, else 0.0; the reason names the failed rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.config.schema import Regex
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.types import Verdict

Kind = Literal["number", "yesno", "choice", "nonempty"]
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_LETTER = re.compile(r"[A-Ja-j]")
_YESNO = {"yes", "no", "true", "false"}


class FormatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: Regex | None = None
    kind: Kind | None = None
    choices: list[str] | None = None
    max_length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _choices_need_kind(self) -> FormatConfig:
        if self.choices is not None and self.kind != "choice":
            raise ValueError("choices only apply with kind: choice")
        return self


def kind_check(kind: Kind, choices: Sequence[str] | None = None) -> Callable[[str], bool]:
    """A predicate that says whether an answer is of `kind` (choices: the allowed options)."""
    if kind == "number":
        return lambda answer: _NUMBER.fullmatch(answer.strip()) is not None
    if kind == "yesno":
        return lambda answer: answer.strip().lower() in _YESNO
    if kind == "choice" and choices:
        allowed = {c.strip().lower() for c in choices}
        return lambda answer: answer.strip().lower() in allowed
    if kind == "choice":
        return lambda answer: _LETTER.fullmatch(answer.strip()) is not None
    return lambda answer: bool(answer.strip())


class FormatVerifier:
    """Checks the answer against each configured rule in turn; the first failure is the reason."""

    def __init__(
        self,
        pattern: str | None = None,
        kind: Kind | None = None,
        choices: Sequence[str] | None = None,
        max_length: int | None = None,
    ) -> None:
        self.rules: list[tuple[str, Callable[[str], bool]]] = []
        if pattern is not None:
            compiled = re.compile(pattern)
            self.rules.append((f"does not match /{pattern}/", lambda a: compiled.fullmatch(a) is not None))
        if kind is not None:
            self.rules.append((f"is not a {kind} answer", kind_check(kind, choices)))
        if max_length is not None:
            self.rules.append((f"is longer than {max_length} characters", lambda a: len(a) <= max_length))

    async def verify(self, ctx: VerifyContext) -> Verdict:
        answer = ctx.answer
        if answer is None:
            return Verdict(0.0, "format: no answer")
        for failure, check in self.rules:
            if not check(answer):
                return Verdict(0.0, f"format: answer {failure}", details={"failed": failure})
        return Verdict(1.0, f"format: answer passes {len(self.rules)} rule(s)")


@register("verifier", "format", FormatConfig)
def build_format(config: FormatConfig, ctx: BuildContext) -> FormatVerifier:
    return FormatVerifier(config.pattern, config.kind, config.choices, config.max_length)
