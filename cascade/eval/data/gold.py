"""Readers for the gold-answer sets in shared/data, each in its original format (see SOURCES.md).

Each returns `Item`s with canonical gold answers (numbers as `cascade.io.answers.number` writes them,
choice letters, yes/no), so scoring compares like with like.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from cascade.errors import UserError
from cascade.eval.data.items import Item, read_records
from cascade.io.answers import number

LETTERS = "ABCDEFGHIJ"
_ARC_OPTION = re.compile(r"Answer(\d+):\s*(.*?)(?=\s*Answer\d+:|\Z)", re.DOTALL)


def _num(value: Any) -> str:
    canonical = number(str(value))
    if canonical is None:
        raise UserError(f"gold answer is not a number: {value!r}")
    return canonical


def read_nq(path: Path) -> list[Item]:
    """NQ-open: {question, answer: [aliases]}; short free text."""
    records = read_records(path, "jsonl")
    return [Item(f"nq-{i}", r["question"], [str(a) for a in r["answer"]], "first_line") for i, r in enumerate(records)]


def read_gsm8k(path: Path) -> list[Item]:
    """GSM8K: the gold number follows '#### ' at the end of the worked solution."""
    items = []
    for i, r in enumerate(read_records(path, "jsonl")):
        solution, _, gold = r["answer"].rpartition("####")
        items.append(Item(f"gsm8k-{i}", r["question"], [_num(gold.strip())], "number", meta={"solution": solution}))
    return items


def read_arith(path: Path) -> list[Item]:
    """AddSub, MultiArith, SingleEq: {iIndex, sQuestion, lSolutions: [number]}."""
    data = json.loads(path.read_text(encoding="utf-8"))
    stem = path.stem.lower()
    return [
        Item(f"{stem}-{r.get('iIndex', i)}", r["sQuestion"].strip(), [_num(r["lSolutions"][0])], "number")
        for i, r in enumerate(data)
    ]


def read_svamp(path: Path) -> list[Item]:
    """SVAMP: the question is `Body` followed by `Question`; `Answer` is a number."""
    data = json.loads(path.read_text(encoding="utf-8"))
    items = []
    for r in data:
        body = r["Body"].strip()
        question = f"{body}{'' if body.endswith('.') else '.'} {r['Question'].strip()}"
        items.append(Item(str(r["ID"]), question, [_num(r["Answer"])], "number", meta={"type": r.get("Type")}))
    return items


def with_options(question: str, options: list[str]) -> str:
    """A multiple-choice question with its options inlined as 'A) ...' lines."""
    return "\n".join([question.strip(), *(f"{LETTERS[i]}) {opt.strip()}" for i, opt in enumerate(options))])


def read_arc_easy(path: Path) -> list[Item]:
    """ARC-Easy (LLM-Adapters copy): options 'Answer1: ...' inside the instruction, gold 'answerN'."""
    items = []
    for i, r in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        body = r["instruction"].split("question:", 1)[-1]
        stem, _, rest = body.partition("\n\nAnswer1:")
        rest = "Answer1:" + rest.split("\n\nAnswer format")[0]
        options = [text for _, text in _ARC_OPTION.findall(rest)]
        letter = LETTERS[int(r["answer"].removeprefix("answer")) - 1]
        question = with_options(stem, options) if options else r["instruction"]
        items.append(Item(f"arc_easy-{i}", question, [letter], "choice", meta={"choices": options}))
    return items


def read_mmlu(path: Path) -> list[Item]:
    """MMLU CSV (question, choice0..3, answer index), one file or a directory of subject files."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    items = []
    for file in files:
        subject = re.sub(r"_(test|dev|val)$", "", file.stem)
        with file.open(newline="", encoding="utf-8") as fh:
            for i, r in enumerate(csv.DictReader(fh)):
                options = [r[k] for k in sorted(r) if k.startswith("choice")]
                letter = LETTERS[int(r["answer"])]
                meta = {"subject": subject, "choices": options}
                items.append(
                    Item(f"{subject}-{i}", with_options(r["question"], options), [letter], "choice", meta=meta)
                )
    return items


def read_boolq(path: Path) -> list[Item]:
    """BoolQ: a yes/no question about a passage (kept as the item's context)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Item(f"boolq-{i}", r["question"].strip() + "?", ["yes" if r["answer"] else "no"], "yesno", r["passage"])
        for i, r in enumerate(data)
    ]


def read_sst2(path: Path) -> list[Item]:
    """SST-2 TSV (text, label 0/1): the answer is the word 'positive' or 'negative'."""
    items = []
    for i, r in enumerate(read_records(path, "tsv")):
        label = "positive" if r["label"].strip() == "1" else "negative"
        items.append(Item(f"sst2-{i}", r["text"].strip(), [label], "first_line", meta={"label": int(r["label"])}))
    return items
