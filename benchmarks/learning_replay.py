"""Replay a real log as a stream with delayed labels: static thresholds, the adaptive controller, the bandit.

    python -m benchmarks.learning_replay [--delay 50] [--lam 5e-4] [--tune] [--lam-sweep]

Items arrive in file order; the label of item i reaches the learners when item i + delay arrives.
Two-tier cascades (cheapest hull model → best model), confidence as in `cascade replay`:
GSM8K (RouteLLM): response heuristic; ARC-Challenge (RouterBench): agreement with two verifier models.
MMLU (RouteLLM, Mixtral → GPT-4, 57 subjects): the log has no responses, so no confidence (every arm
but 0 escalates) and no controller run; each query is tagged with its subject, as an application tags
its traffic (`Cascade.arun(query, tag=...)`), and arrives in a seeded shuffle (the files are sorted by
subject; live traffic mixes them). Only the bandit runs on it.
The target EM of each log is fixed a priori as the midpoint of the two tiers' EM. Learners see only what
production would: a gold label judges every answer a run produced, never one it did not (tier 1's when tier 0
was accepted). `--tune` prints the first-half grid the settings were chosen from; `--lam-sweep` runs the bandit
alone over the fixed grid `LAM_GRID` of token prices (seeds 0-4) instead of the default run. Prints the
figures, writes `benchmarks/figures/learning_controller.png` and `benchmarks/figures/learning_bandit.png` (not with
`--tune`/`--lam-sweep`), and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cascade.eval.analysis.confidence import AgreementConfidence, HeuristicConfidence, LoggedConfidence
from cascade.eval.analysis.policies import CascadePolicy, PreparedCascade, hull_chain
from cascade.eval.data.formats import read_log
from cascade.learning.controller import (
    ControllerSettings,
    Estimate,
    RunEvidence,
    ThresholdController,
    plan,
    query_unit,
)
from cascade.learning.thompson import ThompsonBandit, reward
from routers.bandit import ContextKind, bandit_context

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HERE = Path(__file__).resolve().parent
ARMS = (0.0, 0.5, 0.8, 0.95, 0.99, 1.01)  # threshold levels, fixed a priori; 1.01 = always escalate
MMLU_ORDER_SEED = 0
LOGS = ("gsm8k", "arc", "mmlu")
BANDIT_ONLY = {"mmlu"}  # no confidence in the log: nothing for a threshold controller to move
WINDOW = 200


@dataclass(frozen=True)
class Stream:
    """A log as a two-tier cascade: tier-0 confidence, per-item correctness/tokens at each stop, queries."""

    name: str
    cascade: PreparedCascade
    queries: list[str]
    target: float
    tags: list[str | None] | None = None  # the caller's label per query (the run's `tag`)

    @property
    def units(self) -> list[float]:
        return [query_unit(q) for q in self.queries]

    def part(self, start: int, stop: int) -> Stream:
        """Items [start, stop) as a stream of their own (same target)."""
        return self.reordered(range(start, stop))

    def reordered(self, order: Sequence[int]) -> Stream:
        """The items at positions `order`, arriving in that order (same target)."""
        c, idx = self.cascade, np.asarray(order, dtype=int)
        moved = PreparedCascade(c.policy, c.confidence[idx], c.correct[idx], c.cost[idx], c.tokens[idx])
        tags = [self.tags[i] for i in idx] if self.tags else None
        return Stream(self.name, moved, [self.queries[i] for i in idx], self.target, tags)

    def outcome(self, i: int, threshold: float) -> tuple[bool, float]:
        stop = 0 if self.cascade.confidence[i, 0] >= threshold else 1
        return bool(self.cascade.correct[i, stop]), float(self.cascade.tokens[i, stop])


def load_stream(name: str) -> Stream:
    # Every logged item, RouteLLM's contaminated prompts too: that list marks overlap with RouteLLM's
    # router-training data, which these online learners never see; the streams stay as recorded.
    tags: list[str | None] | None = None
    if name == "mmlu":
        log = read_log(DATA / "routellm" / "mmlu_responses", keep_contaminated=True)
        chain = hull_chain(log)
        policy = CascadePolicy((chain[0], chain[-1]), LoggedConfidence())
        tags = [item.meta.get("subject") for item in log.items]
    elif name == "gsm8k":
        log = read_log(DATA / "routellm" / "gsm8k_responses.csv", keep_contaminated=True)
        chain = hull_chain(log)
        policy = CascadePolicy((chain[0], chain[-1]), HeuristicConfidence())
    else:
        log = read_log(DATA / "routerbench" / "arc_challenge_train.csv")
        chain = hull_chain(log)
        log = log.select(chain)
        policy = CascadePolicy((chain[0], chain[-1]), AgreementConfidence(tuple(chain[1:-1])))
    prepared = policy.prepare(log)
    target = round(float(prepared.correct.mean(axis=0).mean()), 3)
    stream = Stream(name, prepared, [item.prompt for item in log.items], target, tags)
    if name == "mmlu":  # the files are sorted by subject; live traffic mixes them
        return stream.reordered(np.random.default_rng(MMLU_ORDER_SEED).permutation(len(log.items)).tolist())
    return stream


def static_grid(stream: Stream) -> list[tuple[float, float, float]]:
    """(threshold, EM, total tokens) for every distinct static threshold."""
    out = [stream.cascade.at(t) for t in stream.cascade.thresholds()]
    return [(float(o.threshold), o.em, float(o.tokens.sum())) for o in out]  # type: ignore[arg-type]


def hindsight_best(grid: Sequence[tuple[float, float, float]], target: float) -> tuple[float, float, float]:
    """The cheapest static threshold whose EM over the whole stream reaches the target."""
    return min((row for row in grid if row[1] >= target - 1e-12), key=lambda row: row[2])


def run_controller(stream: Stream, settings: ControllerSettings, delay: int) -> dict[str, np.ndarray]:
    """Stream the items; each decision uses the controller's current threshold; labels arrive `delay` later."""
    n, units = len(stream.queries), stream.units
    controller = ThresholdController(settings, ["tier0"])
    correct, tokens, thresholds = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        if i >= delay:
            controller.observe(evidence(stream, i - delay, thresholds[i - delay]))
        thresholds[i] = controller.threshold("tier0", units[i])
        ok, spent = stream.outcome(i, thresholds[i])
        correct[i], tokens[i] = ok, spent
    return {"correct": correct, "tokens": tokens, "threshold": thresholds}


def evidence(stream: Stream, i: int, threshold: float) -> RunEvidence:
    """What production learns from item i's gold label: tier 1's correctness only if it was called."""
    c = stream.cascade
    tier0 = (float(c.confidence[i, 0]), bool(c.correct[i, 0]), float(c.tokens[i, 0]))
    if tier0[0] >= threshold:
        return RunEvidence((tier0[0],), (tier0[1],), (tier0[2],), reached_end=False)
    return RunEvidence((tier0[0], None), (tier0[1], bool(c.correct[i, 1])), (tier0[2], float(c.tokens[i, 1])), True)


def rolling(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each position (NaN until the window is full)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    out = np.full(values.size, np.nan)
    out[window - 1 :] = (sums[window:] - sums[:-window]) / window
    return out


def arm_rewards(stream: Stream, lam: float) -> np.ndarray:
    """Reward of every arm on every item: with a gold label, a two-tier run determines them all
    (tier 0 is always called, so its correctness and tokens are known whichever arm was played)."""
    rows = [[reward(*stream.outcome(i, t), lam) for t in ARMS] for i in range(len(stream.queries))]
    return np.array(rows)


def bandit_contexts(stream: Stream, kind: ContextKind = "query+confidence") -> list[str]:
    """Each item's bandit context as `routers.bandit` computes it (tier 0 has answered by then)."""
    confidence = stream.cascade.confidence[:, 0]
    tags = stream.tags or [None] * len(stream.queries)
    return [
        bandit_context(q, float(c), ARMS, kind, tag) for q, c, tag in zip(stream.queries, confidence, tags, strict=True)
    ]


def run_bandit(
    stream: Stream, rewards: np.ndarray, contexts: Sequence[str], delay: int, seed: int, max_explore: float
) -> np.ndarray:
    """Arms chosen per item; the label arrives `delay` items later and reveals the arms production could
    score (`known_arms`), not every arm's reward."""
    bandit = ThompsonBandit(len(ARMS), max_explore=max_explore, seed=seed)
    confidence = stream.cascade.confidence[:, 0]
    chosen = np.zeros(len(contexts), dtype=int)
    for i, context in enumerate(contexts):
        if i >= delay:
            j = i - delay
            for arm in known_arms(float(confidence[j]), ARMS[chosen[j]]):
                bandit.update(contexts[j], arm, float(rewards[j, arm]))
        chosen[i] = bandit.choose(context)
    return chosen


def known_arms(confidence: float, played: float) -> list[int]:
    """Arms whose reward a gold label determines (as `routers.bandit.arm_rewards`): all of them
    when the run escalated, only the accepting ones when tier 0's answer was accepted."""
    if confidence < played:
        return list(range(len(ARMS)))
    return [arm for arm, level in enumerate(ARMS) if confidence >= level]


def controller_figures(stream: Stream, run: dict[str, np.ndarray], best: tuple[float, float, float], warm: int) -> dict:
    dev = _deviation(run["correct"], stream.target, warm)
    static = np.array([stream.outcome(i, best[0])[0] for i in range(len(stream.queries))], dtype=float)
    static_dev = _deviation(static, stream.target, warm)
    static_tokens = np.array([stream.outcome(i, best[0])[1] for i in range(len(stream.queries))])
    mix = hindsight_mix(stream)
    mix_dev = _deviation(mix["correct"], stream.target, warm)
    return {
        "target_em": stream.target,
        "em": round(float(run["correct"].mean()), 4),
        "em_after_warmup": round(float(run["correct"][warm:].mean()), 4),
        "rolling_mean_abs_dev_pts": round(100 * float(dev.mean()), 2),
        "rolling_share_within_1pt": round(float((dev <= 0.01).mean()), 3),
        "static_rolling_mean_abs_dev_pts": round(100 * float(static_dev.mean()), 2),
        "static_rolling_share_within_1pt": round(float((static_dev <= 0.01).mean()), 3),
        "tokens": int(run["tokens"].sum()),
        "hindsight_static": {"threshold": best[0], "em": round(best[1], 4), "tokens": int(best[2])},
        "tokens_ratio_vs_hindsight": round(float(run["tokens"].sum()) / best[2], 4),
        "tokens_ratio_vs_hindsight_after_warmup": round(
            float(run["tokens"][warm:].sum() / static_tokens[warm:].sum()), 4
        ),
        "noise_floor": {
            "iid_bernoulli_target": iid_floor(stream.target),
            "hindsight_static_mix": {
                "em": round(float(mix["correct"].mean()), 4),
                "tokens_ratio_vs_hindsight": round(float(mix["tokens"].sum()) / best[2], 4),
                "rolling_mean_abs_dev_pts": round(100 * float(mix_dev.mean()), 2),
                "rolling_share_within_1pt": round(float((mix_dev <= 0.01).mean()), 3),
            },
        },
    }


def iid_floor(target: float) -> dict:
    """|rolling EM - target| of an ideal stream, every item right with probability `target` (normal approx.)."""
    sd = math.sqrt(target * (1 - target) / WINDOW)
    within = math.erf(0.01 / sd / math.sqrt(2))
    return {
        "rolling_mean_abs_dev_pts": round(100 * sd * math.sqrt(2 / math.pi), 2),
        "rolling_share_within_1pt": round(within, 3),
    }


def hindsight_mix(stream: Stream) -> dict[str, np.ndarray]:
    """Noise-floor reference: the two static thresholds whose per-query mix hits the target exactly over the
    whole stream (chosen in hindsight; `plan` as the controller uses it, mixed by the same query hash)."""
    grid = static_grid(stream)
    found = Estimate(*(np.array(col) for col in zip(*grid, strict=True)))
    found = Estimate(found.thresholds, found.em, found.tokens / len(stream.queries))
    mixed = plan(found, stream.target)
    picks = [mixed.high if u < mixed.share else mixed.low for u in stream.units]
    outcomes = [stream.outcome(i, t) for i, t in enumerate(picks)]
    return {"correct": np.array([o[0] for o in outcomes], dtype=float), "tokens": np.array([o[1] for o in outcomes])}


def second_half(stream: Stream, run: dict[str, np.ndarray]) -> dict:
    """The held-out half (controller settings were chosen on the first half): EM, deviation, token ratio."""
    half = len(stream.queries) // 2
    best = hindsight_best(static_grid(stream.part(half, len(stream.queries))), stream.target)
    dev = _deviation(run["correct"][half:], stream.target, 0)
    return {
        "em": round(float(run["correct"][half:].mean()), 4),
        "rolling_mean_abs_dev_pts": round(100 * float(dev.mean()), 2),
        "rolling_share_within_1pt": round(float((dev <= 0.01).mean()), 3),
        "tokens_ratio_vs_hindsight": round(float(run["tokens"][half:].sum()) / best[2], 4),
    }


def _deviation(correct: np.ndarray, target: float, warm: int) -> np.ndarray:
    """|rolling EM - target| at each position after warm-up."""
    em = rolling(correct, WINDOW)[warm:]
    return np.abs(em[~np.isnan(em)] - target)


def bandit_figures(rewards: np.ndarray, chosen: np.ndarray, warm: int, contexts: Sequence[str] | None = None) -> dict:
    """Reward after `warm` items: the bandit's, each fixed arm's, and (given the contexts) the ceiling
    of any per-context fixed choice picked in hindsight."""
    got = rewards[np.arange(len(chosen)), chosen][warm:]
    fixed = rewards[warm:].sum(axis=0)
    out = {
        "bandit_reward": round(float(got.sum()), 2),
        "fixed_arm_reward": {str(t): round(float(r), 2) for t, r in zip(ARMS, fixed, strict=True)},
        "margin_over_best_arm": round(float(got.sum() - fixed.max()), 2),
        "beats_every_arm": bool(got.sum() > fixed.max()),
    }
    if contexts is not None:
        late = np.array(contexts[warm:])
        ceiling = sum(rewards[warm:][late == c].sum(axis=0).max() for c in np.unique(late))
        out["hindsight_context_ceiling_over_best_arm"] = round(float(ceiling - fixed.max()), 2)
    return out


def plot_controller(results: dict[str, tuple[Stream, dict[str, np.ndarray], float]], path: Path) -> None:
    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 6), squeeze=False)
    for col, (name, (stream, run, best_t)) in enumerate(results.items()):
        axes[0][col].plot(rolling(run["correct"], WINDOW), label=f"adaptive, rolling EM ({WINDOW})")
        axes[0][col].axhline(stream.target, color="k", ls="--", label="target")
        axes[0][col].axhspan(stream.target - 0.01, stream.target + 0.01, color="g", alpha=0.15, label="±1 pt")
        axes[0][col].set_title(f"{name}: rolling EM")
        axes[0][col].legend(fontsize=8)
        axes[1][col].plot(run["threshold"], label="adaptive threshold")
        axes[1][col].axhline(best_t, color="r", ls=":", label="hindsight-best static")
        axes[1][col].set_xlabel("item (stream order)")
        axes[1][col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bandit(results: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for col, (name, (rewards, chosen)) in enumerate(results.items()):
        best = rewards.sum(axis=0).argmax()
        got = np.cumsum(rewards[np.arange(len(chosen)), chosen])
        for arm, t in enumerate(ARMS):
            axes[0][col].plot(np.cumsum(rewards[:, arm]) - np.cumsum(rewards[:, best]), lw=0.8, label=f"fixed {t}")
        axes[0][col].plot(got - np.cumsum(rewards[:, best]), "k", lw=2, label="bandit")
        axes[0][col].set_title(f"{name}: cumulative reward minus best fixed arm")
        axes[0][col].set_xlabel("item (stream order)")
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


WINDOWS, MARGINS, STEPS = (100, 200, 400, 600), (0.0, 0.005, 0.01), (0.05, 1.0)
CONTEXT_KINDS: tuple[ContextKind, ...] = ("query", "confidence", "query+confidence")


def tune(stream: Stream, delay: int, lam: float, seed: int, max_explore: float) -> dict:
    """The `--tune` grid, on the FIRST half of the stream only: controller settings and bandit context.

    Controller rule (fixed before looking): among settings with tokens <= 1.10x the half's hindsight
    static and EM after warm-up within 1 pt of target, the lowest mean |rolling EM - target|.
    """
    head = stream.part(0, len(stream.queries) // 2)
    warm = WINDOW + delay
    best = hindsight_best(static_grid(head), stream.target)
    controller = {}
    for window in WINDOWS:
        for margin in MARGINS:
            for step in STEPS:
                settings = ControllerSettings(stream.target, window=window, margin=margin, step=step, min_evidence=50)
                fig = controller_figures(head, run_controller(head, settings, delay), best, warm)
                keep = (
                    "em_after_warmup",
                    "rolling_mean_abs_dev_pts",
                    "rolling_share_within_1pt",
                    "tokens_ratio_vs_hindsight",
                )
                controller[f"w{window} m{margin} s{step}"] = {k: fig[k] for k in keep}
    rewards = arm_rewards(head, lam)
    bandit = {
        kind: bandit_figures(
            rewards, run_bandit(head, rewards, bandit_contexts(head, kind), delay, seed, max_explore), warm
        )["margin_over_best_arm"]
        for kind in CONTEXT_KINDS
    }
    return {"controller": controller, "bandit_margin_by_context": bandit}


# `--lam-sweep` grid, declared before any sweep result was seen and not to be changed afterwards.
# Reasoning from the logs' token scales (per-item means over the whole log; data, not results):
#   GSM8K: tier 0 ~136 tok, tier 1 ~301 tok cumulative -> escalating costs ~165 extra tokens for
#          +0.22 EM on average (0.64 -> 0.86), break-even lam ~ 0.22 / 165 ~ 1.3e-3.
#   ARC:   tier 0 ~1,512 tok (incl. the two verifiers), escalation ~504 extra tokens for +0.28 EM
#          (0.67 -> 0.95), break-even lam ~ 0.28 / 504 ~ 5.6e-4.
# Per context the EM gain of escalating ranges from ~0 (confident buckets) to ~0.5 (unconfident ones),
# so per-context break-evens run from ~1e-5 (gain ~0.002-0.01) to ~3e-3 (GSM8K) / ~1e-3 (ARC). The
# arms can only disagree across contexts -- the one place a per-context policy can beat every fixed
# arm -- between those ends; 1e-5 (escalation nearly free: always escalate everywhere) and 1e-2
# (escalation costs 1.65 / 5 reward, more than any EM gain: always accept) bracket both logs.
LAM_GRID = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
SWEEP_SEEDS = tuple(range(5))
# "Materially positive" ceiling, fixed with the grid: the hindsight per-context ceiling after warm-up
# is at least 1 reward point per 100 items (~1 EM point's worth) AND a per-context policy picked in
# hindsight on the first half still beats the best fixed arm on the second half (in-sample maxima over
# contexts are positive even on pure noise; the out-of-sample split says whether any of it is real).
MATERIAL_PER_ITEM = 0.01


def split_half_context_gain(rewards: np.ndarray, contexts: Sequence[str]) -> float:
    """Second-half reward of the per-context fixed arm chosen in hindsight on the FIRST half (contexts
    unseen there take the first half's best single arm), minus the second half's best fixed arm."""
    half = len(contexts) // 2
    head, tail = rewards[:half], rewards[half:]
    labels = np.array(contexts)
    fallback = int(head.sum(axis=0).argmax())
    pick = {c: int(head[labels[:half] == c].sum(axis=0).argmax()) for c in np.unique(labels[:half])}
    got = sum(tail[i, pick.get(c, fallback)] for i, c in enumerate(labels[half:]))
    return round(float(got - tail.sum(axis=0).max()), 2)


def sweep_cell(rewards: np.ndarray, runs: Sequence[np.ndarray], contexts: Sequence[str], warm: int) -> dict:
    """One (log, lam): `bandit_figures` per seed after warm-up and on the second half, summarised."""
    half = len(contexts) // 2
    parts = {
        "after_warmup": [bandit_figures(rewards, chosen, warm, contexts) for chosen in runs],
        "second_half": [bandit_figures(rewards[half:], chosen[half:], 0, contexts[half:]) for chosen in runs],
    }
    out: dict = {}
    for part, figs in parts.items():
        fixed = figs[0]["fixed_arm_reward"]
        top = max(fixed.values())
        margins = [f["margin_over_best_arm"] for f in figs]
        out[part] = {
            "best_arms": [arm for arm, r in fixed.items() if r == top],
            "best_arm_reward": top,
            "margin_seed0": margins[0],
            "margin_mean": round(float(np.mean(margins)), 2),
            "margin_min": min(margins),
            "margin_max": max(margins),
            "seeds_beating_every_arm": sum(f["beats_every_arm"] for f in figs),
            "beats_every_arm_all_seeds": all(f["beats_every_arm"] for f in figs),
            "hindsight_context_ceiling_over_best_arm": figs[0]["hindsight_context_ceiling_over_best_arm"],
        }
    out["second_half"]["split_half_context_policy_over_best_arm"] = split_half_context_gain(rewards, contexts)
    ceiling = out["after_warmup"]["hindsight_context_ceiling_over_best_arm"]
    out["material_ceiling"] = bool(
        ceiling >= MATERIAL_PER_ITEM * (len(contexts) - warm)
        and out["second_half"]["split_half_context_policy_over_best_arm"] > 0
    )
    return out


def lam_sweep(names: Sequence[str], delay: int, max_explore: float) -> dict:
    """The bandit as in the default run (arms, query+confidence context, delay, warm-up) for every lam in
    `LAM_GRID` and seed in `SWEEP_SEEDS`; prints a table per log and returns the figures."""
    warm = WINDOW + delay
    out: dict = {
        "lam_sweep": list(LAM_GRID),
        "seeds": list(SWEEP_SEEDS),
        "delay": delay,
        "max_explore": max_explore,
        "warmup": warm,
        "arms": list(ARMS),
        "material_per_item": MATERIAL_PER_ITEM,
    }
    for name in names:
        stream = load_stream(name)
        contexts = bandit_contexts(stream)
        out[name] = {}
        print(f"== {name}: {len(stream.queries)} items, reward after warm-up ({warm}) / on the second half")
        print(
            f"{'lam':>7} | {'best arm':>14} {'reward':>8} {'margin s0':>9} {'mean':>7} {'min':>7} {'beat':>4}"
            f" {'ceiling':>7} | {'best arm':>14} {'margin s0':>9} {'mean':>7} {'min':>7} {'beat':>4}"
            f" {'ceiling':>7} {'split':>7} | material"
        )
        for lam in LAM_GRID:
            rewards = arm_rewards(stream, lam)
            runs = [run_bandit(stream, rewards, contexts, delay, seed, max_explore) for seed in SWEEP_SEEDS]
            cell = sweep_cell(rewards, runs, contexts, warm)
            out[name][f"{lam:g}"] = cell
            a, b = cell["after_warmup"], cell["second_half"]
            print(
                f"{lam:>7g} | {'/'.join(a['best_arms']):>14} {a['best_arm_reward']:>8.2f} {a['margin_seed0']:>9.2f}"
                f" {a['margin_mean']:>7.2f} {a['margin_min']:>7.2f} {a['seeds_beating_every_arm']:>2}/5"
                f" {a['hindsight_context_ceiling_over_best_arm']:>7.2f} | {'/'.join(b['best_arms']):>14}"
                f" {b['margin_seed0']:>9.2f} {b['margin_mean']:>7.2f} {b['margin_min']:>7.2f}"
                f" {b['seeds_beating_every_arm']:>2}/5 {b['hindsight_context_ceiling_over_best_arm']:>7.2f}"
                f" {b['split_half_context_policy_over_best_arm']:>7.2f} | {cell['material_ceiling']}"
            )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=list(LOGS), choices=LOGS)
    parser.add_argument("--delay", type=int, default=50)
    parser.add_argument("--lam", type=float, default=5e-4, help="reward = EM - lam * tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-explore", type=float, default=0.1)
    parser.add_argument("--tune", action="store_true", help="print the first-half tuning grid and exit")
    parser.add_argument("--lam-sweep", action="store_true", help="bandit only, over LAM_GRID x seeds 0-4, and exit")
    args = parser.parse_args(argv)
    if args.lam_sweep:
        print(json.dumps(lam_sweep(args.logs, args.delay, args.max_explore)))
        return
    if args.tune:
        for name in (n for n in args.logs if n not in BANDIT_ONLY):  # its settings are the controller's
            print(
                json.dumps({name: tune(load_stream(name), args.delay, args.lam, args.seed, args.max_explore)}, indent=1)
            )
        return
    warm = WINDOW + args.delay
    figures: dict = {"delay": args.delay, "lam": args.lam, "window": WINDOW, "warmup": warm, "arms": list(ARMS)}
    ctrl_plots, bandit_plots = {}, {}
    for name in args.logs:
        stream = load_stream(name)
        figures[name] = {}
        if name not in BANDIT_ONLY:
            best = hindsight_best(static_grid(stream), stream.target)
            # chosen by `--tune` on the first half of each stream (window x margin x step), one setting for both
            settings = ControllerSettings(stream.target, window=100, margin=0.0, step=0.05, min_evidence=50)
            run = run_controller(stream, settings, args.delay)
            figures[name]["controller"] = controller_figures(stream, run, best, warm)
            figures[name]["controller"]["second_half"] = second_half(stream, run)
            ctrl_plots[name] = (stream, run, best[0])
        rewards = arm_rewards(stream, args.lam)
        contexts = bandit_contexts(stream)
        chosen = run_bandit(stream, rewards, contexts, args.delay, args.seed, args.max_explore)
        figures[name]["bandit"] = bandit_figures(rewards, chosen, warm, contexts)
        half = len(stream.queries) // 2
        figures[name]["bandit"]["second_half"] = bandit_figures(rewards[half:], chosen[half:], 0, contexts[half:])
        figures[name]["bandit"]["margin_by_seed"] = {
            f"{seed}/{explore}": bandit_figures(
                rewards, run_bandit(stream, rewards, contexts, args.delay, seed, explore), warm
            )["margin_over_best_arm"]
            for seed in range(5)
            for explore in (args.max_explore, 0.0)
        }
        bandit_plots[name] = (rewards, chosen)
        print(f"== {name}: {len(stream.queries)} items, target EM {stream.target}")
        print(json.dumps(figures[name], indent=2))
    plot_controller(ctrl_plots, HERE / "figures" / "learning_controller.png")
    plot_bandit(bandit_plots, HERE / "figures" / "learning_bandit.png")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
