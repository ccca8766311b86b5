"""Prometheus metrics on a registry owned by the app, so two apps (or tests) never share counters.

Per cascade (`model`) and tier: requests by status, attempts by decision (escalations are the
`escalate` ones), tokens, cost, and latency histograms for whole requests and single tiers.
Labels are bounded: unknown model names are counted as `unknown`, keys never appear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cascade.types import CascadeResult

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServeMetrics:
    """The server's counters; `render()` gives the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models: Iterable[str]):
        self.models = frozenset(models)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cascade_requests", "HTTP requests answered", ["model", "status"], registry=r)
        self.rejected = Counter("cascade_rejected", "Requests refused before running", ["reason"], registry=r)
        self.attempts = Counter("cascade_attempts", "Tier attempts", ["model", "tier", "decision"], registry=r)
        self.escalations = Counter("cascade_escalations", "Escalations out of a tier", ["model", "tier"], registry=r)
        self.answers = Counter("cascade_answers", "Runs by answering tier", ["model", "tier", "accepted"], registry=r)
        self.tokens = Counter("cascade_tokens", "Tokens spent", ["model", "tier", "kind"], registry=r)
        self.cost = Counter("cascade_cost_usd", "Dollars spent", ["model", "tier"], registry=r)
        self.latency = Histogram(
            "cascade_request_latency_seconds", "Request latency", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.tier_latency = Histogram(
            "cascade_tier_latency_seconds", "Tier latency", ["model", "tier"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.running = Gauge("cascade_requests_running", "Runs in progress", registry=r)
        self.waiting = Gauge("cascade_requests_waiting", "Requests waiting for a slot", registry=r)

    def label(self, model: str) -> str:
        return model if model in self.models else "unknown"

    def track_admission(self, running: Callable[[], float], waiting: Callable[[], float]) -> None:
        self.running.set_function(running)
        self.waiting.set_function(waiting)

    def request(self, model: str, status: int, latency_s: float) -> None:
        label = self.label(model)
        self.requests.labels(label, str(status)).inc()
        self.latency.labels(label).observe(latency_s)

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def run(self, model: str, result: CascadeResult) -> None:
        """Count every attempt of a finished run, failed ones included."""
        for a in result.attempts:
            self.attempts.labels(model, a.tier, a.decision).inc()
            if a.decision == "escalate":
                self.escalations.labels(model, a.tier).inc()
            self.tokens.labels(model, a.tier, "prompt").inc(a.prompt_tokens)
            self.tokens.labels(model, a.tier, "completion").inc(a.completion_tokens)
            self.cost.labels(model, a.tier).inc(a.cost_usd)
            self.tier_latency.labels(model, a.tier).observe(a.latency_s)
        self.answers.labels(model, result.final_tier or "none", str(result.accepted).lower()).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
