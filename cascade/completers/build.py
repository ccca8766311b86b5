"""Choose the completer a config asks for; litellm is only imported when it is used."""

from __future__ import annotations

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config import CompleterConfig
from cascade.protocols import Completer


def make_completer(config: CompleterConfig) -> Completer:
    if config.type == "fake":
        script = {
            model: [FakeReply(**reply.model_dump(exclude_none=True)) for reply in replies]
            for model, replies in config.replies.items()
        }
        return FakeCompleter(script)
    from cascade.completers.litellm_completer import LiteLLMCompleter

    return LiteLLMCompleter()
