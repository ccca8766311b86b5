"""Dataset loading: plain files with and without a field mapping, the shared/data formats, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.errors import UserError
from cascade.eval.data.formats import detect_format, load_dataset
from cascade.eval.data.items import infer_task, split

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not available")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_jsonl_needs_no_mapping_and_takes_aliases(tmp_path: Path) -> None:
    lines = [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "Moon year?", "answer": ["1969", "69"]},
    ]
    path = _write(tmp_path / "mine.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n")
    items = load_dataset(path)
    assert [i.question for i in items] == ["Capital of France?", "Moon year?"]
    assert items[0].answers == ["Paris"] and items[1].answers == ["1969", "69"]
    assert items[0].id == "mine-0" and items[0].task == "first_line"


def test_csv_with_a_field_mapping_and_inferred_number_task(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", "qid,text_in,gold\nx1,2+2?,4\nx2,3*3?,9\n")
    items = load_dataset(path, question_field="text_in", answer_field="gold", id_field="qid")
    assert [(i.id, i.question, i.answers, i.task) for i in items] == [
        ("x1", "2+2?", ["4"], "number"),
        ("x2", "3*3?", ["9"], "number"),
    ]


def test_json_with_data_key_booleans_and_task_override(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.json", json.dumps({"data": [{"query": "Is it?", "label": True}]}))
    items = load_dataset(path)
    assert items[0].answers == ["yes"] and items[0].task == "yesno"
    assert load_dataset(path, task="first_line")[0].task == "first_line"


def test_missing_fields_and_files_are_user_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", json.dumps({"q": "x", "a": "y"}) + "\n")
    with pytest.raises(UserError, match="question field"):
        load_dataset(path)
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "nope.jsonl")


def test_infer_task() -> None:
    assert infer_task(["3", "1,200", "-4.5"]) == "number"
    assert infer_task(["Yes", "no"]) == "yesno"
    assert infer_task(["A", "d"]) == "choice"
    assert infer_task(["Paris"]) == "first_line"


def test_builtin_formats_on_small_files(tmp_path: Path) -> None:
    gsm = _write(tmp_path / "gsm8k_test.jsonl", json.dumps({"question": "q", "answer": "a <<1+1=2>>\n#### 1,234"}))
    assert load_dataset(gsm)[0].answers == ["1234"]
    arith = _write(tmp_path / "AddSub.json", json.dumps([{"iIndex": 7, "sQuestion": " q ", "lSolutions": ["43"]}]))
    assert [(i.id, i.answers) for i in load_dataset(arith)] == [("addsub-7", ["43"])]
    svamp = _write(tmp_path / "SVAMP.json", json.dumps([{"ID": "c1", "Body": "B", "Question": "Q?", "Answer": 5.0}]))
    assert (load_dataset(svamp)[0].question, load_dataset(svamp)[0].answers) == ("B. Q?", ["5"])
    mmlu = _write(tmp_path / "x_test.csv", "question,choice0,choice1,choice2,choice3,answer\nWhich?,a,b,c,d,2\n")
    item = load_dataset(mmlu)[0]
    assert item.question == "Which?\nA) a\nB) b\nC) c\nD) d" and item.answers == ["C"] and item.task == "choice"
    sst = _write(tmp_path / "sst2_dev.tsv", "text\tlabel\ngreat film \t1\n")
    assert load_dataset(sst)[0].answers == ["positive"]
    boolq = _write(tmp_path / "boolq.json", json.dumps([{"question": "is it", "answer": False, "passage": "P"}]))
    item = load_dataset(boolq)[0]
    assert item.answers == ["no"] and item.prompt == "P\n\nQuestion: is it?"


def test_arc_easy_options_become_letters(tmp_path: Path) -> None:
    record = {
        "instruction": "Please choose the correct answer to the question: Why?\n\nAnswer1: x. Answer2: y."
        "\n\nAnswer format: answer1/answer2",
        "answer": "answer2",
    }
    path = tmp_path / "arc_easy"
    path.mkdir()
    item = load_dataset(_write(path / "test.json", json.dumps([record])))[0]
    assert item.question == "Why?\nA) x.\nB) y." and item.answers == ["B"]


@needs_data
@pytest.mark.parametrize(
    ("relative", "fmt", "count", "first_answers"),
    [
        ("qa/NQ-open.dev.jsonl", "nq", 3610, ["14 December 1972 UTC", "December 1972"]),
        ("qa/gsm8k_test.jsonl", "gsm8k", 1319, ["18"]),
        ("qa/arith/AddSub.json", "arith", 395, ["43"]),
        ("qa/arith/MultiArith.json", "arith", 600, ["39"]),
        ("qa/arith/SingleEq.json", "arith", 508, ["43"]),
        ("qa/arith/SVAMP.json", "svamp", 1000, ["51"]),
        ("qa/arc_easy/test.json", "arc_easy", 2376, ["A"]),
        ("qa/boolq_validation.json", "boolq", 3270, ["no"]),
        ("qa/sst2_dev.tsv", "sst2", 872, ["positive"]),
        ("mmlu/test", "mmlu", 14042, ["B"]),
    ],
)
def test_real_shared_files(relative: str, fmt: str, count: int, first_answers: list[str]) -> None:
    path = DATA / relative
    assert detect_format(path) == fmt
    items = load_dataset(path)
    assert len(items) == count and items[0].answers == first_answers
    assert len({i.id for i in items}) == count


def test_split_is_disjoint_deterministic_and_proportional() -> None:
    items = list(range(101))
    tune, test = split(items, [0.3, 0.7], seed=4)
    assert not set(tune) & set(test) and sorted(tune + test) == items
    assert len(tune) == 30 and len(test) == 71
    assert split(items, [0.3, 0.7], seed=4) == [tune, test]
    assert split(items, [0.3, 0.7], seed=5) != [tune, test]
    a, b, c = split(items, [0.2, 0.2, 0.2], seed=0)
    assert len(a) + len(b) + len(c) == 61 and not (set(a) & set(b) or set(b) & set(c) or set(a) & set(c))
    with pytest.raises(ValueError):
        split(items, [0.8, 0.5])
