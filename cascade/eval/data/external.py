"""Readers for external router logs: RouterBench CSVs and RouteLLM's GSM8K/MMLU response files.

RouterBench (Hu et al. 2024, withmartian/routerbench; rows as copied in shuhao02/RouterDC) logs
per-query cost. RouteLLM (Ong et al. 2024, lm-sys/RouteLLM `routellm/evals/`) logs correctness only,
so cost comes from list prices times token counts estimated at 4 characters per token. RouteLLM
evaluates without the prompts it found in its routers' training data (`contaminated_prompts.jsonl`);
so does this reader, by default, when the list lies beside the log.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from cascade.errors import UserError
from cascade.eval.data.logs import LogItem, LogTable, TierLog

CHARS_PER_TOKEN = 4
_META_COLUMNS = {"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}
_CHOICE_EVALS = ("arc", "mmlu", "hellaswag", "winogrande")
csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class Price:
    """USD per million tokens, with where the figure comes from."""

    input_per_m: float
    output_per_m: float
    source: str = ""


# Used for RouteLLM logs, which carry no cost. RouteLLM's own analysis uses blended prices of
# $24.7/M (GPT-4) and $0.24/M (Mixtral) instead; pass `prices=` to reproduce that.
LIST_PRICES = {
    "gpt-4-1106-preview": Price(10.0, 30.0, "OpenAI DevDay pricing for GPT-4 Turbo, 6 Nov 2023"),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": Price(0.6, 0.6, "Together AI serverless price at launch, Dec 2023"),
}


class LogOptions(TypedDict, total=False):
    """How to read a log without cost (RouteLLM's): `read_routellm`'s options, as `--price`,
    `--prompt-overhead-tokens` and `--keep-contaminated` set them."""

    prices: dict[str, Price]
    prompt_overhead_tokens: int
    keep_contaminated: bool
    contaminated: Path | None


def estimate_tokens(text: str) -> int:
    """Rough token count (OpenAI's rule of thumb: ~4 characters per English token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _unlist(cell: str) -> str:
    """RouterBench stores prompts and responses as Python list literals: "['D\\n']"."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def task_of(eval_name: str) -> str:
    """The answer extractor for a RouterBench eval: choice letters, numbers, or free text."""
    name = eval_name.lower()
    if any(key in name for key in _CHOICE_EVALS):
        return "choice"
    return "number" if "gsm8k" in name else "text"


def option_letters(prompt: str) -> list[str]:
    """The option letters of the last question in a few-shot prompt ('A) ...' lines)."""
    last = prompt.strip().split("\n\n")[-1]
    return re.findall(r"(?m)^([A-J])\)", last)


def read_routerbench(path: Path) -> LogTable:
    """RouterBench rows: 0/1 correctness per model (empty: unknown), `<model>|total_cost`, responses."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        models = [c for c in header if c not in _META_COLUMNS and "|" not in c]
        items = [_routerbench_item(i, row, models) for i, row in enumerate(reader)]
    notes = ["tokens estimated from prompt and response length (4 chars/token); costs as logged by RouterBench"]
    return LogTable(models, items, source=str(path), fmt="routerbench", notes=notes, tokens_estimated=True)


def _routerbench_item(index: int, row: dict[str, str], models: list[str]) -> LogItem:
    prompt = _unlist(row.get("prompt", ""))
    tiers = {}
    for model in models:
        response = _unlist(row.get(f"{model}|model_response", ""))
        raw, cost = row.get(model, "").strip(), row.get(f"{model}|total_cost", "").strip()
        correct = None if raw == "" or cost == "" else float(raw) >= 0.5
        tokens = estimate_tokens(prompt) + estimate_tokens(response)
        tiers[model] = TierLog(correct, float(cost) if cost else math.nan, tokens, response)
    eval_name = row.get("eval_name", "")
    meta = {"sample_id": row.get("sample_id"), "eval_name": eval_name, "letters": option_letters(prompt)}
    return LogItem(row.get("") or row.get("sample_id") or str(index), prompt, tiers, task_of(eval_name), meta)


def read_routellm(
    path: Path,
    prices: dict[str, Price] | None = None,
    prompt_overhead_tokens: int = 0,
    keep_contaminated: bool = False,
    contaminated: Path | None = None,
) -> LogTable:
    """RouteLLM `gsm8k_responses.csv` or `mmlu_responses/` (a directory or one `mmlu_<subject>.csv`).

    Prompts in RouteLLM's contamination list are left out, as RouteLLM's evals do, unless
    `keep_contaminated`; the list is `contaminated` or found beside the log (`contamination_list`).

    Cost = list price × estimated tokens: prompt = the logged prompt plus `prompt_overhead_tokens`
    (RouteLLM prepended 8-shot exemplars for GSM8K and up to 1,536 tokens of 5-shot exemplars for
    MMLU, which the log does not contain; default 0 counts the logged prompt only), output = the
    logged response, or 1 token for MMLU (RouteLLM generated a single letter, max_new_tokens=1).
    """
    prices = {**LIST_PRICES, **(prices or {})}
    files = sorted(path.glob("mmlu_*.csv")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"no mmlu_*.csv files in {path}")
    items: list[LogItem] = []
    models: list[str] = []
    for file in files:
        models, rows = _routellm_rows(file)
        items += [_routellm_item(file, i, row, models, prices, prompt_overhead_tokens) for i, row in enumerate(rows)]
    used = "; ".join(
        f"{m}: ${prices[m].input_per_m}/M in, ${prices[m].output_per_m}/M out ({prices[m].source})" for m in models
    )
    notes = [f"no logged cost: list prices × tokens estimated at 4 chars/token — {used}"]
    if prompt_overhead_tokens:
        notes.append(f"{prompt_overhead_tokens} few-shot prompt tokens added to every call")
    if keep_contaminated:
        notes.append("contaminated prompts kept (RouteLLM's evals leave them out)")
    else:
        items = _decontaminate(items, contaminated or contamination_list(path), notes)
    return LogTable(models, items, source=str(path), fmt="routellm", notes=notes, tokens_estimated=True)


def contamination_list(path: Path) -> Path | None:
    """RouteLLM's contaminated prompts for a responses file or directory: `<benchmark>_contaminated_prompts.jsonl`
    (as in ../shared/data/routellm) or `contaminated_prompts.jsonl` (RouteLLM's own layout), in the log's
    folder or the one above it."""
    folder = path if path.is_dir() else path.parent
    bench = "mmlu" if path.is_dir() or path.name.startswith("mmlu") else path.stem.split("_")[0]
    names = (f"{bench}_contaminated_prompts.jsonl", "contaminated_prompts.jsonl")
    candidates = [place / name for place in (folder, folder.parent) for name in names]
    return next((c for c in candidates if c.is_file()), None)


def _decontaminate(items: list[LogItem], listing: Path | None, notes: list[str]) -> list[LogItem]:
    if listing is None:
        notes.append("no contaminated_prompts.jsonl beside the log: every prompt kept")
        return items
    prompts = _contaminated_prompts(listing)
    kept = [item for item in items if item.prompt not in prompts]
    notes.append(f"{len(items) - len(kept)} contaminated prompt(s) left out, as RouteLLM does ({listing})")
    return kept


def _contaminated_prompts(listing: Path) -> set[str]:
    prompts = set()
    with listing.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                prompts.add(str(json.loads(line)["eval_prompt"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{listing}:{number}: not a JSON object with an 'eval_prompt'") from None
    return prompts


def _routellm_rows(file: Path) -> tuple[list[str], list[dict[str, str]]]:
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        models = [c for c in header if c != "prompt" and not c.endswith("_response")]
        return models, list(reader)


def _routellm_item(
    file: Path, index: int, row: dict[str, str], models: list[str], prices: dict[str, Price], overhead: int
) -> LogItem:
    is_mmlu = file.stem.startswith("mmlu")
    prompt = row["prompt"]
    tiers = {}
    for model in models:
        if model not in prices:
            raise UserError(f"no list price for {model!r}; pass prices={{model: Price(in, out)}} (--price)")
        response = row.get(f"{model}_response")
        prompt_tokens = estimate_tokens(prompt) + overhead
        output_tokens = 1 if response is None else estimate_tokens(response)
        price = prices[model]
        cost = (prompt_tokens * price.input_per_m + output_tokens * price.output_per_m) / 1e6
        correct = {"true": True, "false": False}.get(row[model].strip().lower())
        tiers[model] = TierLog(correct, cost, prompt_tokens + output_tokens, response)
    task = "choice" if is_mmlu else "number"
    meta: dict[str, Any] = {"letters": ["A", "B", "C", "D"]} if is_mmlu else {}
    if is_mmlu:
        meta["subject"] = file.stem.removeprefix("mmlu_")
    return LogItem(f"{file.stem}-{index}", prompt, tiers, task, meta)
