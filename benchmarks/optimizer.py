"""The optimizer on held-apart items: `cascade tune --logs` on one half of a log, `cascade replay --config`
on the other half, and the other way round, over several seeds of the split.

    python -m benchmarks.optimizer [--seeds 5] [--tolerance 0.01] [--confidence 0.95] [--tasks arc,winogrande,...]
    python -m benchmarks.optimizer --min-agreement 0.98 [--seeds 5] [--tasks arc,gsm8k,...]   # without gold (issue 25)
    python -m benchmarks.optimizer ... --selection each   # each candidate's own bound, not the simultaneous one

For each seed the log's items are split in two halves (seeded); the optimizer tunes on one half and the
written config (YAML plus scorer) is replayed, unchanged, on the other; then the halves swap. Each
direction is reported (n, cost ratio and EM difference against the strongest model alone, paired
bootstrap 95% intervals), and the two held-apart halves pooled: every item scored by a config tuned
without it. The "strongest model" is the most accurate model on the whole log (GPT-4 on all five).
Targets (issue 11): ARC-Challenge cost ≤ 0.5× with EM ≥ strongest − 1 point; Winogrande and MBPP
cost ≤ 1.0× with EM ≥ strongest − 1 point; RouteLLM GSM8K and MMLU: APGR and cost at strongest − 1
point, against today's replay (GSM8K APGR 0.670, cost −2.2% at matched EM). Ends with one JSON line.

With `--min-agreement A` the tuning is label-free (`cascade tune --logs HALF --reference strongest
--min-agreement A`): the tuning half's gold columns are not read, GPT-4's answers are the labels;
the held-out half is still scored against gold (EM), and also by agreement with GPT-4. Target
(issue 25): ARC-Challenge EM ≥ GPT-4's − 1.5 points at cost ≤ 0.65× with A = 0.98. Each direction also
says whether the promise held on the held-out half (agreement ≥ A; with gold, EM difference ≥ −tolerance).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cascade.cli.tune_logs import selection_dict, task_of, validate
from cascade.config.schema import AnswerConfig, load_config
from cascade.eval.analysis.config_replay import run_config
from cascade.eval.analysis.config_report import config_report, vs_strongest
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogTable
from cascade.io.answers import extractor
from cascade.optimize.candidates import Gate, Structure
from cascade.optimize.reference import relabel
from cascade.optimize.select import Objective
from cascade.optimize.tuner import Settings, single, tune, tune_structure
from cascade.optimize.writer import answer_format, write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LOGS = {
    "arc": DATA / "routerbench" / "arc_challenge_train.csv",
    "winogrande": DATA / "routerbench" / "winograde_train.csv",
    "mbpp": DATA / "routerbench" / "mbpp_train.csv",
    "gsm8k": DATA / "routellm" / "gsm8k_responses.csv",
    "mmlu": DATA / "routellm" / "mmlu_responses",
}
TARGET_RATIO = {"arc": 0.5, "winogrande": 1.0, "mbpp": 1.0}
LABEL_FREE_TARGET = {"arc": (0.65, 0.015)}  # cost ratio at most, EM loss at most (issue 25)
TODAY = {"gsm8k": {"apgr": 0.670, "cost_reduction_at_matched_em": -0.022}}


def halves(log: LogTable, seed: int) -> tuple[LogTable, LogTable]:
    order = np.random.default_rng(seed).permutation(len(log))
    half = len(log) // 2
    return log.subset(sorted(order[:half].tolist())), log.subset(sorted(order[half:].tolist()))


def direction(tune_log: LogTable, test_log: LogTable, strongest: str, settings: Settings, work: Path) -> dict[str, Any]:
    """Tune on one half, write the config, replay it unchanged on the other half."""
    task = task_of(tune_log)
    started = time.perf_counter()
    result = tune(tune_log, extractor(AnswerConfig(format=answer_format(task))), settings)
    seconds = time.perf_counter() - started
    path = work / "tuned.yaml"
    write(result, path, task=task, sources=["tuning half"])
    validate(path)
    run = run_config(load_config(path), test_log)
    report = config_report(run, seed=settings.seed, n_resamples=1000)
    strong = test_log.select([strongest])
    paired = vs_strongest(run.correct, run.cost, strong.correct(strongest), strong.cost(strongest), settings.seed, 1000)
    bound = result.selection.bound(result.chosen)
    out = {
        "chosen": result.chosen.structure.label(),
        "thresholds": list(result.chosen.thresholds),
        "pays": result.pays,
        "n_tune": len(result.log),
        "selection": selection_dict(result.selection),
        "tune": {"cost_ratio": result.chosen.ratio, "em_delta": result.chosen.diff, "em_delta_bound": bound},
        "n_test": len(run.correct),
        "cost_ratio": paired["cost_ratio_vs_strongest"],
        "em_delta": paired["em_delta_vs_strongest"],
        "apgr": report["metrics"].get("apgr"),
        "seconds": round(seconds, 1),
        **({"agreement": held_out_agreement(path, test_log, strongest, settings.seed)} if settings.reference else {}),
        "_arrays": (run.correct, run.cost, strong.correct(strongest), strong.cost(strongest)),
    }
    if len(tune_log.models) == 2:
        out["curve"] = curve(tune_log, test_log, strongest, settings, work)
    held = out["agreement"]["value"] - 1.0 if settings.reference else out["em_delta"]["value"]
    out["promise_held"] = bool(held >= -settings.objective.tolerance - 1e-9)
    return out


def held_out_agreement(path: Path, test_log: LogTable, strongest: str, seed: int) -> dict[str, Any]:
    """The written config's agreement with the strongest model on the held-out half (paired 95% interval)."""
    relabelled = relabel(test_log, strongest).select(test_log.models)
    run = run_config(load_config(path), relabelled)
    paired = vs_strongest(run.correct, run.cost, np.ones_like(run.correct), relabelled.cost(strongest), seed, 1000)
    delta = paired["em_delta_vs_strongest"]
    return {"value": 1.0 + delta["value"], "ci": [1.0 + x for x in delta["ci"] or []], "n": delta["n"]}


def curve(tune_log: LogTable, test_log: LogTable, strongest: str, settings: Settings, work: Path) -> dict[str, Any]:
    """Two models (RouteLLM's logs): the cheap model judged by a scorer trained on the tuning half, then the
    strong one; its cost-EM curve on the held-apart half (thresholds swept there, as RouteLLM reports APGR)."""
    cheap = next(m for m in tune_log.models if m != strongest)
    structure = Structure((Gate(single(cheap), "scorer"),), single(strongest))
    task = task_of(tune_log)
    result = tune_structure(tune_log, extractor(AnswerConfig(format=answer_format(task))), structure, settings)
    path = work / "curve.yaml"
    write(result, path, task=task, sources=["tuning half"])
    report = config_report(run_config(load_config(path), test_log), seed=settings.seed, n_resamples=200)
    strong = report["baselines"][strongest]
    points = report["policies"][0]["curve"]
    matched = [p["cost_usd"] for p in points if p["em"] >= strong["em"] - 0.01 - 1e-12]
    keys = ("apgr", "cpt50", "cpt80", "aiq", "delta_ibc", "cost_reduction_at_matched_em")
    return {key: report["metrics"].get(key) for key in keys} | {
        "cost_ratio_at_strong_em_minus_1pt": min(matched) / strong["cost_usd"] if matched else None,
        "scorer_auroc_tuning_oof": next(iter(result.scorer.report["calibration"].values()))["auroc"]
        if result.scorer
        else None,
    }


def run_task(name: str, seeds: list[int], settings: Settings) -> dict[str, Any]:
    log = read_log(LOGS[name])
    full = log.select(log.models)
    strongest = max(full.models, key=lambda m: (full.correct(m).mean(), -full.cost(m).sum()))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            seeded = Settings(objective=settings.objective, seed=seed, reference=settings.reference)
            a, b = halves(full, seed)
            pair = [direction(x, y, strongest, seeded, Path(tmp)) for x, y in ((a, b), (b, a))]
            arrays = [np.concatenate([p["_arrays"][k] for p in pair]) for k in range(4)]
            pooled = vs_strongest(*arrays, seed=seed, n_resamples=1000)
            for p in pair:
                p.pop("_arrays")
            runs.append({"seed": seed, "directions": pair, "pooled": pooled})
            print(
                json.dumps(
                    {"task": name, "seed": seed, "pooled": _short(pooled), "chosen": [p["chosen"] for p in pair]}
                )
            )
    return summarise_task(name, strongest, full, runs, settings.reference is not None)


def _short(paired: dict[str, Any]) -> dict[str, Any]:
    return {k.split("_vs_")[0]: round(v["value"], 4) for k, v in paired.items()}


def summarise_task(
    name: str, strongest: str, full: LogTable, runs: list[dict[str, Any]], label_free: bool = False
) -> dict[str, Any]:
    directions = [d for r in runs for d in r["directions"]]
    ratios = [d["cost_ratio"]["value"] for d in directions]
    deltas = [d["em_delta"]["value"] for d in directions]
    target, loss = LABEL_FREE_TARGET.get(name, (None, 0.0)) if label_free else (TARGET_RATIO.get(name), 0.01)
    met = [target is not None and r <= target + 1e-9 and e >= -loss - 1e-9 for r, e in zip(ratios, deltas, strict=True)]
    agreements = [d["agreement"]["value"] for d in directions if "agreement" in d]
    paying = [d for d in directions if d["pays"]]
    pooled_ratio = [r["pooled"]["cost_ratio_vs_strongest"]["value"] for r in runs]
    pooled_delta = [r["pooled"]["em_delta_vs_strongest"]["value"] for r in runs]
    return {
        "strongest": strongest,
        "strongest_em": float(full.correct(strongest).mean()),
        "n_items": len(full),
        "runs": runs,
        "directions": len(directions),
        "mean_cost_ratio": float(np.mean(ratios)),
        "mean_em_delta": float(np.mean(deltas)),
        "mean_apgr": _mean([d["apgr"] for d in directions]),
        "curve": _curve_means([d["curve"] for d in directions if "curve" in d]),
        "directions_meeting_target": int(sum(met)) if target is not None else None,
        "pooled_mean_cost_ratio": float(np.mean(pooled_ratio)),
        "pooled_mean_em_delta": float(np.mean(pooled_delta)),
        "paying_directions": len(paying),
        "promise_held_in_paying": sum(d["promise_held"] for d in paying),
        "mean_critical_value": float(np.mean([d["selection"]["critical_value"] for d in directions])),
        "target_cost_ratio": target,
        "target_em_loss": loss,
        "mean_agreement_held_out": _mean(agreements),
        "today": TODAY.get(name),
    }


def _curve_means(curves: list[dict[str, Any]]) -> dict[str, float | None] | None:
    if not curves:
        return None
    return {key: _mean([c[key] for c in curves]) for key in curves[0]}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--min-agreement", type=float, help="label-free: agreement with the strongest model, not EM")
    parser.add_argument("--selection", choices=("simultaneous", "each"), default="simultaneous")
    parser.add_argument("--tasks", default=",".join(LOGS))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "optimizer.json")
    args = parser.parse_args()
    tolerance = args.tolerance if args.min_agreement is None else 1.0 - args.min_agreement
    objective = Objective("tolerance", tolerance, 0.0, args.confidence, selection=args.selection)
    settings = Settings(objective=objective, reference=None if args.min_agreement is None else "strongest")
    seeds = list(range(args.seeds))
    tasks = {name: run_task(name, seeds, settings) for name in args.tasks.split(",")}
    summary = {name: {k: v for k, v in t.items() if k != "runs"} for name, t in tasks.items()}
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": str(vars(args)), "tasks": tasks}, indent=1) + "\n", encoding="utf-8")
    settings_shown = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    print(json.dumps({"benchmark": "optimizer", "settings": settings_shown, "tasks": summary}))


if __name__ == "__main__":
    main()
