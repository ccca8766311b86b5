"""docs/architecture.md matches the code: its layers are the ones the import rule checks, and every
package folder is on the page (and every folder the page names exists)."""

from __future__ import annotations

import re

from tests.unit.test_imports import LAYERS, ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_the_page_draws_the_layers_the_import_rule_checks() -> None:
    block = re.search(r"```layers\n(.*?)```", DOC, re.S)
    assert block is not None, "docs/architecture.md has no ```layers block"
    drawn = tuple(tuple(line.split()[1:]) for line in block.group(1).splitlines() if line.strip())
    assert drawn == LAYERS


def test_every_package_folder_is_on_the_page_and_every_named_folder_exists() -> None:
    folders = {
        f"{path.parent.relative_to(ROOT).as_posix()}/"
        for pattern in ("cascade/*/__init__.py", "routers/__init__.py", "verifiers/__init__.py")
        for path in ROOT.glob(pattern)
    }
    named = set(re.findall(r"`((?:cascade/)?[a-z_]+/)`", DOC))
    assert folders - named == set(), "folders the page does not describe"
    top = {name for name in named if name.startswith("cascade/") or name in ("routers/", "verifiers/")}
    assert top - folders == set(), "folders the page names that do not exist"
    nested = named - top  # a subpackage named by itself, e.g. eval's `data/`
    assert all(any(ROOT.glob(f"cascade/*/{name}__init__.py")) for name in nested), nested
