"""The core's completers as plugins: `completer: {type: litellm}` (the default) or `{type: fake, ...}`.

Registered like routers and verifiers, so a package can add its own completer under a `type:` name;
the registry loads this module by name. litellm is only imported when a litellm completer is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config.schema import CascadeConfig, Regex, Strict
from cascade.errors import ConfigError
from cascade.protocols import Completer
from cascade.registry import BuildContext, register

FakeError = Literal["timeout", "rate_limit", "server", "auth", "bad_request"]


class LiteLLMCompleterConfig(Strict):
    """The real providers; nothing to set (endpoints, keys and prices are the tiers')."""

    @model_validator(mode="before")
    @classmethod
    def _no_script(cls, data: Any) -> Any:
        if isinstance(data, dict) and ({"replies", "by_prompt", "by_prompt_file"} & set(data)):
            raise ValueError("'replies' and 'by_prompt' script the fake completer; type is 'litellm'")
        return data


class FakeToolCallConfig(Strict):
    """A tool call a scripted reply makes: the function's name and its arguments."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class FakeReplyConfig(Strict):
    """A scripted reply of the fake completer (see `cascade.completers.fake`).

    `cost_usd` is the call's cost as given (e.g. a logged one), instead of tokens times prices.
    """

    text: str = ""
    match: Regex | None = None
    logprobs: list[float] | None = None
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    delay_s: float = Field(default=0.0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    error: FakeError | None = None
    times: int | None = Field(default=None, ge=1)
    tool_calls: list[FakeToolCallConfig] | None = None


class FakePromptReplyConfig(Strict):
    """A reply for one exact prompt in a fake's `by_prompt` table: used every time, so no match or times."""

    text: str = ""
    logprobs: list[float] | None = None
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    delay_s: float = Field(default=0.0, ge=0)
    error: FakeError | None = None


class FakeCompleterConfig(Strict):
    """`fake` answers from a script, offline.

    A fake's `replies` are tried in order per model (regex `match`, `times`); `by_prompt` maps a model
    to a table from the exact prompt (the last user message as sent) to its reply. A model may have
    both: its table is looked up first. `by_prompt_file` names a JSON file (relative to the config)
    holding more such tables, for replaying a whole log (a config file is capped at 8 MB).
    """

    replies: dict[str, list[FakeReplyConfig]] = Field(default_factory=dict)
    by_prompt: dict[str, dict[str, FakePromptReplyConfig]] = Field(default_factory=dict)
    by_prompt_file: str | None = None

    @field_validator("by_prompt", mode="before")
    @classmethod
    def _reply_strings(cls, value: Any) -> Any:
        """A table reply may be just its text."""
        if not isinstance(value, dict):
            return value
        return {
            model: {p: {"text": r} if isinstance(r, str) else r for p, r in table.items()}
            if isinstance(table, dict)
            else table
            for model, table in value.items()
        }

    @classmethod
    def of(cls, config: CascadeConfig) -> FakeCompleterConfig:
        """The fake script of a config whose `completer:` is `type: fake`."""
        return cls.model_validate(config.completer.params())


@register("completer", "litellm", LiteLLMCompleterConfig)
def build_litellm(config: LiteLLMCompleterConfig, ctx: BuildContext) -> Completer:
    from cascade.completers.litellm_completer import LiteLLMCompleter

    return LiteLLMCompleter()


@register("completer", "fake", FakeCompleterConfig)
def build_fake(config: FakeCompleterConfig, ctx: BuildContext) -> FakeCompleter:
    script = {model: [_reply(reply) for reply in replies] for model, replies in config.replies.items()}
    by_prompt = dict(config.by_prompt)
    if config.by_prompt_file is not None:
        by_prompt = {**_tables_file(config.by_prompt_file, ctx.config._source), **by_prompt}
    tables = {model: {p: _reply(r) for p, r in table.items()} for model, table in by_prompt.items()}
    return FakeCompleter(script, by_prompt=tables)


def _tables_file(name: str, source: str | None) -> dict[str, dict[str, FakePromptReplyConfig]]:
    """The `by_prompt` tables of a JSON file, resolved beside the config; a ConfigError naming it otherwise."""
    path = Path(name)
    if not path.is_absolute() and source and not source.startswith("<"):
        path = Path(source).resolve().parent / path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return FakeCompleterConfig.model_validate({"by_prompt": raw}).by_prompt
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"completer.by_prompt_file {path}: {exc}", source=source) from None


def make_completer(config: CascadeConfig) -> Completer:
    """The completer `config` asks for (`completer:`), errors located in its file."""
    return BuildContext(config).completer(config.completer)


def _reply(reply: FakeReplyConfig | FakePromptReplyConfig) -> FakeReply:
    return FakeReply(**reply.model_dump(exclude_none=True))
