"""Config errors name the file, the line and the field; unknown fields and plugins are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade import Cascade, ConfigError, UnknownPluginError, load_config
from cascade.config.schema import parse_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"

GOOD = """\
name: t
tiers:
  - name: small
    model: fake/small
  - name: big
    model: fake/big
    max_tokens: 64
router: {type: threshold, threshold: 0.6}
"""


def test_good_config_loads() -> None:
    config = parse_config(GOOD, source="t.yaml")
    assert [t.name for t in config.tiers] == ["small", "big"]
    assert config.tiers[1].max_tokens == 64
    assert config.router.params() == {"threshold": 0.6}


def test_unknown_field_names_file_line_and_field() -> None:
    text = GOOD.replace("    max_tokens: 64", "    max_tokenz: 64")
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="t.yaml")
    assert "t.yaml:7: tiers[1].max_tokenz: unknown field" in str(info.value)


def test_wrong_type_is_located() -> None:
    text = GOOD.replace("max_tokens: 64", "max_tokens: lots")
    with pytest.raises(ConfigError, match=r"t.yaml:7: tiers\[1\].max_tokens"):
        parse_config(text, source="t.yaml")


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"t.yaml:3: malformed YAML"):
        parse_config("tiers:\n  - name: a\n  model: [unclosed\n", source="t.yaml")


def test_missing_tiers_and_non_mapping() -> None:
    with pytest.raises(ConfigError, match="tiers"):
        parse_config("name: x\n", source="t.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        parse_config("- a\n- b\n", source="t.yaml")


def test_duplicate_tier_names_rejected() -> None:
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_config("tiers:\n  - {name: a, model: m}\n  - {name: a, model: n}\n", source="t.yaml")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_plugin_type_lists_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "verifier: {type: crystal_ball}\n")
    with pytest.raises(UnknownPluginError) as info:
        Cascade.from_yaml(path)
    message = str(info.value)
    assert f"{path}:9: verifier.type" in message and "logprob" in message


def test_plugin_field_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("threshold: 0.6", "thresold: 0.6"))
    with pytest.raises(ConfigError, match=r"c.yaml:8: router.thresold: unknown field"):
        Cascade.from_yaml(path)


def test_prompt_template_must_contain_query() -> None:
    with pytest.raises(ConfigError, match="query"):
        parse_config("tiers:\n  - {name: a, model: m, prompt: {template: 'hello'}}\n", source="t.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(CONFIGS / name)
    Cascade(config, completer=_NeverCalled())


class _NeverCalled:
    async def complete(self, request: object) -> object:
        raise AssertionError("validation must not call a model")
