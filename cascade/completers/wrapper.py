"""The base of completers that wrap a completer (retries, budgets, the output cache, cool-downs).

A wrapper forwards what it does not override, the optional capabilities included (counting a
prompt's tokens, a model's prices, whether it takes tools or logprobs), so a caller asks the outermost
completer and never walks a chain of wrappers looking for a method by name (as pydantic-ai's
`WrapperModel` does for models).
"""

from __future__ import annotations

from cascade.protocols import Completer, PricedCompleter, PromptCounter, ToolAwareCompleter
from cascade.types import Completion, CompletionRequest


class WrapperCompleter:
    """A completer around `inner`: every method forwards to it until a subclass overrides it."""

    def __init__(self, inner: Completer) -> None:
        self.inner = inner

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.inner.complete(request)

    def count_prompt_tokens(self, request: CompletionRequest) -> int | None:
        return prompt_tokens_known(self.inner, request)

    def unit_prices(self, request: CompletionRequest) -> tuple[float, float] | None:
        return prices_known(self.inner, request)

    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None:
        return param_problem(self.inner, model, api_base, param)


def prompt_tokens_known(completer: Completer, request: CompletionRequest) -> int | None:
    """The prompt tokens `request` will report, when `completer` can tell before the call."""
    return completer.count_prompt_tokens(request) if isinstance(completer, PromptCounter) else None


def prices_known(completer: Completer, request: CompletionRequest) -> tuple[float, float] | None:
    """USD per prompt and completion token of the request's model, when `completer` prices it."""
    return completer.unit_prices(request) if isinstance(completer, PricedCompleter) else None


def param_problem(completer: Completer, model: str, api_base: str | None, param: str) -> str | None:
    """Why `model` cannot take OpenAI's `param` (tools, logprobs) through `completer` (None: it can,
    or the completer cannot tell)."""
    return completer.param_problem(model, api_base, param) if isinstance(completer, ToolAwareCompleter) else None
