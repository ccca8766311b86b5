"""How many reasoning tokens any early exit could save on arithmetic without losing an answer.

    python -m benchmarks.local_exit_bound [--splits calibration,report]

Reads the reasoning tier's runs recorded with answer probes (`local_collect.py`; no model call) and
bounds what an exit rule can save at the full reasoning's EM, with an oracle that knows the gold
answer:

- `oracle_probe`: stop at the first probe whose complete answer is right (on an item the full
  reasoning gets wrong, at the first probe: nothing is lost there). No rule using these probes
  keeps every right answer and stops earlier; its tokens include the probes it paid for.
- `oracle_probe_free`: the same with probes free (any probing schedule at least this dense).
- `first_written`: stop right after the final answer is first written in the reasoning (the
  earliest a reader of the text could know it; items the reasoning gets wrong stop at once).

Each figure is tokens as a share of the full reasoning's (probes taken out), with a bootstrap 95%
interval over items; the issue's target is a 30% cut (0.70).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.support.local_outputs import THINK, ItemOutputs, load, without_probes
from cascade.eval.analysis.stats import bootstrap_ci, ratio_of_sums
from cascade.io.exact_match import exact_match

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def tokens_at(row: ItemOutputs, char: int) -> float:
    """Reasoning tokens written by character `char`, interpolated between the probes' positions."""
    assert row.recorded is not None
    full = without_probes(row.recorded)
    chars = [0.0] + [float(p.at_char) for p in row.recorded.probes] + [float(len(row.recorded.text))]
    toks = [0.0] + [float(p.at_token - full.prompt_tokens) for p in row.recorded.probes]
    toks.append(float(full.completion_tokens))
    return float(np.interp(char, chars, toks))


def bounds(row: ItemOutputs) -> tuple[float, float, float, float]:
    """(full, oracle_probe, oracle_probe_free, first_written) reasoning tokens of one item."""
    assert row.recorded is not None
    output, probes, plain = row.outputs[THINK], row.recorded.probes, without_probes(row.recorded)
    full = float(plain.completion_tokens)
    probe_at, free_at, paid = full + sum(p.prompt_tokens + p.completion_tokens for p in probes), full, 0.0
    for probe in probes:
        paid += probe.prompt_tokens + probe.completion_tokens
        right = probe.complete and exact_match(probe.answer, row.item.answers, "number")
        if not output.correct or right:  # a wrong reasoning loses nothing by stopping at once
            free_at = float(probe.at_token - plain.prompt_tokens)
            probe_at = free_at + paid
            break
    written = 0.0
    if output.correct and output.answer is not None:
        numbers = NUMBER.finditer(row.recorded.text)
        first = next((m.end() for m in numbers if exact_match(m.group(), output.answer, "number")), None)
        written = tokens_at(row, first) if first is not None else full
    return full, probe_at, min(free_at, full), written


def ratio(full: np.ndarray, kept: np.ndarray) -> dict[str, float | list[float] | None]:
    estimate = ratio_of_sums(kept, full, 2000)
    assert estimate is not None, "reasonings have tokens"
    return estimate.as_dict()


def main(splits: Sequence[str]) -> dict[str, object]:
    rows = [r for s in splits for r in load("arithmetic", s, tiers=(THINK,)) if THINK in r.outputs and r.recorded]
    if not rows:
        raise SystemExit(
            "no reasoning recorded with probes in the output cache: collect it first, per split "
            f"(python -m benchmarks.local_collect --families arithmetic --split SPLIT --tiers {THINK}; hours here)"
        )
    table = np.array([bounds(r) for r in rows])
    correct = np.array([r.outputs[THINK].correct for r in rows], dtype=float)
    ci, right = bootstrap_ci(correct, 2000), correct.astype(bool)
    return {
        "benchmark": "local_exit_bound",
        "family": "arithmetic",
        "splits": list(splits),
        "n": len(rows),
        "full_em": float(correct.mean()),
        "full_em_ci": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
        "full_tokens": int(table[:, 0].sum()),
        "oracle_probe": ratio(table[:, 0], table[:, 1]),
        "oracle_probe_free": ratio(table[:, 0], table[:, 2]),
        "first_written": ratio(table[:, 0], table[:, 3]),
        "on_right_items": {  # what a rule that cannot tell right from wrong reasonings keeps
            "n": int(right.sum()),
            "oracle_probe": ratio(table[right, 0], table[right, 1]),
            "oracle_probe_free": ratio(table[right, 0], table[right, 2]),
            "first_written": ratio(table[right, 0], table[right, 3]),
        },
        "target_ratio": 0.70,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="calibration,report")
    print(json.dumps(main(parser.parse_args().splits.split(","))))
