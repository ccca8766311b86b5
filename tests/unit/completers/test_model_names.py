"""Hosted models checked before a run: litellm's model names with the nearest one, unset key
variables, quickly (without importing litellm), and configs written by `tune --logs` say their keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cascade.cli.main import main
from cascade.completers.model_names import KEY_VARIABLES, key_variable, unknown_model

ROOT = Path(__file__).resolve().parents[3]
OPENAI = str(ROOT / "configs" / "openai.yaml")


def config(tmp_path: Path, *models: str, prices: bool = False) -> Path:
    tiers = []
    for i, model in enumerate(models):
        tier: dict[str, object] = {"name": f"t{i}", "model": model}
        if prices:
            tier["prices"] = {"input_per_token": 1e-7, "output_per_token": 2e-7}
        tiers.append(tier)
    path = tmp_path / "hosted.yaml"
    path.write_text(yaml.safe_dump({"name": "hosted", "tiers": tiers}, sort_keys=False))
    return path


def test_a_misspelt_model_is_refused_with_the_nearest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = config(tmp_path, "openai/gpt-4o-mnii", "openai/gpt-4o")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: tiers[0].model" in err and "did you mean 'openai/gpt-4o-mini'?" in err
    assert "tiers[1]" not in err  # gpt-4o is one of OpenAI's
    # `cascade run` refuses it too, before any model is paid
    assert main(["run", "--config", str(path), "2+2?"]) == 2
    assert "did you mean 'openai/gpt-4o-mini'?" in capsys.readouterr().err


def test_a_model_the_list_lacks_but_the_tier_prices_is_only_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["validate", str(config(tmp_path, "openai/gpt-9-preview", prices=True))]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "gpt-9-preview" in captured.err and captured.out.startswith("ok ")


def test_unset_key_variables_are_reported_and_skip_keys_checks_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["validate", OPENAI]) == 2
    err = capsys.readouterr().err
    assert "openai.yaml:7: tiers[0].model: api_key_env OPENAI_API_KEY is not set" in err and "--skip-keys" in err
    # a hosted model whose config names no variable needs litellm's
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["validate", str(config(tmp_path, "anthropic/claude-haiku-4-5"))]) == 2
    assert "ANTHROPIC_API_KEY is not set (anthropic/claude-haiku-4-5 reads its key from it)" in capsys.readouterr().err
    assert main(["validate", "--skip-keys", "--config", OPENAI]) == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["validate", "-c", OPENAI]) == 0
    assert capsys.readouterr().out.startswith("ok ")


def test_validate_names_one_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert "cascade validate FILE (or --config FILE)" in capsys.readouterr().err


def test_validate_of_a_hosted_config_does_not_import_litellm() -> None:
    """litellm's import is 5 s of CPU (13-27 s on a busy machine): its model list is read as a file."""
    probe = (
        "import sys\n"
        "from cascade.cli.main import main\n"
        f"code = main(['validate', {OPENAI!r}])\n"
        "print(code, 'litellm' in sys.modules)\n"
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False"


def test_names_the_map_does_not_govern_are_not_checked() -> None:
    assert unknown_model("openai/gpt-4o-mini") is None
    assert unknown_model("openai/my-finetune", api_base="http://127.0.0.1:8080/v1") is None  # a server's own names
    assert unknown_model("ollama_chat/llama3.2:3b") is None and key_variable("ollama_chat/llama3.2:3b") is None
    assert key_variable("openai/gpt-4o", api_base="http://127.0.0.1:8000/v1") is None
    retired = unknown_model("anthropic/claude-3-5-haiku-20241022")
    assert retired is not None and "the nearest it knows: anthropic/claude" in retired


@pytest.mark.parametrize("provider", sorted(KEY_VARIABLES))
def test_the_key_variables_are_the_ones_litellm_asks_for(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cascade.completers.litellm_setup import import_litellm

    for name in [n for n in os.environ if n.endswith(("_KEY", "_TOKEN"))]:
        monkeypatch.delenv(name)
    missing = import_litellm().validate_environment(model=f"{provider}/some-model")["missing_keys"]
    assert KEY_VARIABLES[provider] in missing


def test_a_config_written_by_tune_logs_names_the_key_variables_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cascade.optimize.tuner import tune
    from cascade.optimize.writer import write
    from tests.unit.optimize.test_optimize import CHOICE, SMALL, synthetic

    names = {"strong": "openai/gpt-4o", **{m: f"together_ai/org/{m}" for m in ("cheap-a", "cheap-b", "cheap-c")}}
    path = tmp_path / "tuned.yaml"
    write(tune(synthetic(200, 0), CHOICE, SMALL), path, task="choice", sources=["s"], model_map=names)
    for variable in ("OPENAI_API_KEY", "TOGETHERAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "api_key_env OPENAI_API_KEY is not set" in err and "api_key_env TOGETHERAI_API_KEY is not set" in err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("TOGETHERAI_API_KEY", "tg-test")
    assert main(["validate", str(path)]) == 0
