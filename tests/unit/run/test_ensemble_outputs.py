"""Ensemble members wherever a run is shown or kept: trace, `cascade run --json`, `cascade serve`, the store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cascade import FakeReply
from cascade.cli.main import main
from cascade.serve import ServeSettings, create_app
from cascade.store import open_store
from tests.unit.ensemble_helpers import ensemble_cascade

SCRIPT = {
    "fake/a": FakeReply("Paris", prompt_tokens=10, completion_tokens=2),
    "fake/b": FakeReply(error="auth"),
    "fake/c": FakeReply("Paris", prompt_tokens=10, completion_tokens=3),
}
YAML = """\
name: yaml-ensemble
completer:
  type: fake
  by_prompt:
    fake/a: {"Capital of France?": {text: Paris, prompt_tokens: 9, completion_tokens: 1, cost_usd: 0.001}}
    fake/b: {"Capital of France?": {text: Lyon, prompt_tokens: 9, completion_tokens: 1, cost_usd: 0.002}}
    fake/c: {"Capital of France?": {text: paris, prompt_tokens: 9, completion_tokens: 1, cost_usd: 0.004}}
tiers:
  - name: vote
    models: [fake/a, fake/b, {model: fake/c, weight: 2}]
router: {type: threshold, threshold: 0.7}
"""


def test_cli_json_carries_members_and_totals_from_a_yaml_fake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ens.yaml"
    config.write_text(YAML)
    assert main(["run", "--config", str(config), "--json", "Capital of France?"]) == 0
    data = json.loads(capsys.readouterr().out)
    (attempt,) = data["attempts"]
    assert data["answer"] == "Paris" and data["accepted"] and attempt["confidence"] == pytest.approx(0.75)
    assert [(m["model"], m["weight"], m["answer"], m["cost_usd"]) for m in attempt["members"]] == [
        ("fake/a", 1.0, "Paris", 0.001),
        ("fake/b", 1.0, "Lyon", 0.002),
        ("fake/c", 2.0, "paris", 0.004),
    ]
    assert data["total_cost_usd"] == pytest.approx(0.007) and data["total_tokens"] == 30


async def test_serve_response_lists_the_members_of_each_attempt() -> None:
    cascade, _ = ensemble_cascade(SCRIPT)
    app = create_app({"ens": cascade}, ServeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cascade.test") as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "ens", "messages": [{"role": "user", "content": "Capital of France?"}]},
        )
    assert response.status_code == 200
    body = response.json()
    (attempt,) = body["cascade"]["attempts"]
    assert attempt["model"] == "fake/a + fake/b + fake/c" and attempt["tokens"] == 25
    assert [(m["model"], m["answer"], m["tokens"]) for m in attempt["members"]] == [
        ("fake/a", "Paris", 12),
        ("fake/b", None, 0),
        ("fake/c", "Paris", 13),
    ]
    assert "authentication failed" in attempt["members"][1]["error"]
    assert body["usage"]["total_tokens"] == 25
    assert float(response.headers["x-cascade-cost-usd"]) == pytest.approx(body_cost(body))


def body_cost(body: dict[str, object]) -> float:
    attempts = body["cascade"]["attempts"]  # type: ignore[index]
    return sum(m["cost_usd"] for a in attempts for m in a["members"])  # type: ignore[index,union-attr]


def test_store_keeps_every_members_record(tmp_path: Path) -> None:
    cascade, _ = ensemble_cascade(SCRIPT)
    result = cascade.run("Capital of France?")
    with open_store(str(tmp_path / "runs.sqlite")) as store:
        store.record_run(result, config_name="ens")
        record = store.get_run(result.run_id)
    assert record is not None
    again = record.result().attempts[0]
    assert again.members == result.attempts[0].members
    assert again.members[1].error and "authentication failed" in again.members[1].error


def test_a_fake_reads_its_tables_from_a_json_file_beside_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = {
        "fake/a": {"Capital of France?": {"text": "Rome", "cost_usd": 0.01}},
        "fake/b": {"Capital of France?": "Rome"},
    }
    (tmp_path / "tables.json").write_text(json.dumps(tables))
    yaml_text = YAML.replace("  by_prompt:\n", "  by_prompt_file: tables.json\n  by_prompt:\n")
    yaml_text = "\n".join(line for line in yaml_text.splitlines() if not line.startswith("    fake/b:"))
    (tmp_path / "ens.yaml").write_text(yaml_text)  # fake/b from the file; fake/a's table in the config wins
    assert main(["run", "--config", str(tmp_path / "ens.yaml"), "--json", "Capital of France?"]) == 0
    members = json.loads(capsys.readouterr().out)["attempts"][0]["members"]
    assert [m["answer"] for m in members] == ["Paris", "Rome", "paris"]
    (tmp_path / "tables.json").write_text('{"fake/a": {"q": {"txt": 1}}}')
    assert main(["run", "--config", str(tmp_path / "ens.yaml"), "Capital of France?"]) == 2
    assert "by_prompt_file" in capsys.readouterr().err
