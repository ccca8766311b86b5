"""benchmarks/label_free.py: the warm-up never reads gold, the replay and the drift script the server as
they claim, and scoring reads the log's verdict on the response that was served (its own logic, no server)."""

from __future__ import annotations

import argparse

import pytest

from cascade.eval.data.formats import read_log
from tests.unit.bench_loader import load_benchmark

bench = load_benchmark("label_free")
ARC = bench.ROOT.parent / "shared" / "data" / "routerbench" / "arc_challenge_train.csv"
TUNED = bench.ROOT / "configs" / "tuned" / "arc_challenge.yaml"
needs_data = pytest.mark.skipif(not ARC.exists(), reason="no ../shared/data")
GPT4, MIXTRAL, MISTRAL = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat", "mistralai/mistral-7b-chat"


@pytest.fixture(scope="module")
def log():  # type: ignore[no-untyped-def]
    table = read_log(ARC)
    return table.subset(range(60)).select(table.models)


@needs_data
def test_the_warm_up_labels_are_agreement_with_the_dearest_model_not_gold(log) -> None:  # type: ignore[no-untyped-def]
    assert bench.strongest_of(log) == GPT4
    relabelled = bench.relabelled(log, GPT4)
    assert relabelled.correct(GPT4).mean() > 0.95  # GPT-4 agrees with itself wherever it gave a letter
    gold, agreement = log.correct(MIXTRAL), relabelled.correct(MIXTRAL)
    differs = [i for i in range(len(log)) if gold[i] != agreement[i]]
    assert all(not log.items[i].tiers[GPT4].correct for i in differs)  # only where GPT-4 was wrong


@needs_data
def test_the_drift_swaps_the_cheapest_tier_from_halfway_at_the_same_price(log) -> None:  # type: ignore[no-untyped-def]
    args = argparse.Namespace(rate=0.05, promise=0.97, seed=0, drift_scope="tier")
    replay = bench.Replay.of(TUNED, log, "tier", (30, MISTRAL))
    config = bench.server_config(TUNED, log.items, replay, args)
    tables = config["completer"]["tables"]
    mixtral = next(model for model in tables if "Mixtral" in model)
    first, late = log.items[0], log.items[40]
    assert tables[mixtral][first.prompt]["text"] == first.tiers[MIXTRAL].answer
    assert tables[mixtral][late.prompt]["text"] == late.tiers[MISTRAL].answer
    assert tables[mixtral][late.prompt]["cost_usd"] == late.tiers[MIXTRAL].cost_usd
    gpt4 = next(model for model in tables if "gpt-4" in model)
    assert tables[gpt4][late.prompt]["text"] == late.tiers[GPT4].answer  # the strongest tier never drifts
    assert config["audit"] == {"rate": 0.05, "min_agreement": 0.97, "seed": 0}
    one = bench.Replay.of(TUNED, log, "model", (30, MISTRAL))
    assert len(one.drifted) == 1 and len(replay.drifted) == 3


@needs_data
def test_scoring_reads_the_verdict_on_the_served_response(log) -> None:  # type: ignore[no-untyped-def]
    replay = bench.Replay.of(TUNED, log, "tier", None)
    tiers = bench.load_config(TUNED).tiers
    item = next(i for i in log.items if i.tiers[GPT4].correct and not i.tiers[MIXTRAL].correct)
    answer = bench.extract(item.tiers[MIXTRAL].answer, item.task, item.meta.get("letters"))
    served = [bench.Served("r", tiers[0].name, answer, 0.01), bench.Served("s", tiers[-1].name, None, 0.02)]
    bench.score(served, [item, item], GPT4, TUNED, replay)
    assert not served[0].correct and not served[0].agrees and served[1].correct is False
    assert served[1].agrees  # the reference tier's own answer is the reference, as the server counts it
    points = [{"items": 1, "low": 0.0, "high": 0.5}, {"items": 2, "low": 0.9, "high": 1.0}]
    share, rows = bench.coverage(served, points)
    assert share == 0.5 and [r["covered"] for r in rows] == [True, False]


def test_an_item_no_tier_answered_is_not_counted_against_the_interval_as_the_server_does_not_count_it() -> None:
    served = [bench.Served("a", "top", "B", 0.1, agrees=True), bench.Served("b", "", None, 0.0)]
    share, rows = bench.coverage(served, [{"items": 2, "low": 1.0, "high": 1.0}])
    assert share == 1.0 and rows[0]["truth"] == 1.0
    served.append(bench.Served("c", "cheap", "C", 0.01, agrees=False))
    assert bench.coverage(served, [{"items": 3, "low": 1.0, "high": 1.0}])[1][0]["truth"] == 0.5


@needs_data
def test_the_warm_up_is_tuned_by_the_label_free_command_on_a_sample_without_gold(  # type: ignore[no-untyped-def]
    log, tmp_path, monkeypatch
) -> None:
    called = []

    def tune(command, **_):  # type: ignore[no-untyped-def]
        called.append(command)
        (tmp_path / "tuned.json").write_text('{"n_items": 40}')

    monkeypatch.setattr(bench.subprocess, "run", tune)
    args = argparse.Namespace(min_agreement=0.98, selection="simultaneous", seed=3)
    tuned, report = bench.tune_on_warmup(log.subset(range(40)), args, tmp_path)
    sample = read_log(tmp_path / "warmup.jsonl")
    assert len(sample) == 40 and all(c.correct is None for item in sample.items for c in item.tiers.values())
    command = " ".join(called[0])
    assert "tune --logs" in command and "--reference strongest --min-agreement 0.98 --selection simultaneous" in command
    assert "--confidence" not in command and "--min-em" not in command  # the tuner's defaults, nothing fitted here
    assert tuned == tmp_path / "tuned.yaml" and report == {"n_items": 40}


@needs_data
def test_with_the_adaptive_router_the_thresholds_are_learned_at_the_agreement_target(log) -> None:  # type: ignore[no-untyped-def]
    args = argparse.Namespace(rate=0.05, promise=0.97, seed=0, router="adaptive", min_agreement=0.98)
    config = bench.server_config(TUNED, log.items, bench.Replay.of(TUNED, log, "tier", None), args)
    assert config["router"] == {"type": "adaptive", "target_em": 0.98, **bench.LEARNER}
    args.router = "tuned"
    assert (
        bench.server_config(TUNED, log.items, bench.Replay.of(TUNED, log, "tier", None), args)["router"]["type"]
        == "threshold"
    )


def test_a_502_is_an_unanswered_item_that_still_cost_money() -> None:
    import httpx

    headers = {"x-cascade-run-id": "r1", "x-cascade-tier": "big", "x-cascade-cost-usd": "0.25"}
    served = bench._served(httpx.Response(502, headers=headers, json={"error": {}}))
    assert (served.run_id, served.tier, served.answer, served.cost) == ("r1", "big", None, 0.25)
