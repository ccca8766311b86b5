"""The label-free drift trigger's false-probe rate and delay, on many orders of label_free.py's streams.

    python -m benchmarks.drift_trigger --log ../shared/data/routerbench/arc_challenge_train.csv [--seeds 0 1 2 3 4]
        [--orders 30] [--rates 0.001 0.0002 0.00005]

`label_free.py` serves one order per seed, so an undrifted stream offers ~700 tested answers: too few
to see a false-probe rate of 1/5000. Here, per seed, the warm-up is tuned exactly as there (`cascade
tune --logs --reference strongest`, gold blanked, `--selection` as given) and the tuned config runs
in-process on the same replayed log (the engine and fake completer `cascade serve` uses), once clean
and once drifted as `label_free.py --drift-scope tier` drifts it. Each run's label-free record (served
below the strongest tier or not; each lower tier's verifier confidence) then feeds
`cascade.audit.shift.ShiftTest` at each stated rate:

- false probes: `--orders` random re-orderings of the clean records (unchanged traffic by
  construction); a trigger records a new baseline, as a lifted probe does in the monitor; reported per
  answer tested, with an exact Poisson 95% interval, against the stated rate;
- delay: on the drifted stream (its own order), answers from the drift to the trigger.

Log replays only; no model is called. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import chi2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.label_free import Replay, server_config, strongest_of, tune_on_warmup, weaker_model
from cascade.audit.shift import ShiftTest
from cascade.config.schema import load_config
from cascade.eval.data.formats import read_log
from cascade.run.engine import Cascade

Record = tuple[bool, dict[str, float]]  # served below the strongest tier; lower tiers' confidences


def records(config: dict[str, Any], prompts: Sequence[str], top: str, folder: Path) -> list[Record]:
    """Each prompt through the config in-process: what the drift trigger sees of the run."""
    config = {k: v for k, v in config.items() if k != "audit"}
    (folder / "tables.json").write_text(json.dumps(config["completer"].pop("tables")))
    (folder / "served.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cascade = Cascade.from_yaml(str(folder / "served.yaml"))
    try:
        out: list[Record] = []
        for prompt in prompts:
            result = cascade.run(prompt)
            lower = {a.tier: a.confidence for a in result.attempts if a.tier != top and a.confidence is not None}
            out.append((result.final_tier != top, {k: float(v) for k, v in lower.items() if v is not None}))
        return out
    finally:
        cascade.close()


def triggers(stream: Sequence[Record], rate: float) -> tuple[list[int], int]:
    """Where a ShiftTest at `rate` fires along the stream (a new baseline after each), and answers tested."""
    test, fired, tested = ShiftTest(rate), [], 0
    for i, (below, confidences) in enumerate(stream):
        tested += not test.recording
        if test.add(below, confidences) is not None:
            fired.append(i)
            test.reset()
    return fired, tested


def poisson_ci(count: int, exposure: int) -> list[float]:
    """Exact (Garwood) 95% interval of a rate per answer."""
    low = chi2.ppf(0.025, 2 * count) / 2 if count else 0.0
    return [float(low / exposure), float(chi2.ppf(0.975, 2 * count + 2) / 2 / exposure)]


def one_seed(log: Any, seed: int, args: argparse.Namespace) -> dict[str, Any] | None:
    reference = strongest_of(log)
    order = np.random.default_rng(seed).permutation(len(log)).tolist()
    items = [log.items[i] for i in order]
    options = argparse.Namespace(seed=seed, warmup=args.warmup, min_agreement=args.min_agreement,
                                 selection=args.selection, router="tuned", rate=0.05, promise=0.97,
                                 drift_scope="tier", drift_model=None)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="drift-trigger-") as tmp:
        folder = Path(tmp)
        tuned, _ = tune_on_warmup(log.subset(order[: args.warmup]), options, folder)
        chosen = load_config(tuned)
        if len(chosen.tiers) == 1:
            return None
        top, half = chosen.tiers[-1].name, len(items) // 2
        weak = weaker_model(log.subset(order[: args.warmup]), reference, tuned, options)
        streams = {}
        for name, drift in {"clean": None, "drift": (half, weak)}.items():
            (folder / name).mkdir()
            config = server_config(tuned, items, Replay.of(tuned, log, "tier", drift), options)
            streams[name] = records(config, [i.prompt for i in items], top, folder / name)
    draw = np.random.default_rng(1000 + seed)
    shuffles = [[streams["clean"][j] for j in draw.permutation(len(items))] for _ in range(args.orders)]
    rows: dict[str, Any] = {}
    for rate in args.rates:
        counts = [triggers(s, rate) for s in shuffles]
        fired, tested = sum(len(f) for f, _ in counts), sum(t for _, t in counts)
        drifted, _ = triggers(streams["drift"], rate)
        after = [i for i in drifted if i >= half]
        rows[f"{rate:g}"] = {
            "false_probes": fired, "answers_tested": tested, "per_answer": fired / tested,
            "per_answer_ci95": poisson_ci(fired, tested), "drift_items_to_trigger": after[0] - half + 1 if after
            else None, "triggers_before_drift": sum(i < half for i in drifted),
        }  # fmt: skip
    below = [round(float(np.mean([r[0] for r in streams[k][half:]])), 3) for k in ("clean", "drift")]
    return {"seed": seed, "tuned": chosen.description, "share_below_clean_vs_drifted": below, "rates": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--log", type=Path, required=True)
    add("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    add("--orders", type=int, default=30, help="re-orderings of each clean stream")
    add("--rates", type=float, nargs="+", default=[0.001, 0.0002, 0.00005], help="stated false-probe rates")
    add("--warmup", type=int, default=300)
    add("--min-agreement", type=float, default=0.98)
    add("--selection", choices=["simultaneous", "each"], default="each")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    log = read_log(args.log)
    log = log.select(log.models)
    seeds = []
    for seed in args.seeds:
        row = one_seed(log, seed, args)
        print(json.dumps(row or {"seed": seed, "skipped": "tuned to the strongest model alone"}), file=sys.stderr)
        if row is not None:
            seeds.append(row)
    total: dict[str, Any] = {}
    for rate in args.rates:
        rows = [s["rates"][f"{rate:g}"] for s in seeds]
        fired, tested = sum(r["false_probes"] for r in rows), sum(r["answers_tested"] for r in rows)
        total[f"{rate:g}"] = {
            "false_probes_per_answer": fired / tested if tested else None,
            "ci95": poisson_ci(fired, tested) if tested else None, "answers_tested": tested,
            "drift_items_to_trigger": [r["drift_items_to_trigger"] for r in rows],
        }  # fmt: skip
    summary = {"benchmark": "drift_trigger", "log": str(args.log), "selection": args.selection,
               "orders": args.orders, "seeds": seeds, "by_rate": total,
               "elapsed_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
