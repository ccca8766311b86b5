"""A contextual Thompson-sampling bandit over discrete arms (threshold levels), reward EM - λ·tokens.

Each (context, arm) keeps a Gaussian posterior on its mean reward, shrunk towards the arm's mean over
all contexts with `prior_n` pseudo-observations: a context seen rarely borrows the global estimate,
and one seen often follows its own. Exploration is bounded: a draw that differs from the greedy arm
(highest posterior mean) is only followed while explored decisions stay under `max_explore` of all.

Draws use `default_rng([seed, decisions])`, so a restarted bandit makes the same choices it would
have made; the whole state is plain JSON (`to_state`/`from_state`), bounded by `max_contexts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_MIN_SIGMA = 0.05
MAX_CONTEXTS = 1000  # contexts kept (tags × query kinds × confidence buckets): bounds the saved state


@dataclass
class Stats:
    """Running weight, mean and sum of squared deviations (Welford; West's weighted form) of one arm's rewards."""

    n: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, reward: float, weight: float = 1.0) -> None:
        self.n += weight
        delta = reward - self.mean
        self.mean += delta * weight / self.n
        self.m2 += weight * delta * (reward - self.mean)

    @property
    def sigma(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 1.0


class ThompsonBandit:
    """Chooses an arm index per context; `update` learns one (context, arm, reward) observation."""

    def __init__(
        self,
        n_arms: int,
        *,
        prior_n: float = 20.0,
        max_explore: float = 0.1,
        seed: int = 0,
        max_contexts: int = MAX_CONTEXTS,
    ) -> None:
        if n_arms < 1 or not 0.0 <= max_explore <= 1.0 or prior_n <= 0 or max_contexts < 1:
            raise ValueError("need n_arms >= 1, 0 <= max_explore <= 1, prior_n > 0 and max_contexts >= 1")
        self.n_arms, self.prior_n, self.max_explore, self.seed = n_arms, prior_n, max_explore, seed
        self.max_contexts = max_contexts
        self.overall = [Stats() for _ in range(n_arms)]
        self.by_context: dict[str, list[Stats]] = {}
        self.decisions = 0
        self.explored = 0

    def posterior(self, context: str) -> tuple[np.ndarray, np.ndarray]:
        """Per arm: posterior mean and standard deviation of the reward in this context.

        The prior is the arm's mean in the other contexts (at most `prior_n` observations' worth); an
        arm never played anywhere starts at the mean of all rewards seen, with the widest spread.
        """
        local = self.by_context.get(context) or [Stats() for _ in range(self.n_arms)]
        sigma = max(_MIN_SIGMA, max(s.sigma if s.n > 1 else _MIN_SIGMA for s in self.overall))
        seen = sum(s.n for s in self.overall)
        pooled = sum(s.n * s.mean for s in self.overall) / seen if seen else 0.0
        means, sds = np.zeros(self.n_arms), np.zeros(self.n_arms)
        for arm, (glob, here) in enumerate(zip(self.overall, local, strict=True)):
            elsewhere = glob.n - here.n
            prior_mean = (glob.n * glob.mean - here.n * here.mean) / elsewhere if elsewhere > 0 else pooled
            weight = min(self.prior_n, elsewhere)
            n_eff = weight + here.n
            means[arm] = (weight * prior_mean + here.n * here.mean) / n_eff if n_eff else pooled
            sds[arm] = sigma / math.sqrt(n_eff + 1.0)
        return means, sds

    def greedy(self, context: str) -> int:
        return int(np.argmax(self.posterior(context)[0]))

    def choose(self, context: str) -> int:
        """Thompson draw, falling back to the greedy arm once the exploration budget is spent."""
        means, sds = self.posterior(context)
        rng = np.random.default_rng([self.seed, self.decisions])
        drawn, best = int(np.argmax(rng.normal(means, sds))), int(np.argmax(means))
        self.decisions += 1
        if drawn != best and self.explored < self.max_explore * self.decisions:
            self.explored += 1
            return drawn
        return best

    def update(self, context: str, arm: int, reward: float, weight: float = 1.0) -> None:
        """One observation; `weight` < 1 counts it as part of one (feedback from a key only partly trusted)."""
        if weight <= 0.0:
            return
        self.overall[arm].add(reward, weight)
        if context not in self.by_context:
            self._make_room()
            self.by_context[context] = [Stats() for _ in range(self.n_arms)]
        self.by_context[context][arm].add(reward, weight)

    def _make_room(self) -> None:
        """Keep at most `max_contexts` contexts: a new one evicts the least observed (the oldest of
        those tied), whose rewards stay in the per-arm totals it would borrow from anyway."""
        if len(self.by_context) < self.max_contexts:
            return
        least = min(self.by_context, key=lambda c: sum(s.n for s in self.by_context[c]))
        del self.by_context[least]

    def to_state(self) -> dict[str, Any]:
        return {
            "n_arms": self.n_arms,
            "overall": [_dump(s) for s in self.overall],
            "by_context": {c: [_dump(s) for s in arms] for c, arms in self.by_context.items()},
            "decisions": self.decisions,
            "explored": self.explored,
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        prior_n: float = 20.0,
        max_explore: float = 0.1,
        seed: int = 0,
        max_contexts: int = MAX_CONTEXTS,
    ) -> ThompsonBandit:
        """Learned statistics come from the state; exploration settings and the bound from config (a
        state saved under a larger bound keeps its most observed contexts)."""
        bandit = cls(
            int(state["n_arms"]), prior_n=prior_n, max_explore=max_explore, seed=seed, max_contexts=max_contexts
        )
        bandit.overall = [_load(s) for s in state["overall"]]
        contexts = {c: [_load(s) for s in arms] for c, arms in state["by_context"].items()}
        kept = set(sorted(contexts, key=lambda c: -sum(s.n for s in contexts[c]))[:max_contexts])
        bandit.by_context = {c: arms for c, arms in contexts.items() if c in kept}
        bandit.decisions, bandit.explored = int(state["decisions"]), int(state["explored"])
        return bandit


def _dump(stats: Stats) -> list[float]:
    return [stats.n, stats.mean, stats.m2]


def _load(values: Sequence[float]) -> Stats:
    return Stats(float(values[0]), float(values[1]), float(values[2]))


def reward(correct: float, tokens: float, lam: float) -> float:
    """The bandit's reward: 1 for a right answer (a judge's belief in between), minus λ per token spent."""
    return float(correct) - lam * tokens
