"""Stopping rules for drawing samples: stop as soon as the vote is settled, not at a fixed count.

Sampling is the expensive part of self-consistency, and most queries settle after a few samples
(Adaptive-Consistency, Aggarwal et al. 2023; ESC, Li et al. 2024). A rule is any callable that
takes the answers so far and says whether to stop; the classes here compose tenacity-style:

    stop_after_samples(8) | (stop_after_samples(2) & stop_when_beta(0.95))

None answers (nothing extractable) never count as votes.
"""

from __future__ import annotations

import abc
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy.special import betainc

Answers = Sequence[str | None]
StopRule = Callable[[Answers], bool]


def vote_counts(answers: Answers) -> list[int]:
    """Counts of the distinct non-None answers, largest first."""
    return sorted(Counter(a for a in answers if a is not None).values(), reverse=True)


def beta_top_probability(top: int, second: int) -> float:
    """P(p_top > p_second) for p ~ Beta(top+1, second+1): the regularised incomplete beta I_0.5(second+1, top+1)."""
    return float(betainc(second + 1, top + 1, 0.5))


def dirichlet_top_probability(counts: Sequence[int], draws: int = 4000, seed: int = 0) -> float:
    """P(the leading answer's share is the largest) under Dirichlet(counts + 1), by Monte Carlo.

    A lone answer gets an unseen runner-up of count 0, so with two answers this equals the Beta rule.
    Seeded, so the same counts always give the same probability.
    """
    alphas = [c + 1 for c in sorted(counts, reverse=True)] + ([1] if len(counts) < 2 else [])
    rng = random.Random(seed)
    wins = 0
    for _ in range(draws):
        shares = [rng.gammavariate(alpha, 1.0) for alpha in alphas]
        wins += shares[0] >= max(shares[1:])
    return wins / draws


class stop_base(abc.ABC):
    """A stopping rule that composes with `|` (either stops) and `&` (both must stop)."""

    @abc.abstractmethod
    def __call__(self, answers: Answers) -> bool:
        """True when sampling should stop, given every answer drawn so far."""

    def __or__(self, other: StopRule) -> stop_any:
        return stop_any(self, other)

    def __ror__(self, other: StopRule) -> stop_any:
        return stop_any(other, self)

    def __and__(self, other: StopRule) -> stop_all:
        return stop_all(self, other)

    def __rand__(self, other: StopRule) -> stop_all:
        return stop_all(other, self)


class stop_any(stop_base):
    """Stop when any of the rules says stop."""

    def __init__(self, *rules: StopRule) -> None:
        self.rules = rules

    def __call__(self, answers: Answers) -> bool:
        return any(rule(answers) for rule in self.rules)


class stop_all(stop_base):
    """Stop only when every rule says stop."""

    def __init__(self, *rules: StopRule) -> None:
        self.rules = rules

    def __call__(self, answers: Answers) -> bool:
        return all(rule(answers) for rule in self.rules)


class stop_never(stop_base):
    """Never stop early: sample until the sample limit (a fixed number of samples)."""

    def __call__(self, answers: Answers) -> bool:
        return False


class stop_after_samples(stop_base):
    """Stop once `n` samples (answers, None included) have been drawn."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, answers: Answers) -> bool:
        return len(answers) >= self.n


class stop_when_beta(stop_base):
    """Adaptive-Consistency's Beta rule: stop when P(top answer beats the runner-up) >= confidence."""

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = confidence

    def __call__(self, answers: Answers) -> bool:
        counts = [*vote_counts(answers), 0, 0]
        return beta_top_probability(counts[0], counts[1]) >= self.confidence


class stop_when_dirichlet(stop_base):
    """Adaptive-Consistency's Dirichlet rule: P(top answer beats all the others) >= confidence."""

    def __init__(self, confidence: float = 0.95, draws: int = 4000, seed: int = 0) -> None:
        self.confidence = confidence
        self.draws = draws
        self.seed = seed

    def __call__(self, answers: Answers) -> bool:
        counts = vote_counts(answers)
        return bool(counts) and dirichlet_top_probability(counts, self.draws, self.seed) >= self.confidence


class stop_when_window(stop_base):
    """After ESC (Li et al. 2024): stop when the last `window` samples all give the same (non-None) answer.

    A sliding window checked after every sample; ESC itself draws disjoint blocks of `window`
    samples and stops when a whole block agrees, so this rule can stop a little earlier.
    """

    def __init__(self, window: int = 4) -> None:
        self.window = window

    def __call__(self, answers: Answers) -> bool:
        recent = list(answers[-self.window :])
        return len(recent) == self.window and recent[0] is not None and recent.count(recent[0]) == self.window


class StoppingConfig(BaseModel):
    """How self-consistency decides it has sampled enough; `fixed` always uses the sample limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["beta", "dirichlet", "window", "fixed"] = "beta"
    confidence: float = Field(default=0.95, ge=0.5, le=1.0)
    window: int = Field(default=4, ge=2)

    def build(self) -> stop_base:
        if self.rule == "beta":
            return stop_when_beta(self.confidence)
        if self.rule == "dirichlet":
            return stop_when_dirichlet(self.confidence)
        if self.rule == "window":
            return stop_when_window(self.window)
        return stop_never()
