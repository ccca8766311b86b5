"""Issue 14's probes of the CLI and config loading: each gets exit 2 and a message naming the
cause, never a traceback, and nothing is refused after a model has been paid."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cascade.cli.main import main
from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config import safe_yaml
from cascade.config.schema import parse_config
from cascade.errors import ConfigError
from cascade.store import open_store

FAKE = Path(__file__).resolve().parents[3] / "configs" / "fake.yaml"
BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
tiers: [*h]
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())  # rich wraps long lines


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every request that reaches a fake model."""
    calls: list[Any] = []
    real = FakeCompleter.complete

    async def spy(self: FakeCompleter, request: Any) -> Any:
        calls.append(request)
        return await real(self, request)

    monkeypatch.setattr(FakeCompleter, "complete", spy)
    return calls


def write(tmp_path: Path, data: str | bytes, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def test_an_alias_cycle_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="alias cycle"):
        parse_config("name: &a [*a]\ntiers: []\n")
    code, err = cli(capsys, "validate", write(tmp_path, "tiers:\n  - &t {name: x, model: m, extra: {self: *t}}\n"))
    assert code == 2 and "c.yaml:2: YAML alias cycle" in err


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    code, err = cli(capsys, "validate", write(tmp_path, BOMB))
    assert time.perf_counter() - started < 5  # 9**8 nodes: it took 36 s and 2.4 GB before
    assert code == 2 and "aliases expand to more than" in err and "alias bomb" in err


def test_aliases_within_bounds_still_work() -> None:
    text = FAKE.read_text().replace("max_tokens: 16", "max_tokens: &budget 16")
    config = parse_config(text.replace("max_tokens: 128", "max_tokens: *budget"))
    assert [t.max_tokens for t in config.tiers] == [16, 16]
    node = safe_yaml.parse("a: &x [1, 2]\nb: [*x, *x]\n").node
    assert node is not None and safe_yaml.check_size(node, source="s") == 1 + (1 + 3) + (1 + 1 + 3 + 3)


def test_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed YAML"):
        parse_config("tiers: " + "[" * 5000 + "]" * 5000)


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "validate", write(tmp_path, b"name: caf\xe9\ntiers: []\n"))
    assert code == 2 and "c.yaml:1: config is not UTF-8 text (byte 0xe9 at offset 9)" in err


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    assert safe_yaml.load(write(tmp_path, b"\xef\xbb\xbfname: x\n")).data == {"name": "x"}


def test_a_huge_config_file_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safe_yaml, "MAX_BYTES", 100)
    with pytest.raises(ConfigError, match="larger than 100 bytes"):
        safe_yaml.read_text(write(tmp_path, "x" * 101))


def test_a_bad_regex_in_a_fake_reply_fails_validate_and_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_calls: list[Any]
) -> None:
    path = write(tmp_path, FAKE.read_text().replace(r"'\d+\s*\+\s*\d+'", "'([a-'"))
    code, err = cli(capsys, "validate", path)
    assert code == 2 and "completer.replies.fake/small[0].match" in err and "invalid regex" in err
    code, err = cli(capsys, "run", "--config", path, "2+2?")
    assert code == 2 and "invalid regex" in err and model_calls == []
    with pytest.raises(ValueError, match="invalid regex in FakeReply match"):
        FakeReply("4", match="([a-")


def test_a_question_that_is_not_utf8_is_refused_before_any_model_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_calls: list[Any]
) -> None:
    """What the shell hands Python for the bytes b'2+2\\xff?' (surrogateescape)."""
    question = b"2+2\xff?".decode("utf-8", "surrogateescape")
    store = tmp_path / "runs.sqlite"
    code, err = cli(capsys, "run", "--config", str(FAKE), "--store", str(store), question)
    assert code == 2 and "the question is not valid UTF-8 text: byte 0xff at character 3" in err
    assert model_calls == []


def test_a_bad_store_is_found_before_any_model_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_calls: list[Any]
) -> None:
    not_a_db = write(tmp_path, b"\x00garbage" * 1000, "garbage.sqlite")
    for dsn in (str(tmp_path), not_a_db, "mysql://x/y"):
        code, err = cli(capsys, "run", "--config", str(FAKE), "--store", dsn, "2+2?")
        assert code == 2 and err.startswith("error:")
    assert model_calls == []


def test_an_answer_whose_recording_fails_is_still_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr("cascade.store.sqlite.SQLiteStore.record_run", broken)
    code = main(["run", "--config", str(FAKE), "--store", str(tmp_path / "s.sqlite"), "--json", "2+2?"])
    out, err = capsys.readouterr()
    assert code == 1 and '"answer": "4"' in out
    assert "answered, but the run was not recorded" in " ".join(err.split()) and "disk full" in err


def test_stored_text_with_a_stray_surrogate_is_repaired_not_lost(tmp_path: Path) -> None:
    from cascade import Cascade, CascadeConfig

    fake = FakeCompleter({"fake/small": FakeReply("4\udcff", logprobs=[-0.01]), "fake/large": "5"})
    cascade = Cascade(CascadeConfig.from_yaml(FAKE), completer=fake)
    result = cascade.run("2+2?")
    with open_store(str(tmp_path / "s.sqlite")) as store:
        store.record_run(result, config_name="fake")
        stored = store.get_run(result.run_id)
    assert stored is not None and stored.answer == "4\ufffd"


UNROUTABLE = "tiers:\n  - {name: small, model: nosuchprovider/foo-1b}\n  - {name: large, model: openai/gpt-4o}\n"


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every request that reaches litellm's completer (none may: unit tests refuse the network)."""
    from cascade.completers.litellm_completer import LiteLLMCompleter

    calls: list[Any] = []

    async def spy(self: LiteLLMCompleter, request: Any) -> Any:
        calls.append(request)
        raise AssertionError("a provider was called")

    monkeypatch.setattr(LiteLLMCompleter, "complete", spy)
    return calls


def test_an_unknown_model_is_refused_by_run_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider_calls: list[Any]
) -> None:
    """It was found inside the first call: the other tiers paid, exit 1 with litellm's message."""
    path = write(tmp_path, UNROUTABLE)
    for command in (["validate", path], ["run", "--config", path, "--json", "2+2?"]):
        code, err = cli(capsys, *command)
        assert code == 2 and "c.yaml:2: tiers[0].model: litellm cannot route model 'nosuchprovider/foo-1b'" in err
        assert "gpt-4o" not in err  # only the model at fault is named
    assert provider_calls == []


def test_an_unknown_model_stops_serve_from_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It started, then answered every request with a 502 naming litellm's error."""
    from cascade.cli.serve import main as serve_main
    from cascade.serve.worker import load_cascades

    path = write(tmp_path, UNROUTABLE)
    with pytest.raises(ConfigError, match="litellm cannot route model 'nosuchprovider/foo-1b'"):
        load_cascades([Path(path)])
    assert serve_main(["--config", path]) == 2
    assert "cannot route model 'nosuchprovider/foo-1b'" in capsys.readouterr().err


def test_an_unset_api_key_env_is_named_before_the_call(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only litellm's later message said what was missing, and it named OPENAI_API_KEY, not the
    variable the config names. A warning, not an error: a self-hosted endpoint's key may be optional."""
    from cascade.completers.litellm_completer import LiteLLMCompleter
    from cascade.serve.worker import load_cascades
    from cascade.types import Completion

    async def answer(self: LiteLLMCompleter, request: Any) -> Completion:
        return Completion("4", request.model, 3, 1, token_logprobs=(-0.01,))

    monkeypatch.setattr(LiteLLMCompleter, "complete", answer)
    monkeypatch.delenv("QA_UNSET_KEY", raising=False)
    path = write(tmp_path, "tiers:\n  - {name: small, model: openai/gpt-4o-mini, api_key_env: QA_UNSET_KEY}\n")
    code, err = cli(capsys, "run", "--config", path, "2+2?")
    assert (
        code == 0
        and err.startswith("warning: ")
        and "c.yaml:2: tiers[0].model: api_key_env QA_UNSET_KEY is not set" in err
    )
    load_cascades([Path(path)])
    assert "api_key_env QA_UNSET_KEY is not set" in caplog.text
    monkeypatch.setenv("QA_UNSET_KEY", "sk-set-0000000000")
    code, err = cli(capsys, "run", "--config", path, "2+2?")
    assert code == 0 and "warning" not in err
