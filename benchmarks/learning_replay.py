"""Replay a real log as a stream with delayed labels: static thresholds, the adaptive controller, the bandit.

    python benchmarks/learning_replay.py [--delay 50] [--lam 5e-4]

Items arrive in file order; the label of item i reaches the learners when item i + delay arrives.
Two-tier cascades (cheapest hull model → best model), confidence as in `cascade replay`:
GSM8K (RouteLLM): response heuristic; ARC-Challenge (RouterBench): agreement with two verifier models.
The target EM of each log is fixed a priori as the midpoint of the two tiers' EM. Prints the figures,
writes `benchmarks/learning_controller.png` and `benchmarks/learning_bandit.png`, and ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cascade.eval.confidence import AgreementConfidence, HeuristicConfidence
from cascade.eval.logs import read_log
from cascade.eval.policies import CascadePolicy, PreparedCascade, hull_chain
from cascade.learning.bandit import ThompsonBandit, context_of, reward
from cascade.learning.controller import ControllerSettings, ThresholdController

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HERE = Path(__file__).resolve().parent
ARMS = (0.0, 0.5, 0.8, 0.95, 0.99, 1.01)  # threshold levels, fixed a priori; 1.01 = always escalate
WINDOW = 200


@dataclass(frozen=True)
class Stream:
    """A log as a two-tier cascade: tier-0 confidence, per-item correctness/tokens at each stop, queries."""

    name: str
    cascade: PreparedCascade
    contexts: list[str]
    target: float

    def outcome(self, i: int, threshold: float) -> tuple[bool, float]:
        stop = 0 if self.cascade.confidence[i, 0] >= threshold else 1
        return bool(self.cascade.correct[i, stop]), float(self.cascade.tokens[i, stop])


def load_stream(name: str) -> Stream:
    if name == "gsm8k":
        log = read_log(DATA / "routellm" / "gsm8k_responses.csv")
        chain = hull_chain(log)
        policy = CascadePolicy((chain[0], chain[-1]), HeuristicConfidence())
    else:
        log = read_log(DATA / "routerbench" / "arc_challenge_train.csv")
        chain = hull_chain(log)
        log = log.select(chain)
        policy = CascadePolicy((chain[0], chain[-1]), AgreementConfidence(tuple(chain[1:-1])))
    prepared = policy.prepare(log)
    target = round(float(prepared.correct.mean(axis=0).mean()), 3)
    return Stream(name, prepared, [context_of(item.prompt) for item in log.items], target)


def static_grid(stream: Stream) -> list[tuple[float, float, float]]:
    """(threshold, EM, total tokens) for every distinct static threshold."""
    out = [stream.cascade.at(t) for t in stream.cascade.thresholds()]
    return [(float(o.threshold), o.em, float(o.tokens.sum())) for o in out]  # type: ignore[arg-type]


def hindsight_best(grid: Sequence[tuple[float, float, float]], target: float) -> tuple[float, float, float]:
    """The cheapest static threshold whose EM over the whole stream reaches the target."""
    return min((row for row in grid if row[1] >= target - 1e-12), key=lambda row: row[2])


def run_controller(stream: Stream, settings: ControllerSettings, delay: int) -> dict[str, np.ndarray]:
    """Stream the items; each decision uses the controller's current threshold; labels arrive `delay` later."""
    n = len(stream.contexts)
    controller = ThresholdController(settings, ["tier0"])
    correct, tokens, thresholds = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        if i >= delay:
            j = i - delay
            controller.observe("tier0" if stopped_cheap(stream, j, thresholds[j]) else "tier1", True, bool(correct[j]))
        thresholds[i] = controller.threshold("tier0")
        ok, spent = stream.outcome(i, thresholds[i])
        correct[i], tokens[i] = ok, spent
    return {"correct": correct, "tokens": tokens, "threshold": thresholds}


def stopped_cheap(stream: Stream, i: int, threshold: float) -> bool:
    return bool(stream.cascade.confidence[i, 0] >= threshold)


def rolling(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each position (NaN until the window is full)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    out = np.full(values.size, np.nan)
    out[window - 1 :] = (sums[window:] - sums[:-window]) / window
    return out


def arm_rewards(stream: Stream, lam: float) -> np.ndarray:
    """Reward of every arm on every item: with a gold label, a two-tier run determines them all
    (tier 0 is always called, so its correctness and tokens are known whichever arm was played)."""
    rows = [[reward(*stream.outcome(i, t), lam) for t in ARMS] for i in range(len(stream.contexts))]
    return np.array(rows)


def run_bandit(stream: Stream, rewards: np.ndarray, delay: int, seed: int, max_explore: float) -> np.ndarray:
    """Arms chosen per item; the label (hence every arm's reward) arrives `delay` items later."""
    bandit = ThompsonBandit(len(ARMS), max_explore=max_explore, seed=seed)
    chosen = np.zeros(len(stream.contexts), dtype=int)
    for i, context in enumerate(stream.contexts):
        if i >= delay:
            j = i - delay
            for arm in range(len(ARMS)):
                bandit.update(stream.contexts[j], arm, float(rewards[j, arm]))
        chosen[i] = bandit.choose(context)
    return chosen


def controller_figures(stream: Stream, run: dict[str, np.ndarray], best: tuple[float, float, float], warm: int) -> dict:
    dev = _deviation(run["correct"], stream.target, warm)
    static = np.array([stream.outcome(i, best[0])[0] for i in range(len(stream.contexts))], dtype=float)
    static_dev = _deviation(static, stream.target, warm)
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
    }


def second_half(stream: Stream, run: dict[str, np.ndarray]) -> dict:
    """The held-out half (controller settings were chosen on the first half): EM, deviation, token ratio."""
    half = len(stream.contexts) // 2
    c = stream.cascade
    rest = PreparedCascade(c.policy, c.confidence[half:], c.correct[half:], c.cost[half:], c.tokens[half:])
    best = hindsight_best(static_grid(Stream(stream.name, rest, stream.contexts[half:], stream.target)), stream.target)
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


def bandit_figures(rewards: np.ndarray, chosen: np.ndarray, warm: int) -> dict:
    got = rewards[np.arange(len(chosen)), chosen][warm:]
    fixed = rewards[warm:].sum(axis=0)
    return {
        "bandit_reward": round(float(got.sum()), 2),
        "fixed_arm_reward": {str(t): round(float(r), 2) for t, r in zip(ARMS, fixed, strict=True)},
        "margin_over_best_arm": round(float(got.sum() - fixed.max()), 2),
        "beats_every_arm": bool(got.sum() > fixed.max()),
    }


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=["gsm8k", "arc"], choices=["gsm8k", "arc"])
    parser.add_argument("--delay", type=int, default=50)
    parser.add_argument("--lam", type=float, default=5e-4, help="reward = EM - lam * tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-explore", type=float, default=0.1)
    args = parser.parse_args(argv)
    warm = WINDOW + args.delay
    figures: dict = {"delay": args.delay, "lam": args.lam, "window": WINDOW, "warmup": warm, "arms": list(ARMS)}
    ctrl_plots, bandit_plots = {}, {}
    for name in args.logs:
        stream = load_stream(name)
        best = hindsight_best(static_grid(stream), stream.target)
        # chosen on the first half of each stream (grid gain x window, see RESULTS_learning.md)
        settings = ControllerSettings(stream.target, window=100, gain=0.05, step=0.05, min_evidence=50)
        run = run_controller(stream, settings, args.delay)
        rewards = arm_rewards(stream, args.lam)
        chosen = run_bandit(stream, rewards, args.delay, args.seed, args.max_explore)
        figures[name] = {"controller": controller_figures(stream, run, best, warm)}
        figures[name]["controller"]["second_half"] = second_half(stream, run)
        figures[name]["bandit"] = bandit_figures(rewards, chosen, warm)
        ctrl_plots[name], bandit_plots[name] = (stream, run, best[0]), (rewards, chosen)
        print(f"== {name}: {len(stream.contexts)} items, target EM {stream.target}")
        print(json.dumps(figures[name], indent=2))
    plot_controller(ctrl_plots, HERE / "learning_controller.png")
    plot_bandit(bandit_plots, HERE / "learning_bandit.png")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
