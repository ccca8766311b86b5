"""How much one API key's feedback counts when learners learn: trust earned against the reference,
and a cap on each key's share of the evidence.

Every key shares the learned routing, so no key may steer it alone. Two rules, both per key:

- **Trust is earned.** Where a key's verdict and the reference (the strongest tier's answer, from an
  audit or an escalation) judge the same answer, the key agreed or not. A key's trust is
  `max(0, 2q - 1)`, `q` the one-sided 95% lower bound (Jeffreys) of its agreement rate: 0 for a key
  never checked, for one that agrees no more than a coin, and for one that contradicts the
  reference; near 1 for a key that agrees almost always. Feedback counts in proportion to trust.
  `trust_keys: all` trusts every key fully instead (one tenant; or no reference to check against).
- **A share cap.** One key's feedback weighs at most `key_share` of the evidence it is learned
  with, itself and the reference evidence: its weight is at most `key_share / (1 - key_share)`
  times the reference's. Other keys' feedback does not raise a key's cap (two keys cannot vouch
  for each other). With no reference evidence at all, keys are weighted by trust alone.

The operator's feedback is trusted fully and never capped: feedback recorded without a key (the
Python API, `cascade feedback`: whoever holds the store), and feedback over HTTP to a server without
API keys (`anonymous`: such a server binds to loopback only, so its callers are the operator's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import beta

OPERATOR = ""  # the judge of feedback recorded without an API key
OPERATORS = frozenset({OPERATOR, "anonymous"})  # "anonymous": cascade.serve.auth.ANONYMOUS
MAX_KEYS = 1000  # keys whose record a ledger keeps (the least checked are forgotten first)
TrustKeys = Literal["earned", "all"]


class TrustPolicy(BaseModel):
    """The learners' fields for feedback from API keys (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_share: float = Field(default=0.2, gt=0.0, le=1.0)
    trust_keys: TrustKeys = "earned"

    @property
    def ratio(self) -> float:
        """How many times the reference's weight one key's feedback may weigh (inf: no cap)."""
        return math.inf if self.key_share >= 1.0 else self.key_share / (1.0 - self.key_share)


@lru_cache(maxsize=4096)
def earned_trust(agreed: float, disagreed: float) -> float:
    """`max(0, 2q - 1)` with `q` the 5% quantile of Beta(agreed + 1/2, disagreed + 1/2)."""
    q = float(beta.ppf(0.05, agreed + 0.5, disagreed + 0.5))
    return max(0.0, 2.0 * q - 1.0)


class KeyTrust:
    """A learner's record of each key: agreements with the reference, and feedback weight admitted
    against the reference weight seen (for learners whose statistics accumulate, `admit`)."""

    def __init__(self, policy: TrustPolicy | None = None) -> None:
        self.policy = policy or TrustPolicy()
        self.checks: dict[str, list[float]] = {}  # key -> [agreed, disagreed]
        self.admitted: dict[str, float] = {}
        self.reference = 0.0

    def check(self, key: str, agreed: bool) -> None:
        """One answer both the key and the reference judged."""
        if key in OPERATORS:
            return
        counts = self.checks.setdefault(key, [0.0, 0.0])
        counts[0 if agreed else 1] += 1.0
        self._forget(self.checks, lambda k: sum(self.checks[k]))

    def trust(self, key: str) -> float:
        if key in OPERATORS or self.policy.trust_keys == "all":
            return 1.0
        agreed, disagreed = self.checks.get(key, (0.0, 0.0))
        return earned_trust(agreed, disagreed)

    def add_reference(self, weight: float = 1.0) -> None:
        self.reference += weight

    def admit(self, key: str, weight: float = 1.0) -> float:
        """The weight one piece of `key`'s feedback gets in accumulated statistics: `weight` times
        its trust, cut so the key's admitted total stays within its cap of the reference seen."""
        wanted = weight * self.trust(key)
        if key in OPERATORS or self.reference <= 0.0 or math.isinf(self.policy.ratio):
            return wanted
        used = self.admitted.get(key, 0.0)
        granted = max(0.0, min(wanted, self.policy.ratio * self.reference - used))
        self.admitted[key] = used + granted
        self._forget(self.admitted, self.admitted.__getitem__)
        return granted

    def shares(self, reference: float, amounts: Mapping[str, float]) -> dict[str, float]:
        """Each judge's weight in a pool of evidence: `amounts[key]` pieces of its feedback times its
        trust, capped at `ratio × reference` (the reference's own weight) for every key but the operator."""
        cap = self.policy.ratio * reference if reference > 0.0 else math.inf
        return {
            key: amount * self.trust(key) if key in OPERATORS else min(amount * self.trust(key), cap)
            for key, amount in amounts.items()
        }

    def to_state(self) -> dict[str, Any]:
        return {"checks": self.checks, "admitted": self.admitted, "reference": self.reference}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, policy: TrustPolicy | None = None) -> KeyTrust:
        ledger = cls(policy)
        if state:
            ledger.checks = {str(k): [float(a), float(d)] for k, (a, d) in state["checks"].items()}
            ledger.admitted = {str(k): float(v) for k, v in state["admitted"].items()}
            ledger.reference = float(state["reference"])
        return ledger

    @staticmethod
    def _forget(table: dict[str, Any], evidence: Any) -> None:
        if len(table) > MAX_KEYS:
            del table[min(table, key=evidence)]
