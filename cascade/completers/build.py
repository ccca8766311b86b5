"""Choose the completer a config asks for; litellm is only imported when it is used."""

from __future__ import annotations

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config import CompleterConfig, FakePromptReplyConfig, FakeReplyConfig
from cascade.protocols import Completer


def make_completer(config: CompleterConfig) -> Completer:
    if config.type == "fake":
        script = {model: [_reply(reply) for reply in replies] for model, replies in config.replies.items()}
        tables = {model: {p: _reply(r) for p, r in table.items()} for model, table in config.by_prompt.items()}
        return FakeCompleter(script, by_prompt=tables)
    from cascade.completers.litellm_completer import LiteLLMCompleter

    return LiteLLMCompleter()


def _reply(reply: FakeReplyConfig | FakePromptReplyConfig) -> FakeReply:
    return FakeReply(**reply.model_dump(exclude_none=True))
