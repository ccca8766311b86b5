"""The six development families of the local default, and their fixed calibration/report splits.

Decided once, before any model output was seen, and never changed:

- each family's items are pooled from its files (`../shared/data`, see SOURCES.md) in a fixed
  order and shuffled with `numpy.random.default_rng(SEED)`;
- the first `N_CALIBRATION` of the shuffle are the calibration split (what the shipped scorer,
  the skip policy and the early-exit rule are trained and tuned on);
- the next `N_REPORT` are the report split (what `benchmarks/local_default.py` reports on; never
  used for training, tuning or choosing anything).

Every family is asked the way a user would ask it: the question as is (multiple choice with its
options inlined as "A) ..." lines, BoolQ with its passage), SST-2 as a sentiment question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cascade.eval.data.gold import (
    read_arc_easy,
    read_arith,
    read_boolq,
    read_gsm8k,
    read_mmlu,
    read_nq,
    read_sst2,
    read_svamp,
)
from cascade.eval.data.items import Item

SEED = 12
N_CALIBRATION = 150
N_REPORT = 100
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SST2_TEMPLATE = "Is the sentiment of this review positive or negative?\nReview: {question}"


@dataclass(frozen=True)
class Family:
    """A question type: how to read its items and how a query is made from an item."""

    name: str
    load: Callable[[Path], list[Item]]
    template: str | None = None

    def query(self, item: Item) -> str:
        return self.template.replace("{question}", item.prompt) if self.template else item.prompt


def _arithmetic(root: Path) -> list[Item]:
    arith = root / "qa" / "arith"
    items = [*read_arith(arith / "AddSub.json"), *read_arith(arith / "MultiArith.json")]
    items += read_arith(arith / "SingleEq.json")
    items += read_svamp(arith / "SVAMP.json")
    return items + read_gsm8k(root / "qa" / "gsm8k_test.jsonl")


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("arithmetic", _arithmetic),
        Family("boolq", lambda root: read_boolq(root / "qa" / "boolq_validation.json")),
        Family("nq", lambda root: read_nq(root / "qa" / "NQ-open.dev.jsonl")),
        Family("sst2", lambda root: read_sst2(root / "qa" / "sst2_dev.tsv"), SST2_TEMPLATE),
        Family("arc_easy", lambda root: read_arc_easy(root / "qa" / "arc_easy" / "test.json")),
        Family("mmlu", lambda root: read_mmlu(root / "mmlu" / "test")),
    )
}


def splits(family: Family, root: Path = DATA) -> tuple[list[Item], list[Item]]:
    """(calibration, report) items of a family: disjoint, the same on every run."""
    items = family.load(root)
    order = np.random.default_rng(SEED).permutation(len(items))
    shuffled = [items[int(i)] for i in order]
    return shuffled[:N_CALIBRATION], shuffled[N_CALIBRATION : N_CALIBRATION + N_REPORT]
