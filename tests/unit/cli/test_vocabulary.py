"""One command-line vocabulary: `--store` everywhere (`--dsn` still accepted), help on every option,
prices per million tokens on the command line and in YAML, `cascade --version`, and "did you mean"
for a misspelt config field (model names: tests/unit/completers/test_model_names.py)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade._version import __version__
from cascade.cli.main import _parser, main
from cascade.config.schema import Prices, load_config

FAKE = str(Path(__file__).resolve().parents[3] / "configs" / "fake.yaml")


def options(parser: argparse.ArgumentParser, path: str = "cascade") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_and_argument_has_help() -> None:
    bare = [f"{path} {a.option_strings or a.dest}" for path, a in options(_parser()) if not a.help]
    assert bare == []


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "q"],
        ["serve"],
        ["learn"],
        ["budget"],
        ["feedback", "r1", "--up"],
        ["ab", "report"],
        ["scorer", "train", "--out", "s.json"],
        ["report", "--config", "c.yaml"],
    ],
)
@pytest.mark.parametrize("flag", ["--store", "--dsn"])
def test_every_store_command_takes_store_and_dsn_alike(argv: list[str], flag: str) -> None:
    assert _parser().parse_args([*argv, flag, "runs.sqlite"]).store == "runs.sqlite"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"cascade {__version__}"


def test_prices_are_per_million_tokens_in_yaml_as_on_the_command_line(tmp_path: Path) -> None:
    assert Prices.model_validate({"input_per_million": 0.15, "output_per_million": 0.6}) == Prices(
        input_per_token=1.5e-7, output_per_token=6e-7
    )
    assert load_config(FAKE).tiers[1].prices == Prices(input_per_token=2e-6, output_per_token=4e-6)
    tune = _parser().parse_args(["tune", "--logs", "x.csv", "--value-per-correct", "1", "--price-per-million", "2"])
    assert tune.price_per_token == pytest.approx(2e-6)
    assert _parser().parse_args(["tune", "--price-per-token", "3e-6"]).price_per_token == pytest.approx(3e-6)
    with pytest.raises(ValueError, match="input_per_million or input_per_token, not both"):
        Prices.model_validate({"input_per_million": 1, "input_per_token": 1e-6, "output_per_million": 1})


TIER = "tiers:\n  - {name: a, model: fake/a"


@pytest.mark.parametrize(
    ("yaml_text", "said"),
    [
        (f"{TIER}, temprature: 0.2}}\n", "tiers[0].temprature: unknown field; did you mean 'temperature'?"),
        (f"{TIER}, prices: {{input_per_millon: 1, output_per_million: 2}}}}\n", "did you mean 'input_per_million'?"),
        (f"{TIER}}}\nretry: {{attemps: 3}}\n", "retry.attemps: unknown field; did you mean 'attempts'?"),
        (
            f"{TIER}}}\ncompleter: {{type: fake}}\nrouter: {{type: threshold, treshold: 0.5}}\n",
            "router.treshold: unknown field; did you mean 'threshold'?",
        ),
    ],
)
def test_a_misspelt_field_gets_the_nearest_name(
    yaml_text: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    assert main(["validate", str(path)]) == 2
    assert said in capsys.readouterr().err
