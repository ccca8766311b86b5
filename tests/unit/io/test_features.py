"""Query features and answer forms live in the core; the routers re-export the very same functions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cascade.io.features as core
import routers
import routers.features as plugin
from cascade.io.features import answer_form

ROOT = Path(__file__).resolve().parents[3]


def test_routers_reexport_the_core_functions() -> None:
    assert routers.query_features is core.query_features
    assert plugin.task_of is core.task_of and plugin.TASKS is core.TASKS


def test_the_core_learners_import_no_plugin_package() -> None:
    code = (
        "import sys; sys.modules['routers'] = None; sys.modules['verifiers'] = None\n"
        "from cascade.learning.predictor import task_key\n"
        "import cascade.scoring, cascade.io.features\n"
        "print(task_key('What is 2 + 3?'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "arithmetic"


@pytest.mark.parametrize(
    ("answer", "raw", "form"),
    [
        (None, None, "none"),
        ("  ", None, "none"),
        ("B", "B\n", "choice"),
        ("(C)", None, "choice"),
        ("Yes", "Yes, it is.", "yesno"),
        ("-1,250.5", None, "number"),
        ("Lima", None, "short_text"),
        ("The boat moves because the wind pushes it east while the river current pushes north", None, "long_text"),
        ("def f", "```python\ndef f(x):\n    return x\n```", "code"),
    ],
)
def test_answer_forms(answer: str | None, raw: str | None, form: str) -> None:
    assert answer_form(answer, raw) == form
