"""Routers and pre-routers; importing this package registers them with `cascade.registry`."""

from routers.adaptive import AdaptiveRouter
from routers.bandit import BanditRouter
from routers.features import (
    TASKS,
    FeaturesConfig,
    FeaturesPreRouter,
    Rule,
    When,
    length_scale,
    query_features,
    task_of,
)
from routers.learned import LearnedConfig, LearnedPreRouter
from routers.threshold import ThresholdConfig, ThresholdRouter

__all__ = [
    "TASKS",
    "AdaptiveRouter",
    "BanditRouter",
    "FeaturesConfig",
    "FeaturesPreRouter",
    "LearnedConfig",
    "LearnedPreRouter",
    "Rule",
    "ThresholdConfig",
    "ThresholdRouter",
    "When",
    "length_scale",
    "query_features",
    "task_of",
]
