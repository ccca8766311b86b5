"""The tuned cascade as a runnable YAML config (and its scorer file beside it).

Model strings are litellm's (`cascade.eval.data.models`), prices are fitted to the log's costs
where it has them, the answer format is the log's task, and each gate tier carries the verifier
and threshold the search chose. A header says where the choice came from and what it did on the
tuning items, so the file explains itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cascade.completers.model_names import key_variable
from cascade.config.schema import AnswerFormat
from cascade.eval.analysis.offline_tiers import TierSpec
from cascade.eval.data.models import fitted_prices, litellm_name
from cascade.optimize.tolerances import vote_notes
from cascade.optimize.tuner import TuneResult

FORMATS: dict[str, AnswerFormat] = {
    "choice": "choice",
    "number": "number",
    "yesno": "yesno",
    "text": "text",
    "first_line": "first_line",
}
MAX_TOKENS = {"choice": 16, "yesno": 16, "first_line": 64, "number": 512, "text": 1024}


def answer_format(task: str) -> AnswerFormat:
    """The tier answer format that reads a log task's answers."""
    return FORMATS.get(task, "first_line")


def tuned_config(
    result: TuneResult,
    *,
    task: str,
    scorer_file: str | None,
    model_map: Mapping[str, str] | None = None,
    name: str = "tuned",
) -> dict[str, Any]:
    """The chosen cascade as a config mapping."""
    structure = result.chosen.structure
    fmt = answer_format(task)
    tiers = [_tier(spec, result, fmt, model_map) for spec in structure.specs]
    per_tier = {}
    for tier, gate, threshold in zip(tiers, structure.gates, result.chosen.thresholds, strict=False):
        kind = gate.verifier
        tier["verifier"] = {"type": kind, "path": scorer_file} if kind == "scorer" else {"type": kind}
        per_tier[gate.spec.name] = float(threshold)
    config: dict[str, Any] = {"name": name, "description": structure.label(), "tiers": tiers}
    config["verifier"] = {"type": "format", "kind": "nonempty"}
    config["router"] = {"type": "threshold", "threshold": 0.5, **({"per_tier": per_tier} if per_tier else {})}
    return config


def _tier(spec: TierSpec, result: TuneResult, fmt: str, model_map: Mapping[str, str] | None) -> dict[str, Any]:
    tier: dict[str, Any] = {"name": spec.name}
    members = []
    for model, weight in zip(spec.models, spec.member_weights, strict=True):
        member: dict[str, Any] = {"model": litellm_name(model, model_map)}
        key = key_variable(member["model"])
        if key:  # named, so `cascade validate` says which variables to set before a run
            member["api_key_env"] = key
        prices = fitted_prices(result.log, model)
        if prices is not None:
            member["prices"] = prices.per_million()
        if weight != 1.0:
            member["weight"] = weight
        members.append(member)
    if spec.is_ensemble:
        tier["models"] = members
    else:
        tier.update(members[0])
    tier["max_tokens"] = MAX_TOKENS.get(fmt, 256)
    tier["answer"] = {"format": fmt}
    return tier


def header(result: TuneResult, sources: list[str], command: str | None = None) -> str:
    """Comment lines: provenance, the choice and its figures on the tuning items."""
    settings = result.settings
    lines = [
        f"Tuned by `cascade tune --logs` on {len(result.log)} items of {', '.join(sources)}",
        f"({result.considered} candidates; {settings.folds}-fold out-of-fold scores; seed {settings.seed}).",
    ]
    lines += _label_free_goal(result) if settings.reference is not None else _gold_goal(result)
    if settings.objective.kind == "tolerance":
        lines.append(f"Lower bounds: {result.selection.describe()}.")
    lines.append(_choice(result))
    lines += vote_notes(result.chosen) if result.pays else []
    if command:
        lines.append(f"Made by: {command}")
    lines.append("Judge it on other items: cascade replay --dataset OTHER_LOG --config THIS_FILE")
    return "".join(f"# {line}\n" for line in lines)


def _gold_goal(result: TuneResult) -> list[str]:
    objective, alone = result.settings.objective, result.reference
    lines = [f"Strongest model alone: {result.strongest}, EM {alone.em:.3f}, cost ${alone.cost:.4g}."]
    if objective.kind == "tolerance":
        lines.append(
            f"Objective: the cheapest cascade whose EM difference from it has a one-sided {objective.confidence:.0%} "
            f"lower bound >= -{objective.tolerance:g} and that saves >= {objective.min_saving:.0%} of its cost."
        )
    else:
        lines.append(f"Objective: net benefit, ${objective.value_per_correct:g} per correct answer minus cost.")
    return lines


def _label_free_goal(result: TuneResult) -> list[str]:
    objective = result.settings.objective
    return [
        f"No gold answers: an answer counts as right when it agrees with {result.strongest}'s",
        "(both read with the extraction and normalisation that gold answers get).",
        f"Reference alone: {result.strongest}, cost ${result.reference.cost:.4g}.",
        f"Objective: the cheapest cascade whose {result.measure} has a one-sided {objective.confidence:.0%} lower "
        f"bound >= {1 - objective.tolerance:g} and that saves >= {objective.min_saving:.0%} of its cost.",
    ]


def _choice(result: TuneResult) -> str:
    chosen = result.chosen
    if not result.pays:
        return f"No cascade pays on these items: this config is {result.strongest} alone."
    if result.settings.reference is not None:
        return (
            f"Chosen: {chosen.structure.label()}: {result.measure} {chosen.em:.3f} (lower bound "
            f"{1 + result.selection.bound(chosen):.3f}), cost {chosen.ratio:.2f}x the reference's, on the tuning items."
        )
    return (
        f"Chosen: {chosen.structure.label()}: EM {chosen.em:.3f} ({chosen.diff:+.3f}, lower bound "
        f"{result.selection.bound(chosen):+.3f}), cost {chosen.ratio:.2f}x the strongest model's, on the tuning items."
    )


def write(
    result: TuneResult,
    path: Path,
    *,
    task: str,
    sources: list[str],
    model_map: Mapping[str, str] | None = None,
    command: str | None = None,
) -> list[Path]:
    """Write the config (and the scorer beside it when the cascade uses one); returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    scorer_file = None
    if result.scorer is not None:
        scorer_path = path.with_suffix(".scorer.json")
        scorer_file = scorer_path.name
        written.append(result.scorer.save(scorer_path))
    name = "tuned-" + Path(sources[0]).stem if sources else "tuned"
    config = tuned_config(result, task=task, scorer_file=scorer_file, model_map=model_map, name=name)
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120)
    path.write_text(header(result, sources, command) + body, encoding="utf-8")
    return [path, *written]
