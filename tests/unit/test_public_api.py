"""What `import cascade` exports: a deliberate list, each name real, and the import itself cheap."""

from __future__ import annotations

import subprocess
import sys

import cascade

PUBLIC = {
    "AllTiersFailedError", "Attempt", "BudgetExceededError", "Cascade", "CascadeConfig", "CascadeError",
    "CascadeResult", "Completer", "Completion", "CompletionRequest", "ConfigError", "DecideContext", "Decision",
    "EmptyAnswerError", "FakeCompleter", "FakeReply", "ModelNotFoundError", "PermanentProviderError", "PreRouter",
    "ProviderError", "RetryingCompleter", "RoutePlan", "Router", "RunError", "RunNotFoundError", "TierConfig",
    "TransientProviderError", "UnknownPluginError", "UserError", "Verdict", "Verifier", "VerifyContext",
    "__version__", "feedback", "load_config", "open_store", "register",
}  # fmt: skip


def test_the_public_surface_is_the_declared_one() -> None:
    """A name added to or dropped from `cascade.__all__` is a change to the API: update PUBLIC with it."""
    assert set(cascade.__all__) == PUBLIC
    assert len(cascade.__all__) == len(PUBLIC)


def test_every_exported_name_resolves_and_says_what_it_is() -> None:
    for name in cascade.__all__:
        value = getattr(cascade, name)
        assert name == "__version__" or value.__doc__, f"cascade.{name} has no docstring"
    assert set(cascade.__all__) <= set(dir(cascade))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        cascade.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("cascade.NoSuchThing resolved")


def test_importing_cascade_loads_neither_litellm_nor_langgraph() -> None:
    """`cascade --help` and `import cascade.errors` must not pay seconds for the heavy libraries."""
    code = "import sys, cascade; print(sorted(m for m in ('litellm', 'langgraph', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
