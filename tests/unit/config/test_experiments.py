"""Experiments in YAML: variants from overrides or other files, sticky assignment, the variant on every
stored run, through the Python API, `cascade run`, `cascade serve` and `cascade ab report`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cascade import Cascade, ConfigError
from cascade.cli.main import main
from cascade.config.schema import load_config
from cascade.serve import ServeSettings, create_app
from cascade.store import open_store
from routers.adaptive import AdaptiveRouter

QUESTION = "What is the capital of France?"
FAKE = {
    "type": "fake",
    "replies": {
        "fake/small": [{"text": "Lyon", "logprobs": [-0.2]}],
        "fake/large": [{"text": "Paris", "logprobs": [-0.01]}],
        "fake/other": [{"text": "Paris!", "logprobs": [-0.01]}],
    },
}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def experiment_config(tmp_path: Path, **experiment: Any) -> Path:
    """Control accepts the small tier's 0.82-confidence answer; strict escalates; other is a one-tier file."""
    write(
        tmp_path / "other.yaml",
        {"name": "elsewhere", "tiers": [{"name": "only", "model": "fake/other", "logprobs": True}], "completer": FAKE},
    )
    data = {
        "name": "geo",
        "tiers": [
            {"name": "small", "model": "fake/small", "logprobs": True},
            {"name": "large", "model": "fake/large", "logprobs": True},
        ],
        "router": {"type": "threshold", "threshold": 0.5},
        "completer": FAKE,
        "experiment": {
            "name": "exp-1",
            "variants": {
                "control": {},
                "strict": {"overrides": {"router": {"threshold": 0.9}, "tiers": {"small": {"max_tokens": 8}}}},
                "other": {"config": "other.yaml", "weight": 2},
            },
            **experiment,
        },
    }  # fmt: skip
    return write(tmp_path / "geo.yaml", data)


def test_each_variant_answers_as_its_config_says(tmp_path: Path) -> None:
    cascade = Cascade.from_yaml(experiment_config(tmp_path))
    answers = {}
    for i in range(200):
        result = cascade.run(QUESTION, user=f"user-{i}")
        answers[result.variant] = (result.answer, result.final_tier, result.experiment)
    assert answers == {
        "control": ("Lyon", "small", "exp-1"),
        "strict": ("Paris", "large", "exp-1"),
        "other": ("Paris!", "only", "exp-1"),
    }
    strict = cascade.variants["strict"].config
    assert strict.name == "geo" and strict.tiers[0].max_tokens == 8 and strict.experiment is None


def test_assignment_is_sticky_and_follows_the_weights(tmp_path: Path) -> None:
    cascade = Cascade.from_yaml(experiment_config(tmp_path))
    first = [cascade.arm(user=f"user-{i}").arm_name for i in range(2000)]
    assert first == [cascade.arm(user=f"user-{i}").arm_name for i in range(2000)]
    shares = Counter(name for _, name in first)  # type: ignore[misc]
    assert shares["other"] / 2000 == pytest.approx(0.5, abs=0.04) and shares["control"] / 2000 == pytest.approx(
        0.25, abs=0.04
    )
    again = Cascade.from_yaml(experiment_config(tmp_path))  # another process computes the same assignment
    assert [again.arm(user=f"user-{i}").arm_name for i in range(200)] == first[:200]


def test_by_tag_and_without_a_unit(tmp_path: Path) -> None:
    cascade = Cascade.from_yaml(experiment_config(tmp_path, assign_by="tag"))
    assert len({cascade.arm(tag="billing", user=f"u{i}").arm_name for i in range(50)}) == 1
    assert len({cascade.arm().arm_name for _ in range(200)}) == 3  # no tag: each run assigned afresh


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({"a": {}}, "experiment.variants: Dictionary should have at least 2 items"),
        ({"a": {}, "b": {"weight": 0}}, "at least two variants with a positive weight"),
        ({"a": {}, "b": {"config": "x.yaml", "overrides": {"name": "y"}}}, "not both"),
        ({"a": {}, "b": {"overrides": {"tiers": {"tiny": {"max_tokens": 3}}}}}, "unknown tier 'tiny'"),
        ({"a": {}, "b": {"overrides": {"router": {"threshold": 7}}}}, "(?s)experiment variant .b.: .*router.threshold"),
        ({"a": {}, "b": {"overrides": {"budget": {"max_total_tokens": -1}}}}, "budget.max_total_tokens"),
    ],
)
def test_bad_experiments_are_config_errors(tmp_path: Path, variants: dict[str, Any], message: str) -> None:
    data = yaml.safe_load(experiment_config(tmp_path).read_text())
    data["experiment"]["variants"] = variants
    with pytest.raises(ConfigError, match=message):
        Cascade.from_yaml(write(tmp_path / "bad.yaml", data))


def test_learners_in_variants_keep_their_own_state(tmp_path: Path) -> None:
    dsn = str(tmp_path / "s.sqlite")
    data = yaml.safe_load(experiment_config(tmp_path).read_text())
    data["router"] = {"type": "adaptive", "target_em": 0.9, "min_evidence": 5, "initial": 0.5, "step": 1.0}
    data["experiment"]["variants"] = {"control": {}, "cautious": {"overrides": {"router": {"initial": 0.9}}}}
    cascade = Cascade(load_config(write(tmp_path / "learn.yaml", data)), learning_store=dsn)
    assert sorted(learner.state_key for learner in cascade.learners()) == [
        "router/adaptive/geo@cautious",
        "router/adaptive/geo@control",
    ]
    store = open_store(dsn)
    for i in range(40):
        result = cascade.run(QUESTION, user=f"u{i}")
        store.add_feedback(store.record_run(result, config_name="geo"), kind="label", value="Paris")
    learned = {learner.state_key: learner.learn(store) for learner in cascade.learners()}  # type: ignore[attr-defined]
    runs = Counter(run.variant for run in store.runs())
    store.close()
    assert learned == {"router/adaptive/geo@control": runs["control"], "router/adaptive/geo@cautious": runs["cautious"]}
    control = cascade.variants["control"].router
    assert isinstance(control, AdaptiveRouter) and control.threshold_for("small") > 0.82  # learned: Lyon is wrong


def test_cascade_run_records_the_variant_and_ab_report_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, dsn = experiment_config(tmp_path, value_per_correct=0.01), str(tmp_path / "runs.sqlite")
    for i in range(6):
        assert main(["run", "--config", str(path), "--store", dsn, "--user", f"u{i}", "--json", QUESTION]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["experiment"] == "exp-1" and result["variant"] in {"control", "strict", "other"}
    store = open_store(dsn)
    runs = store.runs()
    for run in runs:
        store.add_feedback(run.run_id, kind="label", value="Paris")
    store.close()
    assert {r.variant for r in runs} <= {"control", "strict", "other"} and all(
        r.features["experiment"] == "exp-1" for r in runs
    )
    assert main(["ab", "report", "--config", str(path), "--dsn", dsn, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metric"] == "net benefit (USD/run)" and "fewer than 20" in report["verdict"]
    assert sum(v["runs"] for v in report["variants"]) == 6


async def test_serve_assigns_by_user_and_records_the_variant(tmp_path: Path) -> None:
    cascade = Cascade.from_yaml(experiment_config(tmp_path))
    store = open_store(str(tmp_path / "serve.sqlite"))
    app = create_app({"geo": cascade}, ServeSettings(), store=store)
    seen: dict[str, set[str]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for i in range(40):
            user = f"user-{i % 8}"
            body = {"model": "geo", "user": user, "messages": [{"role": "user", "content": QUESTION}]}
            response = await http.post("/v1/chat/completions", json=body)
            assert response.status_code == 200
            seen.setdefault(user, set()).add(response.headers["x-cascade-variant"])
            run = store.get_run(response.headers["x-cascade-run-id"])
            assert run is not None and run.variant == response.headers["x-cascade-variant"]
    store.close()
    assert all(len(variants) == 1 for variants in seen.values())  # sticky per user
    assert len(set().union(*seen.values())) >= 2


def test_validate_checks_every_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(experiment_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "[variant control]" in out and "[variant other]: only (fake/other)" in out


async def test_the_response_names_the_variant(tmp_path: Path) -> None:
    app = create_app({"geo": Cascade.from_yaml(experiment_config(tmp_path))}, ServeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        body = {"model": "geo", "user": "ann", "messages": [{"role": "user", "content": QUESTION}]}
        response = await http.post("/v1/chat/completions", json=body)
    info = response.json()["cascade"]
    assert info["experiment"] == "exp-1" and info["variant"] == response.headers["x-cascade-variant"]
