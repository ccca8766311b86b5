"""The replay report, typed key by key: what `replay` returns and `--out` writes as JSON.

TypedDicts rather than classes: the report stays the plain JSON-ready dict that benchmarks read and
tests index, and mypy checks every key a producer writes or a reader reads. The keys marked
NotRequired are added by the reports built on `replay`: `cascade eval` (`live/report.py`),
`cascade replay --config` (`config_report.py`) and `cascade tune`.
"""

from __future__ import annotations

from typing import NotRequired, final  # pydantic validates these TypedDicts (tests)

from typing_extensions import TypedDict

Interval = list[float]


class OutcomeExtra(TypedDict, total=False):
    """What a policy adds to its outcome's summary."""

    p: float  # random mixing: the share of items sent to the strong model
    picks: dict[str, int]  # the oracle: items answered by each model
    thresholds: list[float | tuple[float, ...] | None]  # cross-fitting: the threshold chosen on each half
    selection: str  # how the operating point was chosen


class OutcomeSummary(OutcomeExtra):
    """One policy on every item: EM, tokens (None when any is unknown), cost, escalation."""

    em: float
    total_tokens: int | None
    cost_usd: float
    escalation_rate: float
    threshold: NotRequired[float | list[float]]


class NamedPoint(OutcomeSummary):
    name: str


class CurvePoint(OutcomeSummary):
    strong_call_share: float


class RandomPoint(NamedPoint):
    strong_call_share: float


class Baseline(OutcomeSummary):
    em_ci: Interval | None


class CascadeEntry(Baseline):
    """The cascade at its operating point."""

    policy: str
    tiers: list[str]
    confidence: str


class ConfigCascade(TypedDict):
    """`replay --config`'s cascade: the config's own decisions, item by item."""

    policy: str
    tiers: list[str]
    confidence: str
    em: float
    em_ci: Interval | None
    total_tokens: int | None
    cost_usd: float
    escalation_rate: float
    answered_by: dict[str, int]
    selection: str


class MeasuredCascade(TypedDict):
    """`cascade eval`'s cascade: the live run itself, with bootstrap intervals over items."""

    policy: str
    selection: str
    em: float
    em_ci: tuple[float, float] | None
    total_tokens: int
    tokens_per_item_ci: tuple[float, float] | None
    cost_usd: float
    escalation_rate: float
    reached_tier: dict[str, float]
    answered_by_tier: dict[str, float]
    accepted_rate: float
    errors: int
    latency_s_mean: float
    latency_s_ci: tuple[float, float] | None
    samples_saved: int


class RouterBenchAIQ(TypedDict):
    aiq: float | None
    cost_end: float


class PairedEstimate(TypedDict):
    """A ratio or difference against the strongest model on the same items, with its paired interval."""

    value: float
    ci: Interval | None
    n: int


class VsStrongest(TypedDict):
    """`replay --config`: the config against the strongest model alone."""

    cost_ratio_vs_strongest: PairedEstimate
    em_delta_vs_strongest: PairedEstimate


@final
class NoMetrics(TypedDict):
    """The metrics of a report without a cascade policy: every one undefined."""

    apgr: None
    cpt50: None
    cpt80: None
    aiq: None
    delta_ibc: None
    cost_reduction_at_matched_em: None
    oracle_saving_captured: None


@final
class CurveMetrics(TypedDict):
    """Every metric of one cost–EM curve (see `definitions.METRIC_DEFINITIONS`)."""

    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    aiq: float | None
    delta_ibc: float | None
    cost_reduction_at_matched_em: float | None
    oracle_saving_captured: float | None
    delta_ibc_point: NamedPoint | None
    matched_point: NamedPoint | None
    aiq_cost_range: list[float]
    cost_axis: str
    routellm: dict[str, float | dict[str, str] | None]
    routerbench: NotRequired[RouterBenchAIQ]
    cost_ratio_vs_strongest: NotRequired[PairedEstimate]
    em_delta_vs_strongest: NotRequired[PairedEstimate]
    strongest: NotRequired[str]


class PolicyEntry(TypedDict):
    name: str
    tiers: list[str]
    confidence: str
    verifiers: list[str]
    curve: list[CurvePoint]
    pareto: list[int]
    metrics: CurveMetrics


class RandomEntry(TypedDict):
    curve: list[RandomPoint]
    metrics: CurveMetrics


class Source(TypedDict):
    path: str
    format: str
    notes: list[str]
    tokens_estimated: bool
    cost_unit: str  # "USD", or "tokens" when a model that used tokens had no price (cost_axis.py)


class Settings(TypedDict):
    """The replay's settings; `cascade eval` adds where its items came from and how they ran."""

    tolerance: float
    seed: int
    bootstrap_resamples: int
    dataset: NotRequired[str]
    offset: NotRequired[int]
    limit: NotRequired[int | None]
    executor: NotRequired[str]
    cache_hits: NotRequired[int]
    cache_misses: NotRequired[int]


class RunCounts(TypedDict, total=False):
    """How `cascade eval` ran its items: the executor and the output cache's hits and misses."""

    executor: str
    cache_hits: int
    cache_misses: int


class ConfigTier(TypedDict):
    name: str
    models: list[str]


class ConfigEntry(TypedDict):
    """`replay --config`: the config replayed, as written."""

    path: str | None
    name: str
    tiers: list[ConfigTier]
    thresholds: dict[str, float | None]


class Tuning(TypedDict):
    """`cascade tune`: what was chosen on the tuning split."""

    n_tune_items: int
    n_test_items: int
    objective: dict[str, float | bool | None]
    tiers: list[str]
    thresholds: dict[str, float]
    tune_em: float
    tune_tokens_per_item: float
    tune_cost_per_item: float
    candidates_tried: int


class Verdict(VsStrongest):
    """The report's first line: the operating point against the strongest model alone, paired on the
    same items, and the notes that explain figures which would otherwise mislead (verdict.py)."""

    strongest: str
    line: str
    notes: list[str]


class ReplayReport(TypedDict):
    """Everything `replay` measured on one log: the cascade at its operating point, every baseline on the
    same items, each policy's curve and metrics, random mixing, and what each metric means."""

    source: Source
    n_items: int
    excluded_items: int
    models: list[str]
    verifier_only_models: list[str]
    weak: str
    strong: str
    settings: Settings
    cascade: CascadeEntry | ConfigCascade | MeasuredCascade | None
    baselines: dict[str, Baseline]
    metrics: CurveMetrics | NoMetrics
    metric_definitions: dict[str, str]
    policies: list[PolicyEntry]
    random: RandomEntry
    replayed_cascade: NotRequired[CascadeEntry | ConfigCascade | MeasuredCascade | None]
    config: NotRequired[ConfigEntry]
    tuning: NotRequired[Tuning]
    verdict: NotRequired[Verdict]
