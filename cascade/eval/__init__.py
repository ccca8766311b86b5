"""Evaluation: what a cascade buys on the user's own data, in three parts by purpose.

- `cascade.eval.data`: the file formats (one table, `data.formats`): gold-answer datasets as `Item`s
  and logs of per-model outputs as `LogTable`s (ours, RouterBench, RouteLLM).
- `cascade.eval.live`: running a cascade and each tier alone on items through one output cache
  (`cascade eval`, `cascade tune`), optionally on Ray.
- `cascade.eval.analysis`: offline, no model called: tiers and configs replayed on a log, policies,
  the cost–EM curves and the field's metrics (APGR, CPT, AIQ, ΔIBC, ...), bootstrap statistics, the
  typed replay report, tables and plots.

EM itself (normalising and comparing answers) is `cascade.io.exact_match`, shared with the store;
the commands over these parts (`eval`, `tune`, `replay`) are in `cascade.cli`.
"""

from cascade.eval.analysis.policies import CascadePolicy, Outcome, oracle, random_mix, single
from cascade.eval.analysis.replay import replay, replay_file
from cascade.eval.data.formats import FORMATS, load_dataset, read_log
from cascade.eval.data.items import Item, split
from cascade.eval.data.logs import LogItem, LogTable, TierLog, write_log
from cascade.io.exact_match import exact_match, extract, normalize_answer

__all__ = [
    "FORMATS",
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
