"""Issue 22.13: a damaged or read-only SQLite store is an error naming the file and what to do (exit 2),
found before a model is paid, never a traceback after."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cascade.cli.main import main
from cascade.errors import StoreError
from cascade.store import open_store
from cascade.types import CascadeResult
from tests.unit.config.test_experiments import QUESTION, experiment_config
from tests.unit.serve.test_learning import QUESTION as GEO_QUESTION
from tests.unit.serve.test_learning import cascade, config

FAKE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "fake.yaml"


def damage_a_page(path: str, page: int = 8) -> None:
    """Overwrite one page in the middle of the file: its header and the schema stay readable."""
    with open(path, "r+b") as handle:
        handle.seek(4096 * page)
        handle.write(b"\xff" * 4096)


@pytest.fixture
def learning_setup(tmp_path: Path) -> tuple[str, str]:
    path, dsn = tmp_path / "geo.yaml", str(tmp_path / "store.sqlite")
    data = config()
    data["completer"] = {"type": "fake", "replies": {"fake/small": [{"text": "Lyon"}], "fake/large": [{"text": "P"}]}}
    path.write_text(yaml.safe_dump(data))
    fill(dsn, cascade(":memory:").run(GEO_QUESTION), 300)  # about 75 pages
    return str(path), dsn


def fill(dsn: str, result: CascadeResult, n: int) -> None:
    """`n` labelled copies of `result` under new run ids, without an fsync each (test data only)."""
    store = open_store(dsn)
    store._conn.execute("PRAGMA synchronous = OFF")  # type: ignore[attr-defined]
    for i in range(n):
        copy = result.model_copy(update={"run_id": f"run-{i}"})
        store.add_feedback(store.record_run(copy, config_name="geo"), kind="label", value="Paris")
    store.close()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[str]:
    """A store file the process cannot write: immutable when running as root (root ignores modes)."""
    dsn = str(tmp_path / "ro.sqlite")
    open_store(dsn).close()
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", dsn], check=False).returncode:
            pytest.skip("running as root and chattr +i is not available here")
    else:
        os.chmod(dsn, 0o444)
        os.chmod(tmp_path, 0o555)
    yield dsn
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", dsn], check=False)
    os.chmod(tmp_path, 0o755)


def test_learn_on_a_store_with_a_damaged_page_exits_2_naming_it(
    learning_setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, dsn = learning_setup
    damage_a_page(dsn)
    assert main(["learn", "--config", path, "--dsn", dsn]) == 2
    err = capsys.readouterr().err
    assert f"the store {dsn} is damaged" in " ".join(err.split()) and ".recover" in err


def test_ab_report_on_a_store_with_a_damaged_page_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, dsn = experiment_config(tmp_path), str(tmp_path / "runs.sqlite")
    result = CascadeResult(
        query=QUESTION,
        answer="Paris",
        accepted=True,
        final_tier="large",
        attempts=[],
        experiment="exp-1",
        variant="control",
    )
    fill(dsn, result, 300)
    damage_a_page(dsn, page=10)
    assert main(["ab", "report", "--config", str(path), "--dsn", dsn, "--json"]) == 2
    assert "is damaged" in " ".join(capsys.readouterr().err.split())


def test_run_on_a_read_only_store_exits_2_before_paying(read_only: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the model was paid, then 'answered, but the run was not recorded' (exit 1)."""
    assert main(["run", "--config", str(FAKE_CONFIG), "--store", read_only, "--json", "2+2?"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is read-only" in " ".join(err.split())
    with pytest.raises(StoreError, match="read-only"):
        open_store(read_only).check_writable()


def test_learn_and_serve_on_a_read_only_store_exit_2(
    read_only: str, learning_setup: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = learning_setup
    assert main(["learn", "--config", path, "--dsn", read_only]) == 2
    assert "is read-only" in " ".join(capsys.readouterr().err.split())
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("the server started"))
    assert main(["serve", "--config", str(FAKE_CONFIG), "--store", read_only]) == 2
    assert "is read-only" in " ".join(capsys.readouterr().err.split())
