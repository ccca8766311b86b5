"""Evaluation: gold-answer datasets, EM scoring, logged per-model outputs, offline replay and metrics.

What a cascade buys, on the user's own data: EM against tokens and money, next to every tier
alone, random mixing and the oracle, with the field's metrics (APGR, CPT, AIQ, ΔIBC, ...).
Plotting (`cascade.eval.plot`) and tables (`cascade.eval.report`) are imported on demand.
"""

from cascade.eval.datasets import Item, load_dataset, split
from cascade.eval.logs import LogItem, LogTable, TierLog, read_log, write_log
from cascade.eval.policies import CascadePolicy, Outcome, oracle, random_mix, single
from cascade.eval.replay import replay, replay_file
from cascade.eval.scoring import exact_match, extract, normalize_answer

__all__ = [
    "CascadePolicy",
    "Item",
    "LogItem",
    "LogTable",
    "Outcome",
    "TierLog",
    "exact_match",
    "extract",
    "load_dataset",
    "normalize_answer",
    "oracle",
    "random_mix",
    "read_log",
    "replay",
    "replay_file",
    "single",
    "split",
    "write_log",
]
