"""Which verifier judges each tier: its own, else the cascade's, else the default for its kind of tier.

Without a `verifier:` anywhere, one-model tiers are scored by their token logprobs and ensemble
tiers by their vote. A verifier that cannot judge a tier it is applied to (`ChecksTier`) is a
ConfigError at the place in the config that put it there.
"""

from __future__ import annotations

from cascade.config.schema import CascadeConfig, PluginSpec
from cascade.errors import ConfigError
from cascade.protocols import ChecksTier, Verifier
from cascade.registry import BuildContext

DEFAULT_VERIFIERS = {False: PluginSpec(type="logprob"), True: PluginSpec(type="vote")}
"""Without a `verifier:` anywhere: token logprobs on one-model tiers, the vote share on ensembles."""


def verifier_spec(config: CascadeConfig, index: int) -> tuple[PluginSpec, tuple[str | int, ...]]:
    """The verifier spec that applies to tier `index`, and where it sits in the config."""
    tier = config.tiers[index]
    if tier.verifier is not None:
        return tier.verifier, ("tiers", index, "verifier")
    if config.verifier is not None:
        return config.verifier, ("verifier",)
    return DEFAULT_VERIFIERS[tier.is_ensemble], ("tiers", index)


def tier_verifiers(config: CascadeConfig, build: BuildContext) -> list[Verifier]:
    """Each tier's verifier: its own, else the cascade's (built once, shared), else its kind's default.

    A verifier that cannot judge a tier (`ChecksTier`) is a ConfigError at the place that put it there.
    """
    built: dict[tuple[str | int, ...], Verifier] = {}
    for index, tier in enumerate(config.tiers):
        spec, loc = verifier_spec(config, index)
        verifier = built[loc] if loc in built else build.verifier(spec, loc)
        built[loc] = verifier
        problem = verifier.tier_problem(tier) if isinstance(verifier, ChecksTier) else None
        if problem:
            message = f"{config.where(loc)}: {problem} (tier {tier.name!r})"
            raise ConfigError(message, source=config._source, problems=[message])
    return [built[verifier_spec(config, i)[1]] for i in range(len(config.tiers))]
