"""Every Python example in README.md runs as written, with the scripted `configs/fake.yaml`.

A new user pastes them: one had `async for` at module level (a SyntaxError), two used names they
never defined. Each block runs in its own namespace, in one subprocess (OpenTelemetry's provider is
set once per process), from a directory where `configs/` is the project's, as in a checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cascade import Cascade
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
MARK = "=== README block "
RUNNER = f"""
import sys
for i, path in enumerate(sys.argv[1:]):
    print({MARK!r} + str(i), flush=True)
    exec(compile(open(path, encoding="utf-8").read(), path, "exec"), {{"__name__": "__main__"}})
"""


def readme_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    # the real local models are integration tests' business; the example's code is the same on the fake
    blocks = [block.replace("configs/local.yaml", "configs/fake.yaml") for block in blocks]
    return sorted(blocks, key=lambda block: "set_tracer_provider" in block)  # its exporter prints every later span


def run_blocks(tmp_path: Path, blocks: list[str]) -> list[str]:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    paths = []
    for i, block in enumerate(blocks):
        paths.append(tmp_path / f"block{i}.py")
        paths[-1].write_text(block, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *map(str, paths)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [piece.split("\n", 1)[1] for piece in done.stdout.split(MARK)[1:]]


def test_every_python_example_in_the_readme_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    """The HTTP example talks to `cascade serve --config configs/fake.yaml` with its key, here on a free port."""
    app = create_app(
        {"fake": Cascade.from_yaml(ROOT / "configs" / "fake.yaml")}, ServeSettings(api_keys=("sk-local-1",))
    )
    with serve_in_thread(app) as url:
        blocks = [b.replace("http://127.0.0.1:8000", url) for b in readme_blocks()]
        outputs = dict(zip(blocks, run_blocks(tmp_path, blocks), strict=True))

    def printed(marker: str) -> str:
        (block,) = [b for b in blocks if marker in b]
        return outputs[block]

    assert "Paris True large" in printed("cascade.batch([")
    assert "'name': 'get_weather'" in printed('"role": "system", "content": "You are a geography tutor."')
    assert "[trying large (live)]" in printed("tokens=True") and printed("tokens=True").endswith("Paris")
    assert printed("CascadeChatModel(").splitlines() == ["4", "city='Paris' country='France'"]
    assert printed("ConsoleSpanExporter").count('"name": "chat ') == 3  # "prints 3 spans"
    assert printed("AsyncSqliteSaver") == "Paris\n"
    assert "['4', 'Paris'] Usage(prompt_tokens=" in printed("charge_to(team)")
    assert printed("from openai import OpenAI") == "Paris large\n"
