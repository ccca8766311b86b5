"""cascade: send each query to the cheapest model that answers it well enough.

A cheap tier answers first; verifiers score the answer; a router accepts it or escalates
to a stronger tier with a bigger token budget. Every step records tokens, cost and latency.
"""

# First: litellm's offline price map is set before any module can import litellm.
from cascade import litellm_setup as _litellm_setup  # noqa: F401

# isort: split

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.completers import FakeCompleter, FakeReply, RetryingCompleter
    from cascade.config import CascadeConfig, TierConfig, load_config
    from cascade.engine import Cascade
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
    from cascade.store import feedback, open_store
    from cascade.types import Attempt, CascadeResult, Completion, CompletionRequest, Decision, RoutePlan, Verdict

# Public names are loaded on first use, so `cascade --help` or `import cascade.errors` does not pay
# for LangGraph and litellm (about 2 s) before anything needs them.
_HOMES = {
    "cascade.completers": ("FakeCompleter", "FakeReply", "RetryingCompleter"),
    "cascade.config": ("CascadeConfig", "TierConfig", "load_config"),
    "cascade.engine": ("Cascade",),
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
    "feedback",
    "load_config",
    "open_store",
    "register",
]
__version__ = "0.1.0"
