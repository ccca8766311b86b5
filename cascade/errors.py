"""The error hierarchy: the developer's mistakes apart from run-time failures.

CascadeError
 ├── UserError                  a mistake in code or config; fix it, do not retry
 │    ├── ConfigError           a cascade YAML/dict that does not validate
 │    ├── UnknownPluginError    a `type:` no registered router/verifier has
 │    ├── PluginError           a plugin that breaks its contract (its factory built the wrong kind)
 │    ├── ModelNotFoundError    a model string nothing can serve (e.g. missing weights)
 │    ├── UnsupportedParamError a request parameter (logprobs) a tier's provider cannot take
 │    │    └── ToolsUnsupportedError tools asked of a cascade whose tier's provider cannot take them
 │    ├── RunNotFoundError      a run id the store does not hold (e.g. feedback on it)
 │    └── StoreError            a store that cannot be used as it is: damaged, read-only
 └── RunError                   something failed while answering a query
      ├── StoreUnavailableError the store cannot be reached now (down, frozen, locked, too slow)
      ├── ProviderError         a model call failed (after retries)
      │    ├── TransientProviderError   timeouts, 429, 5xx: worth retrying
      │    ├── PermanentProviderError   auth, bad request: never retried
      │    └── EnsembleFailedError      every member of an ensemble tier failed; carries each one's error
      ├── EmptyAnswerError      the model answered nothing usable
      ├── BudgetExceededError   the token/cost budget cannot cover the next step
      │    └── CallOverBudgetError   one model call no budget could pay for (also a PermanentProviderError)
      │         └── BudgetUnavailableError  ... because the store keeping the budget cannot be reached
      └── AllTiersFailedError   every tier failed; carries the attempts made
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class CascadeError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(CascadeError):
    """The developer's mistake: bad config, unknown plugin, missing model."""


class ConfigError(UserError):
    """A cascade config that does not validate; the message names file, line and field."""

    def __init__(self, message: str, *, source: str | None = None, problems: list[str] | None = None):
        self.source = source
        self.problems = problems or [message]
        super().__init__(message)


class UnknownPluginError(UserError):
    """A `type:` that no registered router, verifier or pre-router provides."""


class PluginError(UserError):
    """A registered plugin that breaks its contract, e.g. a verifier factory that built no verifier."""


class ModelNotFoundError(UserError):
    """A model string that nothing can serve; the message says what to install."""


class UnsupportedParamError(UserError):
    """A request parameter (`param`: tools, logprobs) that a tier's provider cannot take: refused
    before any call, since the provider would drop it and the answer would silently lack it."""

    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.param = param


class ToolsUnsupportedError(UnsupportedParamError):
    """A request with tools to a cascade that has a tier whose provider cannot call tools."""

    def __init__(self, message: str):
        super().__init__(message, param="tools")


class RunNotFoundError(UserError):
    """A run id that the store does not hold; feedback needs the id of a recorded run."""


class RateLimitError(UserError):
    """A caller over a rate limit (e.g. one API key's feedback); `retry_after_s` says when it may try again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreError(UserError):
    """A store that cannot be used as it is (a damaged file, a read-only one); the message names it and
    what to do. The operator's to fix: retrying does not help."""


class RunError(CascadeError):
    """A failure while answering a query."""


class StoreUnavailableError(RunError):
    """The store cannot be reached now: its server is down or frozen, a call timed out, a lock was held
    too long. Worth retrying later; the message never carries the store's password."""


class ProviderError(RunError):
    """A model call failed; `model` names it, the message never carries an API key."""

    def __init__(self, message: str, *, model: str = "", status: int | None = None):
        self.model = model
        self.status = status
        super().__init__(message)


class TransientProviderError(ProviderError):
    """Timeouts, rate limits and server errors: retried, then the tier falls through."""


class PermanentProviderError(ProviderError):
    """Auth or bad-request failures: not retried; the tier falls through at once."""


class EnsembleFailedError(ProviderError):
    """Every member of an ensemble tier failed (each after its own retries); `members` keeps their errors."""

    def __init__(self, members: Sequence[Any]):
        self.members = tuple(members)
        causes = "; ".join(f"{m.model}: {m.error}" for m in self.members)
        super().__init__(f"every ensemble member failed ({causes})", model=" + ".join(m.model for m in self.members))


class EmptyAnswerError(RunError):
    """The model produced no usable answer (empty or nothing the extractor accepts)."""


class BudgetExceededError(RunError):
    """The budget cannot pay for the next step."""


class CallOverBudgetError(BudgetExceededError, PermanentProviderError):
    """A model call that was not made because an account (the query's, an API key's) could not pay
    for even one completion token on top of its prompt. To the cascade it is a call that failed
    for good: not retried, the tier falls through, an ensemble member abstains. `account` names it;
    `may_fit_later` says that calls in flight hold enough that it could fit once they settle."""

    def __init__(self, message: str, *, model: str = "", account: str = "", may_fit_later: bool = False):
        super().__init__(message, model=model)
        self.account = account
        self.may_fit_later = may_fit_later


class BudgetUnavailableError(CallOverBudgetError):
    """A call not made because the store that keeps its account's budget cannot be reached: without
    it nothing says the budget can pay, so the call is refused like one over budget."""


class AllTiersFailedError(RunError):
    """Every tier failed; `attempts` keeps what was tried so nothing is lost."""

    def __init__(self, message: str, attempts: list[Any] | None = None):
        self.attempts = attempts or []
        super().__init__(message)
