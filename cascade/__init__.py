"""cascade: send each query to the cheapest model that answers it well enough.

A cheap tier answers first; verifiers score the answer; a router accepts it or escalates
to a stronger tier with a bigger token budget. Every step records tokens, cost and latency.
"""

# First: litellm's offline price map is set before any module can import litellm.
from cascade.completers import litellm_setup as _litellm_setup  # noqa: F401

# isort: split

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cascade._version import __version__

if TYPE_CHECKING:
    from cascade.completers.fake import FakeCompleter, FakeReply
    from cascade.completers.retrying import RetryingCompleter
    from cascade.config.schema import CascadeConfig, TierConfig, load_config
    from cascade.errors import (
        AllTiersFailedError,
        BudgetExceededError,
        CascadeError,
        ConfigError,
        EmptyAnswerError,
        ModelNotFoundError,
        PermanentProviderError,
        ProviderError,
        RunError,
        RunNotFoundError,
        TransientProviderError,
        UnknownPluginError,
        UserError,
    )
    from cascade.protocols import Completer, DecideContext, PreRouter, Router, Verifier, VerifyContext
    from cascade.registry import register
    from cascade.run.engine import Cascade
    from cascade.store import feedback, open_store
    from cascade.types import Attempt, CascadeResult, Completion, CompletionRequest, Decision, RoutePlan, Verdict

# Public names are loaded on first use, so `cascade --help` or `import cascade.errors` does not pay
# for LangGraph and litellm (about 2 s) before anything needs them.
_HOMES = {
    "cascade.completers.fake": ("FakeCompleter", "FakeReply"),
    "cascade.completers.retrying": ("RetryingCompleter",),
    "cascade.config.schema": ("CascadeConfig", "TierConfig", "load_config"),
    "cascade.run.engine": ("Cascade",),
    "cascade.errors": (
        "AllTiersFailedError",
        "BudgetExceededError",
        "CascadeError",
        "ConfigError",
        "EmptyAnswerError",
        "ModelNotFoundError",
        "PermanentProviderError",
        "ProviderError",
        "RunError",
        "RunNotFoundError",
        "TransientProviderError",
        "UnknownPluginError",
        "UserError",
    ),
    "cascade.protocols": ("Completer", "DecideContext", "PreRouter", "Router", "Verifier", "VerifyContext"),
    "cascade.registry": ("register",),
    "cascade.store": ("feedback", "open_store"),
    "cascade.types": (
        "Attempt",
        "CascadeResult",
        "Completion",
        "CompletionRequest",
        "Decision",
        "RoutePlan",
        "Verdict",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'cascade' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AllTiersFailedError",
    "Attempt",
    "BudgetExceededError",
    "Cascade",
    "CascadeConfig",
    "CascadeError",
    "CascadeResult",
    "Completer",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "DecideContext",
    "Decision",
    "EmptyAnswerError",
    "FakeCompleter",
    "FakeReply",
    "ModelNotFoundError",
    "PermanentProviderError",
    "PreRouter",
    "ProviderError",
    "RetryingCompleter",
    "RoutePlan",
    "Router",
    "RunError",
    "RunNotFoundError",
    "TierConfig",
    "TransientProviderError",
    "UnknownPluginError",
    "UserError",
    "Verdict",
    "Verifier",
    "VerifyContext",
    "__version__",
    "feedback",
    "load_config",
    "open_store",
    "register",
]
