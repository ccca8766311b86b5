"""Savings without gold: a stream through a running `cascade serve` with live audits, scored afterwards.

    python -m benchmarks.label_free --log ../shared/data/routerbench/arc_challenge_train.csv [--seed 0]
    python -m benchmarks.label_free --log ../shared/data/routellm/gsm8k_responses.csv [--seed 0]

1. Order: the log's items (those with known correctness for every model) in a seeded random order.
2. Warm-up: the first `--warmup` items are the team's tuning sample. Every logged model's answer on
   them is taken as collected (their gold verdicts blanked before the file is written), and `cascade
   tune --logs SAMPLE --reference strongest --min-agreement A --selection S` picks the cheapest
   cascade whose agreement with the strongest model (the dearest one) has a 95% lower bound of at
   least A: by default simultaneous over every candidate it visits (`--selection each`: each
   candidate's own bound, the tuner's other option). No gold answer is read, and nothing is set here
   that the tuner's defaults do not set.
   With `--router adaptive` the tuned cascade's thresholds are then learned while serving from
   audits and escalations (`adaptive` router, agreement target A, the settings recommended for
   learning without feedback in RESULTS.md, issue 25 item 4: LEARNER below), starting where its
   defaults start (escalate everything).
3. The stream: the tuned config, with `audit: {rate, min_agreement: --promise}`, is served by a real
   `cascade serve --store` (uvicorn on loopback) whose fake completer replays the log (each model's
   logged response and cost for each prompt, `by_prompt`); every item is sent in order over HTTP, no
   feedback. `/metrics` is read after every request: the live interval at `--checkpoints` evenly
   spaced points, and the drift alarm. After the server stops (its audits drained) the store gives
   each audit's cost.
4. The drift run: the same stream on a fresh server, except that from halfway on the cheapest tier
   answers as a weaker logged model did (`--drift-scope tier`: every model of the tier, its answers
   replaced, its confidence no longer meaningful; `model`: only the tier's cheapest model; the weaker
   model: `--drift-model`, default the cheapest logged model the config does not use).

Scored afterwards with the log's gold (per-model correctness: a served answer is right when a model
that gave it was right): EM and cost against the strongest model alone on the same items (paired
bootstrap 95% intervals), over the whole stream (the warm-up items are in-sample for the tuning) and
after the warm-up; agreement; how often the live interval covered the true agreement of the answers
served so far; items from the drift to the alarm; EM over the drifted half. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from cascade.audit.agreement import same_answer
from cascade.config.schema import load_config
from cascade.eval.analysis.stats import mean_difference, ratio_of_sums
from cascade.eval.data.external import estimate_tokens
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogItem, LogTable, write_log
from cascade.eval.data.models import log_column
from cascade.io.answers import extractor
from cascade.io.exact_match import exact_match, extract
from cascade.serve.background import free_port, stop_process, wait_until_up
from cascade.store import open_store

ROOT = Path(__file__).resolve().parents[1]
_METRIC = re.compile(r'^cascade_agreement\{bound="(\w+)",model="stream",variant=""\} ([0-9.e+-]+)$', re.MULTILINE)
_ALARMS = re.compile(r'^cascade_drift_alarms_total\{model="stream",variant=""\} ([0-9.e+-]+)$', re.MULTILINE)
_PROBES = re.compile(r'^cascade_drift_probes_total\{model="stream",variant=""\} ([0-9.e+-]+)$', re.MULTILINE)
# The adaptive router as recommended for learning from audits and escalations alone (RESULTS.md, issue 25
# item 4: chosen on the first halves of label_free_replay.py's orders by a rule written before).
LEARNER = {"window": 1000, "step": 0.05, "min_evidence": 100, "margin": 0.01}


@dataclass
class Served:
    """One item as the client saw it, scored afterwards."""

    run_id: str
    tier: str
    answer: str | None
    cost: float
    correct: bool = False
    agrees: bool = False
    audit_cost: float = 0.0


def strongest_of(log: LogTable) -> str:
    """The reference without gold: the dearest model of the log."""
    return max(log.models, key=lambda m: (float(np.nansum(log.cost(m))), m))


def relabelled(log: LogTable, reference: str) -> LogTable:
    """Each model's correctness replaced by agreement with `reference`'s answer (gold never read)."""
    items = []
    for item in log.items:
        letters = item.meta.get("letters") or None
        said = extract(item.tiers[reference].answer, item.task, letters)
        tiers = {m: replace(c, correct=_agrees(c.answer, said, item.task, letters)) for m, c in item.tiers.items()}
        items.append(replace(item, tiers=tiers))
    return replace(log, items=items, notes=[*log.notes, f"correctness = agreement with {reference}"])


def _agrees(answer: str | None, said: str | None, task: str, letters: Sequence[str] | None) -> bool:
    return said is not None and exact_match(extract(answer, task, letters), [said], task)


def tune_on_warmup(warm: LogTable, args: argparse.Namespace, folder: Path) -> tuple[Path, dict[str, Any]]:
    """`cascade tune --logs --reference strongest` on the warm-up sample, its gold verdicts blanked first;
    the written config and the tuner's report."""
    sample, written, report = folder / "warmup.jsonl", folder / "tuned.yaml", folder / "tuned.json"
    blank = [replace(i, tiers={m: replace(c, correct=None) for m, c in i.tiers.items()}) for i in warm.items]
    write_log(replace(warm, items=blank), sample)
    command = [sys.executable, "-m", "cascade", "tune", "--logs", str(sample), "--reference", "strongest",
               "--min-agreement", f"{args.min_agreement:g}", "--selection", args.selection,
               "--seed", str(args.seed), "--write", str(written), "--out", str(report)]  # fmt: skip
    subprocess.run(command, check=True, env=_env(), stdout=subprocess.DEVNULL)
    return written, json.loads(report.read_text())


def columns_of(tuned: Path, log: LogTable) -> dict[str, str]:
    """The log column each model of the tuned config replays."""
    found = {m.model: log_column(m.model, log.models) for t in load_config(tuned).tiers for m in t.member_specs()}
    missing = [model for model, column in found.items() if column is None]
    if missing:
        raise SystemExit(f"the log has no column for {missing}")
    return {model: str(column) for model, column in found.items()}


def weaker_model(warm: LogTable, reference: str, tuned: Path, args: argparse.Namespace) -> str:
    """The drifted tier's stand-in: `--drift-model`, else the logged model the config does not use that agrees
    least with the reference on the warm-up sample, among those with a readable answer on 90% of it."""
    if args.drift_model:
        return str(args.drift_model)
    used = set(columns_of(tuned, warm).values()) | {reference}
    agreement = relabelled(warm, reference)

    def readable(model: str) -> float:
        return float(np.mean([extract(i.tiers[model].answer, i.task, i.meta.get("letters") or None) is not None
                              for i in warm.items]))  # fmt: skip

    candidates = [m for m in warm.models if m not in used and readable(m) >= 0.9] or [
        m for m in warm.models if m not in used
    ]
    return min(candidates or warm.models, key=lambda m: (float(agreement.correct(m).mean()), m))


@dataclass(frozen=True)
class Replay:
    """Which logged model answers for each of the config's models on the i-th item of the stream."""

    columns: dict[str, str]
    drifted: frozenset[str] = frozenset()
    start: int = 0
    weak: str = ""

    @classmethod
    def of(cls, tuned: Path, log: LogTable, scope: str, drift: tuple[int, str] | None) -> Replay:
        members = [m.model for m in load_config(tuned).tiers[0].member_specs()]
        if drift is None:
            return cls(columns_of(tuned, log))
        drifted = frozenset(members if scope == "tier" else members[:1])
        return cls(columns_of(tuned, log), drifted, *drift)

    def column(self, model: str, i: int) -> str:
        return self.weak if model in self.drifted and i >= self.start else self.columns[model]


def server_config(tuned: Path, items: Sequence[LogItem], replay: Replay, args: argparse.Namespace) -> dict[str, Any]:
    """The tuned config with audits and a fake completer replaying the log as `replay` says (the prices stay
    those of the config's own models: a drifted endpoint is billed as before)."""
    config = _absolute_paths(yaml.safe_load(tuned.read_text()), tuned.parent)
    config["name"] = "stream"
    config["audit"] = {"rate": args.rate, "min_agreement": args.promise, "seed": args.seed}
    if getattr(args, "router", "tuned") == "adaptive" and len(config["tiers"]) > 1:
        config["router"] = {"type": "adaptive", "target_em": args.min_agreement, **LEARNER}
    tables: dict[str, dict[str, Any]] = {}
    for model, column in replay.columns.items():
        tables[model] = {}
        for i, item in enumerate(items):
            cell = item.tiers[column]
            text = item.tiers[replay.column(model, i)].answer
            tokens = {"prompt_tokens": estimate_tokens(item.prompt), "completion_tokens": estimate_tokens(text or "")}
            tables[model][item.prompt] = {"text": text or "", **tokens, "cost_usd": cell.cost_usd}
    config["completer"] = {"type": "fake", "by_prompt_file": "tables.json", "tables": tables}
    return config


@dataclass
class Stream:
    """One stream through a server: what it served, the live interval at checkpoints, when it alarmed, and the
    items at which the guard started a probe (a label-free shift of the traffic, `cascade.audit.shift`)."""

    served: list[Served]
    checkpoints: list[dict[str, float]]
    alarm: int | None
    probes: list[int]


def run_stream(config: dict[str, Any], items: Sequence[LogItem], args: argparse.Namespace, folder: Path) -> Stream:
    """Every item through a running server (see `Stream`)."""
    path, store = folder / "server.yaml", folder / "store.sqlite"
    (folder / "tables.json").write_text(json.dumps(config["completer"].pop("tables")))  # the replayed log
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(path), "--store", str(store),
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    learning = config.get("router", {}).get("type") == "adaptive"
    command += ["--learn-interval-s", str(args.learn_interval_s)] if learning else ["--no-learn"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=_env())
    base = f"http://127.0.0.1:{port}"
    stream = Stream([], [], None, [])
    served, checkpoints = stream.served, stream.checkpoints
    every = max(1, len(items) // args.checkpoints)
    try:
        wait_until_up(base, process, timeout_s=300)
        with httpx.Client(base_url=base, timeout=120) as http:
            for i, item in enumerate(items):
                body = {"model": "stream", "messages": [{"role": "user", "content": item.prompt}]}
                served.append(_served(http.post("/v1/chat/completions", json=body)))
                if (i + 1) % 100 == 0:
                    print(f"{folder.name}: {i + 1}/{len(items)} items", file=sys.stderr, flush=True)
                metrics = http.get("/metrics").text
                if stream.alarm is None and float(_ALARMS.search(metrics).group(1)) > 0:  # type: ignore[union-attr]
                    stream.alarm = i
                if float(_PROBES.search(metrics).group(1)) > len(stream.probes):  # type: ignore[union-attr]
                    stream.probes.append(i)
                if (i + 1) % every == 0 and len(checkpoints) < args.checkpoints:
                    time.sleep(args.settle)  # let audits of this stretch land, as a scrape a moment later would
                    bounds = dict(_METRIC.findall(http.get("/metrics").text))
                    checkpoints.append({"items": i + 1, **{k: float(v) for k, v in bounds.items()}})
    finally:
        stop_process(process, grace_s=120)
    audits = _audit_costs(store)
    for s in served:
        s.audit_cost = audits.get(s.run_id, 0.0)
    return stream


def _absolute_paths(spec: Any, base: Path) -> Any:
    """The config with every plugin's `path:` (a scorer's file) made absolute: it is served from another folder."""
    if isinstance(spec, dict):
        return {k: str(base / v) if k == "path" else _absolute_paths(v, base) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_absolute_paths(v, base) for v in spec]
    return spec


def _served(reply: httpx.Response) -> Served:
    """The answer, or none when no tier gave a usable one (a 502: it still cost what the tiers spent)."""
    if reply.status_code != 502:
        reply.raise_for_status()
    answer = reply.json()["choices"][0]["message"]["content"] if reply.status_code == 200 else None
    headers = reply.headers
    return Served(headers["x-cascade-run-id"], headers["x-cascade-tier"], answer, float(headers["x-cascade-cost-usd"]))


def _audit_costs(path: Path) -> dict[str, float]:
    store = open_store(str(path))
    try:
        costs: dict[str, float] = {}
        cursor = 0
        while batch := store.reference_pairs(since_seq=cursor, limit=1000, source="audit"):
            for record in batch:
                costs[record.pair.run_id] = costs.get(record.pair.run_id, 0.0) + record.pair.cost_usd
            cursor = batch[-1].seq
        return costs
    finally:
        store.close()


def score(served: list[Served], items: Sequence[LogItem], reference: str, tuned: Path, replay: Replay) -> None:
    """Gold correctness (the log's verdict on the response served: the answering tier's first model that gave
    the served answer, as a vote shows its winner) and agreement with the reference (the last tier's answers
    agree by definition, as the server's interval counts them)."""
    tiers = {t.name: [m.model for m in t.member_specs()] for t in load_config(tuned).tiers}
    last = load_config(tuned).tiers[-1]
    read, form = extractor(last.answer), last.answer.format
    for i, (s, item) in enumerate(zip(served, items, strict=True)):
        letters = item.meta.get("letters") or None
        mine = extract(s.answer, item.task, letters)
        cells = [item.tiers[replay.column(model, i)] for model in tiers.get(s.tier, [])]
        said = [c for c in cells if mine is not None and _agrees(c.answer, mine, item.task, letters)]
        s.correct = bool(said and said[0].correct)
        # the reference tier's own answer is the reference (as the server counts it), readable or not
        s.agrees = s.tier == last.name or same_answer(s.answer, read(item.tiers[reference].answer or ""), form)


def summary(served: Sequence[Served], items: Sequence[LogItem], reference: str, top: str) -> dict[str, Any]:
    """EM, agreement and cost (audits included) against the reference model alone, paired intervals."""
    if not served:
        return {"n": 0}
    em = np.array([s.correct for s in served], dtype=float)
    strong = np.array([bool(item.tiers[reference].correct) for item in items], dtype=float)
    cost = np.array([s.cost + s.audit_cost for s in served])
    strong_cost = np.array([item.tiers[reference].cost_usd for item in items])
    delta, ratio = mean_difference(em, strong), ratio_of_sums(cost, strong_cost)
    assert delta is not None and ratio is not None
    return {
        "n": len(served), "em": round(float(em.mean()), 4), "em_strongest": round(float(strong.mean()), 4),
        "em_delta": round(delta.value, 4), "em_delta_ci95": [round(v, 4) for v in delta.ci or ()],
        "cost_ratio": round(ratio.value, 4), "cost_ratio_ci95": [round(v, 4) for v in ratio.ci or ()],
        "audit_cost_share": round(float(sum(s.audit_cost for s in served) / strong_cost.sum()), 4),
        "agreement": round(float(np.mean([s.agrees for s in served if s.answer is not None] or [1.0])), 4),
        "unanswered": sum(s.answer is None for s in served),
        "served_by_strongest": round(float(np.mean([s.tier == top for s in served])), 4),
    }  # fmt: skip


def coverage(served: Sequence[Served], checkpoints: Sequence[dict[str, float]]) -> tuple[float, list[dict[str, float]]]:
    """The share of checkpoints whose live interval held the true agreement of the answers served so far (an
    item no tier answered, a 502, is no answer: the server's interval does not count it either)."""
    rows = []
    for point in checkpoints:
        answered = [s.agrees for s in served[: int(point["items"])] if s.answer is not None]
        truth = float(np.mean(answered)) if answered else 1.0
        covered = point.get("low", 1.0) <= truth <= point.get("high", 0.0)
        rows.append({**point, "truth": round(truth, 4), "covered": covered})
    return (sum(r["covered"] for r in rows) / len(rows) if rows else float("nan")), rows


def _env() -> dict[str, str]:
    return {**os.environ, "CASCADE_API_KEYS": "", "PYTHONPATH": str(ROOT)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--log", type=Path, required=True, help="a RouterBench CSV or RouteLLM's GSM8K file")
    add("--seed", type=int, default=0, help="the order of the stream (and the audit salt)")
    add("--warmup", type=int, default=300, help="items of the tuning sample at the stream's start")
    add("--min-agreement", type=float, default=0.98, help="agreement the tuning must prove on the warm-up")
    add("--selection", choices=["simultaneous", "each"], default="simultaneous", help="the tuner's --selection")
    add("--router", choices=["tuned", "adaptive"], default="tuned",
        help="serve the tuned thresholds, or learn them while serving from audits and escalations")  # fmt: skip
    add("--learn-interval-s", type=float, default=0.5, help="with --router adaptive: the server's learning interval")
    add("--promise", type=float, default=0.97, help="the served config's min_agreement (the drift guard's target)")
    add("--rate", type=float, default=0.05, help="audit rate")
    add("--checkpoints", type=int, default=20)
    add("--settle", type=float, default=0.3, help="seconds before reading the interval at a checkpoint")
    add("--drift-scope", choices=["tier", "model", "none"], default="tier")
    add("--drift-model", help="the weaker logged model the drifted tier answers as (default: the cheapest unused)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    log = read_log(args.log)
    log = log.select(log.models)
    reference = strongest_of(log)
    order = np.random.default_rng(args.seed).permutation(len(log)).tolist()
    items = [log.items[i] for i in order]
    with tempfile.TemporaryDirectory(prefix="label-free-") as tmp:
        folder = Path(tmp)
        tuned, tuning = tune_on_warmup(log.subset(order[: args.warmup]), args, folder)
        chosen, weak = load_config(tuned), weaker_model(log.subset(order[: args.warmup]), reference, tuned, args)
        runs: dict[str, tuple[int, str] | None] = {"clean": None}
        if args.drift_scope != "none" and len(chosen.tiers) > 1:  # one tier: nothing below it to drift
            runs["drift"] = (len(items) // 2, weak)
        results = {}
        for name, drift in runs.items():
            sub = folder / name
            sub.mkdir()
            replay = Replay.of(tuned, log, args.drift_scope, drift)
            stream = run_stream(server_config(tuned, items, replay, args), items, args, sub)
            score(stream.served, items, reference, tuned, replay)
            results[name] = stream
    described: dict[str, Any] = {"tuned": chosen.description, "top": chosen.tiers[-1].name, "drift_model": weak}
    described["tuning"] = {k: tuning[k] for k in ("n_items", "selection", "chosen", "each_candidates_own_bound")}
    report = build_report(args, reference, described, items, results, time.perf_counter() - started)
    print(json.dumps(report))
    return 0


def build_report(
    args: argparse.Namespace,
    reference: str,
    described: dict[str, Any],
    items: list[LogItem],
    results: dict[str, Stream],
    elapsed: float,
) -> dict[str, Any]:
    clean = results["clean"]
    served, points, alarm = clean.served, clean.checkpoints, clean.alarm
    w, half, top = args.warmup, len(items) // 2, described["top"]
    cover, rows = coverage(served, points)
    whole, after = summary(served, items, reference, top), summary(served[w:], items[w:], reference, top)
    report: dict[str, Any] = {
        "benchmark": "label_free", "log": str(args.log), "seed": args.seed, "items": len(items), "warmup": w,
        "reference": reference, "tuned": described["tuned"], "audit_rate": args.rate, "promise": args.promise,
        "min_agreement_tuned": args.min_agreement, "selection": args.selection, "router": args.router,
        "tuning": described["tuning"], "whole_stream": whole, "after_warmup": after,
        "checkpoints": rows, "false_alarm_at": alarm, "false_probes_at": clean.probes, "elapsed_s": round(elapsed, 1),
    }  # fmt: skip
    drift_keys: dict[str, Any] = {"drift_items_to_alarm": None, "em_delta_drifted": None}
    if "drift" not in results:
        why = "not asked for" if args.drift_scope == "none" else "the tuned config is the strongest model alone"
        report["drift"] = {"skipped": why}
    if "drift" in results:
        drift = results["drift"]
        d_served, d_points, d_alarm = drift.served, drift.checkpoints, drift.alarm
        drifted = summary(d_served[half:], items[half:], reference, top)
        report["drift"] = {
            "scope": args.drift_scope, "model": described["drift_model"],
            "at_item": half, "alarm_at": d_alarm, "probes_at": drift.probes, "drifted_half": drifted,
            "coverage": coverage(d_served, d_points)[0],
        }  # fmt: skip
        to_alarm = None if d_alarm is None or d_alarm < half else d_alarm - half + 1
        drift_keys = {"drift_items_to_alarm": to_alarm, "em_delta_drifted": drifted["em_delta"]}
    report.update({
        "cost_ratio_after_warmup": after["cost_ratio"], "em_delta_after_warmup": after["em_delta"],
        "coverage": round(cover, 3), **drift_keys,
    })  # fmt: skip
    return report


if __name__ == "__main__":
    raise SystemExit(main())
