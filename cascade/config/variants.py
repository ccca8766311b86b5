"""Experiments declared in YAML (`cascade.config.experiment`): variant configs and sticky assignment.

A config with an `experiment:` block is a cascade per variant behind one name. Each run is given
to a variant by hashing `<experiment name>:<unit>` with sha256 (Python's `hash` is salted per
process, so workers and replicas would disagree), where the unit is the caller's user, API key or
tag (`assign_by`); a unit always lands on the same variant, in every process, with no shared
state. The result says which `experiment` and `variant` answered and the store keeps both, so
`cascade ab report` can judge the variants. Learning routers inside a variant learn only from
that variant's runs and keep their state under their own key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cascade.config.experiment import ExperimentConfig, VariantSpec
from cascade.config.schema import CascadeConfig, config_error, load_config
from cascade.errors import ConfigError, UserError

Loc = tuple[str | int, ...]


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) that depends only on `key` (first 64 bits of its sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def assign(key: str, variants: Mapping[str, float] | Sequence[str], salt: str = "") -> str:
    """The variant `key` always gets: variants split [0, 1) in proportion to their weights."""
    weights = dict(variants) if isinstance(variants, Mapping) else dict.fromkeys(variants, 1.0)
    total = sum(weights.values())
    if not weights or total <= 0 or any(w < 0 for w in weights.values()):
        raise UserError("A/B variants need non-negative weights with a positive sum")
    point = unit_hash(f"{salt}:{key}") * total
    for name, weight in weights.items():
        point -= weight
        if point < 0:
            return name
    return next(name for name, w in reversed(weights.items()) if w > 0)


def variant_for(
    spec: ExperimentConfig, *, user: str | None = None, key: str | None = None, tag: str | None = None
) -> str:
    """The variant of a run: sticky by the unit `assign_by` names; afresh when the run carries none."""
    unit = {"user": user, "key": key, "tag": tag, "run": None}[spec.assign_by]
    return assign(unit if unit else uuid.uuid4().hex, spec.weights, salt=spec.name)


def variant_configs(config: CascadeConfig) -> dict[str, CascadeConfig]:
    """Every variant's own config (no `experiment:` block, the experiment config's name), by variant."""
    if config.experiment is None:
        raise UserError("this config has no experiment block")
    return {
        name: _variant_config(config, name, spec)
        for name, spec in config.experiment.variants.items()
        if spec.weight > 0
    }


def _variant_config(config: CascadeConfig, name: str, spec: VariantSpec) -> CascadeConfig:
    loc: Loc = ("experiment", "variants", name)
    if spec.config is not None:
        other = load_config(_beside(config, spec.config))
        if other.experiment is not None:
            raise ConfigError(f"{config.where((*loc, 'config'))}: {spec.config} has an experiment of its own")
        data = other.model_dump(mode="python", exclude_none=True)
    else:
        base = config.model_dump(mode="python", exclude_none=True)
        data = merge(base, spec.overrides, (*loc, "overrides"), config)
    data.pop("experiment", None)
    data["name"] = config.name
    try:
        built = CascadeConfig.model_validate(data)
    except ValidationError as exc:
        where = (*loc, "overrides")
        raise config_error(exc, source=config._source, lines=config._lines, prefix=where, model=CascadeConfig) from None
    built._source, built._lines = config._source, config._lines
    return built


def merge(base: Any, patch: Any, loc: Loc, config: CascadeConfig) -> Any:
    """`patch` deep-merged into `base`: mappings merge key by key, anything else is replaced.

    `tiers` may be patched as a mapping from tier name to the fields that change.
    """
    if isinstance(base, list) and isinstance(patch, Mapping) and loc[-1] == "tiers":
        return _patch_tiers(base, patch, loc, config)
    if not isinstance(base, Mapping) or not isinstance(patch, Mapping):
        return patch
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = merge(merged[key], value, (*loc, key), config) if key in merged else value
    return merged


def _patch_tiers(tiers: list[Any], patch: Mapping[str, Any], loc: Loc, config: CascadeConfig) -> list[Any]:
    names = [tier["name"] for tier in tiers]
    unknown = [name for name in patch if name not in names]
    if unknown:
        raise ConfigError(f"{config.where(loc)}: unknown tier {unknown[0]!r}; tiers are {', '.join(names)}")
    return [
        merge(tier, patch[tier["name"]], (*loc, tier["name"]), config) if tier["name"] in patch else tier
        for tier in tiers
    ]


@contextmanager
def building(variant: str | None) -> Iterator[None]:
    """Config errors raised while a variant's plugins are built name the variant."""
    try:
        yield
    except ConfigError as exc:
        if variant is None:
            raise
        problems = [f"experiment variant {variant!r}: {p}" for p in exc.problems]
        raise ConfigError(f"experiment variant {variant!r}: {exc}", source=exc.source, problems=problems) from None


def _beside(config: CascadeConfig, path: str) -> Path:
    """A variant's config file, relative to the experiment's own file."""
    found = Path(path).expanduser()
    if not found.is_absolute() and config._source and Path(config._source).exists():
        found = Path(config._source).resolve().parent / found
    return found
