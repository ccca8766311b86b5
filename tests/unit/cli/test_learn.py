"""`cascade learn`: batch retraining of a config's learners from the store, and the lease it respects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cascade.cli.main import main
from cascade.store import open_store
from tests.unit.serve.test_learning import config, record_labelled_runs


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, str]:
    """A config with an adaptive router and a learned pre-router, and a store with 30 labelled runs."""
    path, dsn = tmp_path / "geo.yaml", str(tmp_path / "store.sqlite")
    data = config()
    data["pre_router"] = {"type": "learned", "min_examples": 5}
    data["completer"] = {
        "type": "fake",
        "replies": {"fake/small": [{"text": "Lyon"}], "fake/large": [{"text": "Paris"}]},
    }
    path.write_text(yaml.safe_dump(data))
    store = open_store(dsn)
    record_labelled_runs(store, 30)
    store.close()
    return str(path), dsn


def learn(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, object]]:
    assert main(["learn", *argv, "--json"]) == 0
    return {row["learner"]: row for row in json.loads(capsys.readouterr().out)}


def test_learns_everything_new_then_nothing(setup: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, dsn = setup
    first = learn(capsys, "--config", path, "--dsn", dsn, "--limit", "7")
    assert first["router/adaptive/geo"]["learned"] == 30 and first["router/adaptive/geo"]["version"] == 5  # 7+7+7+7+2
    assert first["pre_router/learned/geo"]["learned"] == 60  # 30 labels and 30 answers
    store = open_store(dsn)
    state = store.get_state("router/adaptive/geo")
    store.close()
    assert state is not None and state["model"]["n_observed"] == 30
    again = learn(capsys, "--config", path, "--dsn", dsn)
    assert again["router/adaptive/geo"]["learned"] == 0 and again["router/adaptive/geo"]["version"] == 5


def test_reset_relearns_from_the_first_label(setup: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, dsn = setup
    learn(capsys, "--config", path, "--dsn", dsn)
    reset = learn(capsys, "--config", path, "--dsn", dsn, "--reset")
    assert reset["router/adaptive/geo"]["learned"] == 30
    store = open_store(dsn)
    state = store.get_state("router/adaptive/geo")
    store.close()
    assert state is not None and state["model"]["n_observed"] == 30  # not 60: learned once, from scratch


def test_a_serving_learner_holds_the_lease(setup: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, dsn = setup
    store = open_store(dsn)
    assert store.acquire_lease("learn:router/adaptive/geo", "worker-7", 60)
    store.close()
    assert main(["learn", "--config", path, "--dsn", dsn]) == 2
    assert "held by worker-7" in capsys.readouterr().err


def test_a_config_without_learners_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "static.yaml"
    path.write_text(yaml.safe_dump({"tiers": [{"name": "only", "model": "fake/x"}], "completer": {"type": "fake"}}))
    assert main(["learn", "--config", str(path), "--dsn", str(tmp_path / "s.sqlite")]) == 2
    assert "nothing to learn" in capsys.readouterr().err
