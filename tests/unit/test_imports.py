"""The house rules on imports, read from the source: the core never imports a plugin package, the
project's modules import each other without circles, and no module imports a layer above its own
(imports inside functions and under `if TYPE_CHECKING:` included: a circle or an arrow up that only
type checkers read is still one a reader has to follow).
"""

from __future__ import annotations

import ast
import graphlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cascade", "routers", "verifiers")
PLUGINS = ("routers", "verifiers")


def project_modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = project_modules()


def imported_names(module: str, path: Path, *, type_checking: bool = False) -> Iterator[tuple[str, int]]:
    """Each dotted name `module` imports (`from a import b` gives `a.b`), with its line; those under
    `if TYPE_CHECKING:` only when `type_checking`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    blocks = () if type_checking else _type_checking_blocks(tree)
    skipped = {id(node) for block in blocks for node in ast.walk(block)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def _type_checking_blocks(tree: ast.Module) -> Iterator[ast.stmt]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from node.body


def resolve(name: str, modules: dict[str, Path] = MODULES) -> str | None:
    """The module an imported name lives in (the longest dotted prefix that is one), None if not ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    """Which of `modules` each one imports (for type checking too)."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        for name, _ in imported_names(module, path, type_checking=True):
            target = resolve(name, modules)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (first module repeated at the end), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(reversed(exc.args[1]))
    return None


def test_the_walk_sees_imports_inside_functions_and_skips_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import routers\n"
        "def f():\n    from verifiers import logprob\n    from . import sibling\n"
    )
    names = [name for name, _ in imported_names("cascade.eval.sample", source)]
    assert names == ["typing.TYPE_CHECKING", "verifiers.logprob", "cascade.eval.sibling"]
    every = [name for name, _ in imported_names("cascade.eval.sample", source, type_checking=True)]
    assert every == ["typing.TYPE_CHECKING", "routers", "verifiers.logprob", "cascade.eval.sibling"]
    assert resolve("cascade.eval.analysis.replay.ReplayReport") == "cascade.eval.analysis.replay"
    assert resolve("numpy.linalg") is None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "cascade"))
def test_the_core_never_imports_a_plugin_package(module: str) -> None:
    """`cascade` finds plugins through the registry (entry points), never by importing them (not even
    for type checking)."""
    found = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: imports {name}"
        for name, line in imported_names(module, MODULES[module], type_checking=True)
        if name.split(".")[0] in PLUGINS
    ]
    assert not found, "\n".join(found)


def test_the_project_imports_have_no_cycles() -> None:
    cycle = cycle_in(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_circle_closed_by_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(project_modules(tmp_path, ("pkg",)))
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycle_in(graph) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])
    graph["pkg.b"].clear()
    assert cycle_in(graph) is None


def test_one_module_configures_litellm() -> None:
    """`LITELLM_LOCAL_MODEL_COST_MAP` is set in one place, which the package imports first."""
    setters = [
        module for module, path in MODULES.items() if "LITELLM_LOCAL_MODEL_COST_MAP" in path.read_text(encoding="utf-8")
    ]
    assert setters == ["cascade.completers.litellm_setup"]
    first = ast.parse(MODULES["cascade"].read_text(encoding="utf-8")).body[1]  # after the docstring
    assert isinstance(first, ast.ImportFrom) and [a.name for a in first.names] == ["litellm_setup"]


def test_importing_cascade_sets_the_offline_price_map_without_importing_litellm() -> None:
    code = "import os, sys, cascade; print(os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'), 'litellm' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"} | {"PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


LAYERS: tuple[tuple[str, ...], ...] = (
    ("cascade._version", "cascade.errors", "cascade.extras"),
    ("cascade.config",),
    ("cascade.types", "cascade.io"),
    ("cascade.protocols", "cascade.registry", "cascade.decision", "cascade.store.base"),
    ("cascade.budget", "cascade.completers", "cascade.local", "cascade.scoring", "cascade.token_budget"),
    ("cascade.store",),
    ("cascade.learning",),
    ("cascade.run", "cascade.audit", "routers", "verifiers"),
    ("cascade.eval",),
    ("cascade.optimize",),
    ("cascade.serve", "cascade.integrations"),
    ("cascade.cli", "cascade.__main__", "cascade.serve.__main__"),
    ("cascade",),
)
"""The architecture, bottom up (docs/architecture.md draws it): a module may import its own
layer and the layers below, never one above. The store's interface (`store.base`) sits below the
plugin seam that hands stores to plugins; the stores themselves above the completers they record."""


def layer_of(module: str) -> int:
    """The layer of the longest prefix in LAYERS that names `module` or a package holding it."""
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_up_the_layers() -> None:
    """Type-checking imports included: a lower layer does not even name a higher one."""
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {module} (layer {layer_of(module)}) imports "
        f"{target} (layer {layer_of(target)})"
        for module, path in MODULES.items()
        for name, line in imported_names(module, path, type_checking=True)
        if (target := resolve(name)) is not None and layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_layer_rule_sees_an_arrow_up() -> None:
    assert layer_of("cascade.store.sql") > layer_of("cascade.store.base")
    assert layer_of("cascade.run.engine") > layer_of("cascade.learning.online") > layer_of("cascade.store")
    assert layer_of("cascade.cli.main") > layer_of("cascade.serve.app") > layer_of("cascade.optimize.tuner")
