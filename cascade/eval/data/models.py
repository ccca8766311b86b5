"""Log model names as litellm model strings, and per-token prices fitted to a log's costs.

RouterBench and RouteLLM name models their own way; a tuned config must name them the way
litellm routes them. The table below gives, for each logged model, the closest litellm route
(RouterBench served Claude through AWS Bedrock's model ids and the open models through Together
AI). A name not in the table is kept as written; `--model-map NAME=LITELLM` overrides any entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from cascade.config.schema import Prices
from cascade.eval.data.external import estimate_tokens
from cascade.eval.data.logs import LogTable

SHORT_RESPONSE = 16
LITELLM_NAMES: dict[str, str] = {
    # RouterBench (withmartian/routerbench), 11 models
    "gpt-4-1106-preview": "openai/gpt-4-1106-preview",
    "gpt-3.5-turbo-1106": "openai/gpt-3.5-turbo-1106",
    "claude-v1": "bedrock/anthropic.claude-v1",
    "claude-v2": "bedrock/anthropic.claude-v2",
    "claude-instant-v1": "bedrock/anthropic.claude-instant-v1",
    "meta/llama-2-70b-chat": "together_ai/meta-llama/Llama-2-70b-chat-hf",
    "meta/code-llama-instruct-34b-chat": "together_ai/codellama/CodeLlama-34b-Instruct-hf",
    "mistralai/mistral-7b-chat": "together_ai/mistralai/Mistral-7B-Instruct-v0.1",
    "mistralai/mixtral-8x7b-chat": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
    "zero-one-ai/Yi-34B-Chat": "together_ai/zero-one-ai/Yi-34B-Chat",
    "WizardLM/WizardLM-13B-V1.2": "together_ai/WizardLM/WizardLM-13B-V1.2",
    # RouteLLM (lm-sys/RouteLLM evals), 2 models
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
}


def litellm_name(model: str, overrides: Mapping[str, str] | None = None) -> str:
    """The litellm model string for a logged model name."""
    return (overrides or {}).get(model) or LITELLM_NAMES.get(model, model)


def log_column(model: str, columns: list[str], overrides: Mapping[str, str] | None = None) -> str | None:
    """The log column a config's litellm model string stands for (None when none does)."""
    if model in columns:
        return model
    matches = [c for c in columns if litellm_name(c, overrides) == model]
    return matches[0] if len(matches) == 1 else None


def fitted_prices(log: LogTable, model: str) -> Prices | None:
    """Per-token input and output prices that reproduce the log's cost per item; None when the log
    has no usable cost.

    Non-negative least squares over estimated prompt and response tokens; when responses are too
    short to tell output from input price apart (a median under `SHORT_RESPONSE` tokens, as with
    one-letter answers), one blended price for both: total cost over total tokens.
    """
    from scipy.optimize import nnls

    rows, costs = [], []
    for item in log.items:
        cell = item.tiers[model]
        if not math.isnan(cell.cost_usd):
            rows.append([estimate_tokens(item.prompt), estimate_tokens(cell.answer or "")])
            costs.append(cell.cost_usd)
    tokens, cost = np.asarray(rows, dtype=float).reshape(-1, 2), np.asarray(costs, dtype=float)
    if not cost.size or not cost.any():
        return None
    if np.median(tokens[:, 1]) < SHORT_RESPONSE:
        inp = out = float(cost.sum() / max(1.0, tokens.sum()))
    else:
        (inp, out), _ = nnls(tokens, cost)
    return Prices(input_per_token=float(f"{inp:.4g}"), output_per_token=float(f"{out:.4g}"))
