"""`cascade serve` arguments, config loading and the refusal to expose a keyless server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.cli import serve as cli_serve
from cascade.cli.serve import add_parser, check_exposure, main
from cascade.errors import UserError
from cascade.serve import CooldownCompleter
from cascade.serve.background import KEEP_ALIVE_S
from cascade.serve.worker import load_cascades

FAKE = Path(__file__).resolve().parents[3] / "configs" / "fake.yaml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cascade")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_defaults_bind_loopback() -> None:
    args = parse()
    assert (args.host, args.port, args.config) == ("127.0.0.1", 8000, None)
    assert (args.max_concurrency, args.max_queue, args.cooldown_failures) == (16, 64, 3)


def test_configs_are_repeatable() -> None:
    args = parse("--config", "a.yaml", "-c", "b.yaml", "--max-concurrency", "4", "--max-queue", "0")
    assert args.config == [Path("a.yaml"), Path("b.yaml")] and args.max_concurrency == 4 and args.max_queue == 0


def test_load_cascades_names_them_by_config_and_wraps_in_cooldown() -> None:
    cascades = load_cascades([FAKE])
    assert list(cascades) == ["fake"]
    assert isinstance(cascades["fake"].meter.inner, CooldownCompleter)
    assert not isinstance(load_cascades([FAKE], cooldown_failures=0)["fake"].meter.inner, CooldownCompleter)


def test_two_configs_with_one_name_are_an_error(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text(FAKE.read_text())
    with pytest.raises(UserError, match="both name their cascade 'fake'"):
        load_cascades([FAKE, copy])


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_refuses_to_expose_a_server_without_keys(host: str) -> None:
    with pytest.raises(UserError, match="without API keys"):
        check_exposure(host, has_keys=False)
    check_exposure(host, has_keys=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_without_keys_is_allowed(host: str) -> None:
    check_exposure(host, has_keys=False)


def test_run_builds_the_app_and_hands_it_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        seen.update(app=app, **kwargs)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setenv("CASCADE_API_KEYS", "sk-test-0000000000000000")
    assert main(["--config", str(FAKE), "--port", "9123", "--max-queue", "7", "--log-level", "warning"]) == 0
    server = seen["app"].state.server
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9123)
    assert server.settings.max_queue == 7 and server.keys.enabled and list(server.cascades) == ["fake"]
    assert seen["timeout_keep_alive"] == KEEP_ALIVE_S


def test_idle_connections_outlive_the_clients_own_expiry() -> None:
    """Else a request sent as the server closes an idle connection is lost in transit."""
    httpx_expiry = httpx.Limits().keepalive_expiry or 0.0
    assert 2 * httpx_expiry < KEEP_ALIVE_S


def test_main_reports_user_errors_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "missing.yaml"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert cli_serve.DEFAULT_HOST == "127.0.0.1"


def test_store_option_records_runs_and_enables_feedback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: seen.update(app=app))
    assert main(["--config", str(FAKE), "--store", str(tmp_path / "runs.sqlite")]) == 0
    assert seen["app"].state.server.feedback.store is not None
    assert (tmp_path / "runs.sqlite").exists()


def test_workers_hand_uvicorn_an_import_string_and_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each worker process builds its own app from the spec in the environment (keys stay in their own variable)."""
    from cascade.serve.worker import SPEC_ENV, ServeSpec, app_from_env

    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    monkeypatch.setenv("CASCADE_API_KEYS", "sk-test-0000000000000000")
    monkeypatch.setenv(SPEC_ENV, "")  # restored (unset) after the test, though run() overwrites it
    store = str(tmp_path / "s.sqlite")
    assert main(["--config", str(FAKE), "--workers", "3", "--store", store, "--learn-interval-s", "2"]) == 0
    assert (seen["app"], seen["factory"], seen["workers"]) == ("cascade.serve.worker:app_from_env", True, 3)
    raw = os.environ[SPEC_ENV]
    spec = ServeSpec.model_validate_json(raw)
    assert spec.store == store and spec.settings["learn_interval_s"] == 2.0 and "sk-test" not in raw
    worker = app_from_env().state.server  # what a worker process builds
    assert worker.keys.enabled and list(worker.cascades) == ["fake"] and worker.feedback.store is not None


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--learn-interval-s", "0"], ["--workers", "x"]])
def test_bad_worker_and_learning_options_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_workers_with_key_budgets_in_memory_are_refused_naming_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22.2: two workers with --key-max-tokens 20 and no store spent up to 40 tokens."""
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("the server started"))
    for budget in (["--key-max-tokens", "20"], ["--key-max-cost-usd", "0.02"]):
        assert main(["--config", str(FAKE), "--workers", "2", *budget]) == 2
        err = capsys.readouterr().err
        assert "--workers 2" in err and "needs --store" in err
