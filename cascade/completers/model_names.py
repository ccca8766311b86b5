"""What litellm knows of hosted models, read without importing litellm: names, providers, key variables.

`cascade validate` must be quick and must catch `openai/gpt-4o-mnii`: importing litellm takes
5 s of CPU (13-27 s on a busy machine), while its model list is a JSON file in its package (the
cost map litellm itself reads offline, as `cascade.litellm_setup` configures it).
Names are checked only for providers with a fixed catalogue that the map covers; other providers
(Ollama, vLLM, Together's thousands of models, an `api_base` of one's own) serve names of their
own choosing. The key variables are litellm's (`litellm.validate_environment` asks for these
same names; tests/unit/test_model_names.py holds the two together).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

CHECKED_PROVIDERS = frozenset({"openai", "anthropic", "gemini", "mistral", "deepseek", "xai"})
"""Providers whose model names are checked: each serves a fixed list that litellm's map covers."""

KEY_VARIABLES: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "cohere": "COHERE_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
}
"""The environment variable litellm reads a hosted provider's key from (when no key is passed)."""

_CHAT_MODES = {"chat", "completion", "responses", None}
_MAP_FILE = "model_prices_and_context_window_backup.json"


@cache
def model_map() -> dict[str, dict[str, Any]]:
    """litellm's bundled model map (`{}` when litellm or the file is missing)."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _MAP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: entry for name, entry in data.items() if isinstance(entry, dict)}


@cache
def providers() -> frozenset[str]:
    """Every provider the map names: a model string with one of these prefixes is routable."""
    return frozenset(str(e["litellm_provider"]) for e in model_map().values() if e.get("litellm_provider"))


@cache
def provider_models(provider: str) -> frozenset[str]:
    """The chat models litellm knows for `provider`, without the provider prefix."""
    prefix = f"{provider}/"
    return frozenset(
        name.removeprefix(prefix)
        for name, entry in model_map().items()
        if entry.get("litellm_provider") == provider and entry.get("mode") in _CHAT_MODES
    )


def litellm_version() -> str:
    try:
        return version("litellm")
    except PackageNotFoundError:
        return "?"


def split_model(model: str) -> tuple[str, str] | None:
    """(provider, name) of a model string litellm routes without asking: a provider prefix it
    knows, or a bare name in its map (`gpt-4o` is OpenAI's). None: only litellm can tell."""
    prefix, slash, rest = model.partition("/")
    if slash and (prefix in providers() or prefix in KEY_VARIABLES):
        return prefix, rest
    entry = model_map().get(model)
    if entry and entry.get("litellm_provider"):
        return str(entry["litellm_provider"]), model
    return None


def nearest(name: str, candidates: frozenset[str] | set[str], n: int = 1, cutoff: float = 0.75) -> list[str]:
    """The closest candidates by spelling (difflib's ratio at least `cutoff`), closest first."""
    return difflib.get_close_matches(name, sorted(candidates), n=n, cutoff=cutoff)


def unknown_model(model: str, api_base: str | None = None) -> str | None:
    """Why `model` is not a model its provider serves (with the nearest name), or None when it is
    known, or when its names are not ours to check (an `api_base` of one's own, an open provider)."""
    found = split_model(model)
    if api_base or found is None or found[0] not in CHECKED_PROVIDERS:
        return None
    provider, name = found
    known = provider_models(provider)
    if not known or name in known:
        return None
    guess, near = nearest(name, known), nearest(name, known, 3, 0.4)
    hint = f"; did you mean '{provider}/{guess[0]}'?" if guess else ""
    if near and not guess:  # a retired model is no typo: show what is near
        hint = "; the nearest it knows: " + ", ".join(f"{provider}/{m}" for m in near)
    return f"{model!r} is not among the {provider} models litellm {litellm_version()} knows{hint}"


def suggestion(model: str) -> str:
    """'; did you mean ...?' for a model string litellm cannot route, from every name in its map."""
    guess = nearest(model, set(model_map()))
    return f"; did you mean '{guess[0]}'?" if guess else ""


def key_variable(model: str, api_base: str | None = None) -> str | None:
    """The variable a hosted model's key comes from when the config names none; None for a model
    served elsewhere (`api_base`, local) or by a provider without one key variable (Bedrock, Vertex)."""
    found = split_model(model)
    if api_base or found is None:
        return None
    return KEY_VARIABLES.get(found[0])
