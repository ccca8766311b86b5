"""Routers and pre-routers; importing this package registers them with `cascade.registry`."""

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
from routers.threshold import ThresholdConfig, ThresholdRouter

__all__ = [
    "TASKS",
    "FeaturesConfig",
    "FeaturesPreRouter",
    "Rule",
    "ThresholdConfig",
    "ThresholdRouter",
    "When",
    "length_scale",
    "query_features",
    "task_of",
]
