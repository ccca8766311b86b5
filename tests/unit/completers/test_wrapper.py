"""Completers that wrap completers forward what they do not override, the optional capabilities too,
so callers ask the outermost one (no search down a chain for a method by name)."""

from __future__ import annotations

from cascade.completers.fake import FakeCompleter
from cascade.completers.wrapper import WrapperCompleter, param_problem, prices_known, prompt_tokens_known
from cascade.types import Completion, CompletionRequest

REQUEST = CompletionRequest(model="fake/x", messages=[{"role": "user", "content": "2+2?"}], max_tokens=8)


class Priced:
    async def complete(self, request: CompletionRequest) -> Completion:
        return Completion("4", request.model, 1, 1)

    def unit_prices(self, request: CompletionRequest) -> tuple[float, float] | None:
        return (1e-6, 2e-6)

    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None:
        return f"{model} takes no {param}"


class Plain:
    async def complete(self, request: CompletionRequest) -> Completion:
        return Completion("4", request.model, 1, 1)


def test_capabilities_pass_through_any_number_of_wrappers() -> None:
    wrapped = WrapperCompleter(WrapperCompleter(WrapperCompleter(Priced())))
    assert prices_known(wrapped, REQUEST) == (1e-6, 2e-6)
    assert param_problem(wrapped, "fake/x", None, "tools") == "fake/x takes no tools"
    assert param_problem(wrapped, "fake/x", None, "logprobs") == "fake/x takes no logprobs"
    fake = FakeCompleter({"fake/x": "4"})
    assert prompt_tokens_known(WrapperCompleter(fake), REQUEST) == fake.count_prompt_tokens(REQUEST) is not None


def test_a_completer_without_a_capability_answers_none() -> None:
    wrapped = WrapperCompleter(Plain())
    assert prices_known(wrapped, REQUEST) is None
    assert prompt_tokens_known(wrapped, REQUEST) is None
    assert param_problem(wrapped, "fake/x", None, "tools") is None


async def test_a_wrapper_forwards_the_call() -> None:
    assert (await WrapperCompleter(Plain()).complete(REQUEST)).text == "4"
