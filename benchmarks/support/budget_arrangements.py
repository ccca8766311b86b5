"""The arrangements of a config's budgeted tier T that `benchmarks.token_budget` compares: fixed,
learned, a short-then-long ladder, and learned-then-whole, alone or behind the tiers before T."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.config.schema import CascadeConfig, TierConfig
from cascade.errors import UserError

ARRANGEMENTS = ("fixed", "learned", "ladder", "learned_then_whole")
# The learned budget `configs/local.yaml` offers as an opt-in (the commented block under its reasoning
# tier; a test keeps the two the same), fitted for this model's reasoning: what `compare` and `train`
# measure on a config whose last tier runs that model and has no learned budget of its own.
OPT_IN_POLICY: dict[str, Any] = {
    "type": "learned",
    "path": "package://cascade/local/data/default_token_budget.json",
    "share": 0.9,
    "levels": [128, 192, 256, 384],
    "headroom": 1.5,
    "prompt": "Show the key steps briefly, in at most {budget} tokens, before the last line.",
}
OPT_IN_MODEL = "local/qwen2.5-1.5b"


def patient(config: CascadeConfig, timeout_s: float) -> CascadeConfig:
    """One attempt per call and a long timeout: on a loaded machine a reasoning must not be lost to
    the per-call timeout meant for users (it would be paid and not kept)."""
    return config.model_copy(update={"retry": config.retry.model_copy(update={"timeout_s": timeout_s, "attempts": 1})})


def budgeted(config: CascadeConfig) -> CascadeConfig:
    """The config with a learned budget to compare: its own, or `OPT_IN_POLICY` on its last tier when
    that tier runs the model the opt-in was fitted for (the local default, whose budget lost EM)."""
    if any(map(_learned, config.tiers)):
        return config
    if config.tiers[-1].model != OPT_IN_MODEL:
        return config  # budgeted_index says what is missing
    tiers = [t.model_dump(exclude_unset=True) for t in config.tiers]
    tiers[-1]["budget_policy"] = dict(OPT_IN_POLICY)
    return CascadeConfig.from_dict(config.model_dump(exclude_unset=True) | {"tiers": tiers}, source=config._source)


def _learned(tier: TierConfig) -> bool:
    return tier.budget_policy is not None and tier.budget_policy.type == "learned"


def budgeted_index(config: CascadeConfig) -> int:
    """Where T is: the first tier whose budget policy is `learned`."""
    for i, tier in enumerate(config.tiers):
        if _learned(tier):
            return i
    raise UserError(f"{config.where(('tiers',))}: no tier has a learned budget_policy to compare with a fixed budget")


def reasoning_tiers(config: CascadeConfig, arrangement: str, short: int) -> list[TierConfig]:
    """T and its fallbacks, as `arrangement` makes them."""
    index = budgeted_index(config)
    think = config.tiers[index]
    if arrangement == "learned":
        return list(config.tiers[index:])
    plain = think.model_copy(update={"budget_policy": None})
    if arrangement == "fixed":
        return [plain]
    whole = plain.model_copy(update={"name": f"{think.name}-whole"})
    if arrangement == "learned_then_whole":
        return [think, whole]
    if arrangement != "ladder":
        raise ValueError(f"unknown arrangement {arrangement!r}; one of {', '.join(ARRANGEMENTS)}")
    sentence = told(think)
    policy = {"type": "fixed", "tokens": short} | ({"prompt": sentence} if sentence else {})
    first = think.model_dump(exclude_unset=True) | {"name": f"{think.name}-short", "budget_policy": policy}
    return [TierConfig.model_validate(first), whole]


def told(tier: TierConfig) -> str | None:
    """The sentence `tier`'s budget policy tells its budget in, if any."""
    return (tier.budget_policy.model_extra or {}).get("prompt") if tier.budget_policy else None


def with_sentence(config: CascadeConfig, sentence: str) -> CascadeConfig:
    """The config with T's budget told in `sentence` (its `{budget}` replaced by the budget)."""
    index = budgeted_index(config)
    tiers = [t.model_dump(exclude_unset=True) for t in config.tiers]
    tiers[index]["budget_policy"] = tiers[index]["budget_policy"] | {"prompt": sentence}
    data = config.model_dump(exclude_unset=True) | {"tiers": tiers}
    return CascadeConfig.from_dict(data, source=config._source)


def arrangements_of(names: str) -> tuple[str, ...]:
    """The arrangements asked for, in their usual order; fixed and learned always (the headline)."""
    asked = {n.strip() for n in names.split(",") if n.strip()}
    unknown = asked - set(ARRANGEMENTS)
    if unknown:
        raise UserError(f"--arrangements: unknown {', '.join(sorted(unknown))}; of {', '.join(ARRANGEMENTS)}")
    return tuple(a for a in ARRANGEMENTS if a in asked | {"fixed", "learned"})


def arranged(config: CascadeConfig, arrangement: str, scope: str, short: int) -> CascadeConfig:
    """The config with T and after replaced by `arrangement`'s tiers; scope `alone` keeps only those."""
    index = budgeted_index(config)
    tiers = reasoning_tiers(config, arrangement, short)
    kept = [*config.tiers[:index], *tiers] if scope == "cascade" else tiers
    ladder = tiers if arrangement in ("ladder", "learned_then_whole") else []
    return with_tiers(config, kept, ladder, routed=scope == "cascade")


def with_tiers(
    config: CascadeConfig, kept: list[TierConfig], ladder: Sequence[TierConfig] = (), routed: bool = True
) -> CascadeConfig:
    """The config with only `kept` tiers: the router's and (when `routed`) the pre-router's names of
    gone tiers dropped (the ladder's tiers skipped wherever T was); in a ladder every tier but the
    last keeps each answer it finished (threshold 0): only a cut-off answer goes on."""
    data: dict[str, Any] = config.model_dump(exclude_unset=True, exclude={"tiers", "pre_router", "router"})
    data["tiers"] = [t.model_dump(exclude_unset=True) for t in kept]
    names = {t.name for t in kept}
    router = config.router.model_dump()
    per_tier = {k: v for k, v in dict(router.get("per_tier") or {}).items() if k in names}
    data["router"] = router | {"per_tier": per_tier | {t.name: 0.0 for t in ladder[:-1]}}
    if config.pre_router is not None and routed:
        spec = config.pre_router.model_dump()
        think = config.tiers[budgeted_index(config)].name
        for rule in spec.get("rules") or []:
            skip = list(rule.get("skip") or [])
            skip += [n for n in names if n.startswith(think)] if think in skip else []
            rule["skip"] = [n for n in dict.fromkeys(skip) if n in names]
        spec["rules"] = [r for r in spec.get("rules") or [] if len(r["skip"]) < len(kept)]
        data["pre_router"] = spec
    return CascadeConfig.from_dict(data, source=config._source)
