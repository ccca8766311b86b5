"""Every Python example in README.md and the docs/ pages it links runs as written, with the scripted
`configs/fake.yaml`.

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


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_blocks() -> list[str]:
    texts = [page.read_text(encoding="utf-8") for page in PAGES]
    blocks = [block for text in texts for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)]
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

    assert printed('f"${result.total_cost_usd:.2e}"').startswith(
        "Paris True large 19 $2.12e-05\nsmall escalate 0.20 min token probability 0.202 over 2 tokens;"
    )  # the README's own block
    assert "Paris True large" in printed("cascade.batch([")
    assert "'name': 'get_weather'" in printed('"role": "system", "content": "You are a geography tutor."')
    assert "[trying large (live)]" in printed("tokens=True") and printed("tokens=True").endswith("Paris")
    assert printed("CascadeChatModel(").splitlines() == ["4", "city='Paris' country='France'"]
    assert printed("ConsoleSpanExporter").count('"name": "chat ') == 3  # "prints 3 spans"
    assert printed("AsyncSqliteSaver") == "Paris\n"
    assert "['4', 'Paris'] Usage(prompt_tokens=" in printed("charge_to(team)")
    assert printed("with_raw_response") == "Paris large\n"
    assert printed('create(model="fake"') == "Paris 13\n"


def test_the_readme_links_every_docs_page_and_each_page_links_back() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"the README does not link docs/{page.name}"
        assert page.name == "architecture.md" or "(../README.md)" in page.read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 160  # what it is, the two commands, a YAML, Python, serve, tune


def test_every_whole_config_shown_is_a_valid_one() -> None:
    """A YAML block with `tiers:` is a whole cascade: it must load as one (unknown fields, bad values)."""
    from cascade.config.schema import parse_config

    blocks = [
        (page.name, block)
        for page in PAGES
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
        if re.search(r"^tiers:", block, flags=re.M)
    ]
    assert any(name == "README.md" for name, _ in blocks)
    for name, block in blocks:
        parse_config(block, source=name)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_resolves() -> None:
    """A relative link names a file that exists and, after `#`, a heading of that page."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address: not reachable from here
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            text = linked.read_text(encoding="utf-8") if linked.is_file() else ""
            headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
            if not linked.exists() or (anchor and anchor not in map(github_anchor, headings)):
                broken.append(f"{page.name}: {target}")
    assert not broken
