"""Cascade configuration: pydantic v2 models, loaded from YAML with errors that name the line.

Routers, verifiers and pre-routers are plugin specs (`type:` plus the plugin's own fields);
the registry validates those fields against the plugin's model, so unknown fields are errors
there too without the core knowing the plugins.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cascade.config import safe_yaml
from cascade.config.audit import AuditConfig
from cascade.config.experiment import ExperimentConfig
from cascade.config.suggest import did_you_mean
from cascade.config.thresholds import DEFAULT_THRESHOLD
from cascade.errors import ConfigError


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_compiles)]
"""A config string that must be a valid regular expression (checked when the config loads)."""


class Strict(BaseModel):
    """Unknown fields are errors, and so are infinite or NaN numbers (`.inf` is YAML for infinity)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Prices(Strict):
    """Prices in USD that override litellm's cost map (e.g. local models): per million tokens, the
    unit providers publish and `--price MODEL=IN,OUT` takes (`input_per_million`,
    `output_per_million`), or per token (`input_per_token`, `output_per_token`). Held per token."""

    input_per_token: float = Field(ge=0)
    output_per_token: float = Field(ge=0)
    ALSO_ACCEPTED: ClassVar[tuple[str, ...]] = ("input_per_million", "output_per_million")

    @model_validator(mode="before")
    @classmethod
    def _per_million(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for side in ("input", "output"):
            million = data.pop(f"{side}_per_million", None)
            if million is None:
                continue
            if f"{side}_per_token" in data:
                raise ValueError(f"give {side}_per_million or {side}_per_token, not both")
            is_number = isinstance(million, int | float) and not isinstance(million, bool)
            data[f"{side}_per_token"] = million / 1e6 if is_number else million
        return data

    def per_million(self) -> dict[str, float]:
        """The prices as YAML writes them (4 significant digits per million tokens)."""
        return {
            "input_per_million": float(f"{self.input_per_token * 1e6:.4g}"),
            "output_per_million": float(f"{self.output_per_token * 1e6:.4g}"),
        }


class Example(Strict):
    """A worked example, sent as a user/assistant pair before the query."""

    question: str
    answer: str


class PromptConfig(Strict):
    """How a query becomes chat messages; `template` must contain `{query}`."""

    system: str | None = None
    template: str = "{query}"
    examples: list[Example] = Field(default_factory=list)

    @field_validator("template")
    @classmethod
    def _has_query(cls, value: str) -> str:
        if "{query}" not in value:
            raise ValueError("template must contain '{query}'")
        return value


AnswerFormat = Literal["text", "first_line", "final", "number", "yesno", "choice", "regex"]


class AnswerConfig(Strict):
    """How the final answer is read out of the model's text.

    `stop_when_complete` ends generation as soon as an answer of this format is complete
    (token-level early stopping), instead of waiting for a stop sequence or max_tokens.
    """

    format: AnswerFormat = "first_line"
    pattern: Regex | None = None
    choices: list[str] | None = None
    stop_when_complete: bool = False

    @model_validator(mode="after")
    def _needs(self) -> AnswerConfig:
        if self.format == "regex" and not self.pattern:
            raise ValueError("format 'regex' needs a 'pattern' with one group")
        return self


class EarlyExitConfig(Strict):
    """Answer probing while a tier reasons: DEER-style early exit of chain-of-thought (local models).

    After at least `every` new reasoning tokens, at the end of a line, the model is asked for its
    answer so far (`suffix`), greedily, in at most `max_tokens` tokens; the probe is rolled back and
    the reasoning goes on. Generation stops once `agree` consecutive probes gave the same answer,
    each with every answer token at least `min_prob` likely (a probe is cut as soon as a token falls
    below it). Probe tokens are counted in the attempt's usage. `stop: false` only records the
    probes (to calibrate the rule on full reasonings).
    """

    every: int = Field(default=32, ge=1)
    suffix: str = Field(default="The answer is", min_length=1)
    max_tokens: int = Field(default=12, ge=1, le=64)
    min_prob: float = Field(default=0.9, ge=0.0, le=1.0)
    agree: int = Field(default=2, ge=1, le=8)
    stop: bool = True


class PluginSpec(BaseModel):
    """`type:` selects a registered plugin; the other fields belong to that plugin."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Reach(Strict):
    """Where a model is served and with which key: shared by tiers and ensemble members."""

    api_base: str | None = None
    api_base_env: str | None = None
    api_key_env: str | None = None

    def resolved_api_base(self) -> str | None:
        if self.api_base_env:
            return os.environ.get(self.api_base_env) or self.api_base
        return self.api_base

    def resolved_api_key(self) -> str | None:
        """The key is read from the environment at call time and never stored in config."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelSpec(Reach):
    """One model a tier calls: its litellm string, vote weight, endpoint, key, prices and extras.

    In a tier's `models:` list an item may be just the model string; a member's unset endpoint,
    key, prices and extras fall back to the tier's (`TierConfig.member_specs`).
    """

    model: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, le=1e6, allow_inf_nan=False)  # relative: only ratios matter
    prices: Prices | None = None
    extra: dict[str, Any] | None = None


class TierConfig(Reach):
    """One rung of the cascade: one model (`model:`) or an ensemble that votes (`models:`), and how to call it."""

    name: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    models: list[ModelSpec] | None = Field(default=None, min_length=2)
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    sample_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    prices: Prices | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    verifier: PluginSpec | None = None
    early_exit: EarlyExitConfig | None = None
    budget_policy: PluginSpec | None = None  # sets max_tokens per query (`cascade.token_budget`)
    on_truncation: Literal["escalate", "judge"] = "escalate"  # an answer cut at max_tokens
    approve: bool = False  # pause for a person's approval before calling this tier (see cascade.run.graph)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("models", mode="before")
    @classmethod
    def _model_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"model": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _one_or_many(self) -> TierConfig:
        if (self.model is None) == (self.models is None):
            raise ValueError("give either 'model' (one model) or 'models' (an ensemble that votes), not both/neither")
        seen: set[tuple[str, str | None, str | None]] = set()
        for member in self.models or []:
            key = (member.model, member.api_base, member.api_base_env)
            if key in seen:
                raise ValueError(f"models: {member.model!r} is listed twice; give it a 'weight' instead")
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _early_exit_is_local(self) -> TierConfig:
        if self.early_exit is not None and not (self.model or "").startswith("local/"):
            raise ValueError("early_exit probes a reasoning in process: it needs one local/... model")
        return self

    @property
    def is_ensemble(self) -> bool:
        return self.models is not None

    @property
    def label(self) -> str:
        """The model string, or the members' joined by ' + ' (traces, the store, serve)."""
        return self.model if self.model is not None else " + ".join(m.model for m in self.models or [])

    def member_specs(self) -> list[ModelSpec]:
        """Every model this tier calls, with the tier's endpoint, key, prices and extras filled in."""
        members = self.models if self.models is not None else [ModelSpec(model=str(self.model))]
        return [
            member.model_copy(
                update={
                    "api_base": member.api_base if member.api_base is not None else self.api_base,
                    "api_base_env": member.api_base_env or self.api_base_env,
                    "api_key_env": member.api_key_env or self.api_key_env,
                    "prices": member.prices or self.prices,
                    "extra": {**self.extra, **(member.extra or {})},
                }
            )
            for member in members
        ]


class BudgetConfig(Strict):
    """Limits for one query over all tiers; the cascade stops before overrunning them."""

    max_total_tokens: int | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)


class RetryConfig(Strict):
    """Tenacity policy for transient provider errors (timeouts, 429, 5xx)."""

    attempts: int = Field(default=3, ge=1, le=20)
    initial_wait_s: float = Field(default=0.5, ge=0)
    max_wait_s: float = Field(default=8.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)


class CascadeConfig(Strict):
    """A whole cascade: tiers from cheapest to strongest, how to judge and route, limits."""

    name: str = "cascade"
    description: str = ""
    tiers: list[TierConfig] = Field(min_length=1)
    verifier: PluginSpec | None = None  # None: `logprob` on one-model tiers, `vote` on ensemble tiers
    router: PluginSpec = Field(
        default_factory=lambda: PluginSpec.model_validate({"type": "threshold", "threshold": DEFAULT_THRESHOLD})
    )
    pre_router: PluginSpec | None = None
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    completer: PluginSpec = Field(default_factory=lambda: PluginSpec(type="litellm"))  # or `fake` (offline)
    audit: AuditConfig | None = None  # live audits against the last tier, the promise and its guard (cascade.audit)
    experiment: ExperimentConfig | None = None  # an A/B test of variants of this config (cascade.config.variants)
    # When no tier accepts its answer: `answer` returns the best one marked not accepted
    # (`result.accepted`, over HTTP `x-cascade-accepted` and `cascade.accepted`); `error` makes
    # `cascade serve` answer 422 (`not_accepted`, the best answer in the error's `cascade`).
    on_reject: Literal["answer", "error"] = "answer"

    _source: str | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @field_validator("tiers")
    @classmethod
    def _unique_names(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        names = [t.name for t in tiers]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(duplicated)}")
        return tiers

    def tier_index(self, name: str) -> int:
        for i, tier in enumerate(self.tiers):
            if tier.name == name:
                return i
        raise KeyError(name)

    def where(self, loc: tuple[str | int, ...]) -> str:
        """`file:line: field.path` for an error at `loc`, as precise as the source allows."""
        return locate(self._source, self._lines, loc)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> CascadeConfig:
        return _validate(data, source=source, lines={})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> CascadeConfig:
        return load_config(path)


DEFAULT_CONFIG = "local.yaml"


def default_config_path() -> Path:
    """The config commands use without `--config`: `configs/local.yaml` of a source checkout, else
    the copy shipped inside the package."""
    checkout = Path(__file__).resolve().parents[2] / "configs" / DEFAULT_CONFIG  # from cascade/config/
    if checkout.exists():
        return checkout
    return Path(str(resources.files("cascade") / "configs" / DEFAULT_CONFIG))


PACKAGE = "package://"


def resolve_data_path(path: str, config_source: str | None) -> Path:
    """A data file a config names (a scorer, a token-budget model): `path` as written, relative to
    the folder of the YAML file that names it, or a file shipped inside an installed package:
    `package://cascade/local/data/default_scorer.json` (ConfigError for a name that is no package,
    or a path that leads out of it)."""
    if path.startswith(PACKAGE):
        return _in_package(path)
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or not config_source or config_source.startswith("<"):
        return candidate
    return Path(config_source).resolve().parent / candidate


def _in_package(path: str) -> Path:
    package, _, inner = path.removeprefix(PACKAGE).partition("/")
    if not package or not inner.strip("/"):
        raise ConfigError(f"{path}: a package path is package://PACKAGE/FILE")
    try:
        root = Path(str(resources.files(package))).resolve()
    except (ImportError, TypeError, ValueError) as exc:  # no such module, or a module that is no package
        raise ConfigError(f"{path}: {package!r} is not an installed package ({exc})") from None
    target = (root / inner).resolve()
    if not target.is_relative_to(root):
        raise ConfigError(f"{path}: the path leads out of the package {package!r}")
    return target


def load_config(path: str | os.PathLike[str]) -> CascadeConfig:
    """Read and validate a YAML cascade; every problem is reported with file and line."""
    return parse_config(safe_yaml.read_text(path), source=str(path))


def parse_config(text: str, *, source: str = "<string>") -> CascadeConfig:
    """Validate a YAML cascade given as text; aliases are bounded before anything is built."""
    document = safe_yaml.parse(text, source=source)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{source}: a cascade config must be a mapping with 'tiers:'", source=source)
    return _validate(document.data, source=source, lines=_line_index(document.node))


def _validate(data: Any, *, source: str | None, lines: dict[tuple[str | int, ...], int]) -> CascadeConfig:
    try:
        config = CascadeConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source=source, lines=lines, model=CascadeConfig) from None
    config._source = source
    config._lines = lines
    return config


def config_error(
    exc: ValidationError,
    *,
    source: str | None,
    lines: dict[tuple[str | int, ...], int],
    prefix: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
) -> ConfigError:
    """Turn pydantic's errors into one ConfigError whose lines say file:line: field: problem; an unknown
    field of `model` (the one validated, at `prefix`) gets the nearest known name."""
    problems = []
    for err in exc.errors():
        inner = tuple(p for p in err["loc"] if not _is_union_tag(p))
        loc = prefix + inner
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field" + (did_you_mean(model, inner) if model is not None else "")
        problems.append(f"{locate(source, lines, loc)}: {message}")
    return ConfigError("invalid cascade config:\n  " + "\n  ".join(problems), source=source, problems=problems)


def locate(source: str | None, lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> str:
    field_path = _dotted(loc) or "<root>"
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    place = source or "<config>"
    if line is not None:
        place = f"{place}:{line}"
    return f"{place}: {field_path}"


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _line_index(node: yaml.Node | None, path: tuple[str | int, ...] = ()) -> dict[tuple[str | int, ...], int]:
    """Map every key path in the YAML document to its 1-based line number."""
    index: dict[tuple[str | int, ...], int] = {}
    if node is None:
        return index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            index.update(_line_index(value, child))
            index[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index
