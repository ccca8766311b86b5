"""A dataset or log a user hands `cascade eval` / `replay` that cannot be read: exit 2 and a message
naming the file and the cause, never a traceback (binary files and stray lines ended in one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.cli.main import main

FAKE = Path(__file__).resolve().parents[3] / "configs" / "fake.yaml"
BINARY = bytes(range(128, 256)) * 4
CASES = [
    ("binary.jsonl", BINARY, "is not UTF-8 text (byte 0x80)"),
    ("text.jsonl", b'{"question": "2+2?", "answer": "4"}\nnot json\n', "text.jsonl:2: not valid JSON"),
    ("lists.jsonl", b"[1, 2]\n", "lists.jsonl:1: each line must be a JSON object, got list"),
    ("empty.jsonl", b"\n", "has no"),
    ("broken.json", b'{"data": [', "is not valid JSON"),
]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())


@pytest.mark.parametrize(("name", "data", "problem"), CASES)
def test_eval_names_the_unreadable_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    code, err = cli(capsys, "eval", "--config", str(FAKE), "--dataset", str(path), "--out", str(tmp_path / "r.json"))
    assert code == 2 and err.startswith(f"error: dataset {path}") and problem in err


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        CASES[0],
        *CASES[2:4],
        ("text.jsonl", b'{"id": 1, "tiers": {}}\nnot json\n', "text.jsonl:2: not valid JSON"),
        ("fields.jsonl", b'{"question": "2+2?", "answer": "4"}\n', "cannot be read as cascade: missing field 'tiers'"),
        ("wrong.jsonl", b'{"id": 1, "tiers": 3}\n', "cannot be read as cascade: AttributeError"),
        ("costs.csv", b"prompt,x|total_cost\nq,abc\n", "(routerbench) has no models"),
    ],
)
def test_replay_names_the_unreadable_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    code, err = cli(capsys, "replay", "--dataset", str(path))
    assert code == 2 and err.startswith(f"error: log {path}") and problem in err
