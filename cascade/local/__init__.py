"""Local GGUF models from PyPI packages, served through litellm as `local/<name-or-path>`.

Importing this package is cheap (no litellm, no llama.cpp); `register_local_provider()`
pulls in the provider only when a cascade actually uses local models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cascade.local.catalog import (
    MODELS,
    ModelSpec,
    ModelStatus,
    list_models,
    model_params,
    models_table,
    resolve_model,
)

if TYPE_CHECKING:
    from cascade.local.provider import LocalLLM

__all__ = [
    "MODELS",
    "ModelSpec",
    "ModelStatus",
    "list_models",
    "model_params",
    "models_table",
    "register_local_provider",
    "resolve_model",
]


def register_local_provider() -> LocalLLM:
    """Install the `local` litellm provider (idempotent); see cascade.local.provider."""
    from cascade.local.provider import register_local_provider as register

    return register()
