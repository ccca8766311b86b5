"""benchmarks/serve_learning.py scripts the server from the log faithfully (its own logic, no server)."""

from __future__ import annotations

import math

import pytest

from cascade.completers.plugins import FakeCompleterConfig
from cascade.config.schema import CascadeConfig
from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("serve_learning")
needs_data = pytest.mark.skipif(
    not (bench.DATA / "routellm" / "gsm8k_responses.csv").exists(), reason="no ../shared/data"
)


@needs_data
def test_the_scripted_cascade_replays_the_log() -> None:
    stream, gold = bench.load_stream("gsm8k"), bench.golds()
    config = CascadeConfig.from_dict(bench.config(stream, gold))
    small = FakeCompleterConfig.of(config).by_prompt["fake/mixtral-8x7b"]
    c = stream.cascade
    for i in (0, 1, 7, 500):
        reply = small[stream.queries[i]]
        assert (reply.text == gold[i]) == bool(c.correct[i, 0])
        assert reply.logprobs is not None and math.exp(reply.logprobs[0]) == pytest.approx(
            max(c.confidence[i, 0], 1e-6)
        )
        assert (reply.prompt_tokens or 0) + (reply.completion_tokens or 0) == max(int(c.tokens[i, 0]), 2)
    assert config.router.params()["target_em"] == stream.target and len(small) == len(stream.queries)


def test_the_summary_counts_escalations_and_em() -> None:
    seen = [bench.Served("gpt4", True, 300, 0.01, 1), bench.Served("mixtral", False, 100, 0.001, 1)]
    row = bench.summary(seen, [1.0, 0.5])
    assert (row["n"], row["escalation_rate"], row["em"], row["tokens_per_query"], row["mean_threshold"]) == (
        2, 0.5, 0.5, 200.0, 0.75,
    )  # fmt: skip
