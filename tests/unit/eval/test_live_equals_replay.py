"""Live equals replay: a config run by the real engine, with the fake completer scripted from a log's
responses and costs, decides exactly as `cascade replay --config` does on every item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import verifiers  # noqa: F401  registers the plugins even without installed entry points
from cascade import Cascade, FakeCompleter, FakeReply
from cascade.config.schema import AnswerConfig, load_config
from cascade.eval.analysis.config_replay import ConfigRun, run_config
from cascade.eval.analysis.offline_tiers import TierSpec, chain_inputs, run_tier
from cascade.eval.data.external import estimate_tokens
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogTable
from cascade.eval.data.models import litellm_name
from cascade.io.answers import extractor
from cascade.scoring.train import FitOptions, fit_scorer

ROOT = Path(__file__).resolve().parents[3]
ARC = ROOT.parent / "shared" / "data" / "routerbench" / "arc_challenge_train.csv"
TUNED = ROOT / "configs" / "tuned" / "arc_challenge.yaml"
needs_data = pytest.mark.skipif(not ARC.exists(), reason="../shared/data is not available")
ENSEMBLE = ("mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat", "claude-instant-v1")
SECOND = "gpt-3.5-turbo-1106"
STRONG = "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def arc() -> LogTable:
    log = read_log(ARC)
    log = log.select(log.models)
    order = np.random.default_rng(7).permutation(len(log))
    return log.subset(sorted(order[:400].tolist()))


def scripted(log: LogTable, config_path: Path) -> FakeCompleter:
    """Each tier model answers each item's prompt with its logged response, at its logged cost."""
    config = load_config(config_path)
    models = {m.model for tier in config.tiers for m in tier.member_specs()}
    by_prompt: dict[str, dict[str, FakeReply]] = {}
    for column in log.models:
        name = litellm_name(column)
        if name in models:
            by_prompt[name] = {
                item.prompt: FakeReply(
                    item.tiers[column].answer or "",
                    prompt_tokens=estimate_tokens(item.prompt),
                    completion_tokens=estimate_tokens(item.tiers[column].answer or ""),
                    cost_usd=item.tiers[column].cost_usd,
                )
                for item in log.items
            }
    return FakeCompleter({}, by_prompt=by_prompt)


def assert_same_decisions(log: LogTable, config_path: Path) -> ConfigRun:
    replayed = run_config(load_config(config_path), log)
    cascade = Cascade(load_config(config_path), completer=scripted(log, config_path))
    results = cascade.batch([item.prompt for item in log.items], concurrency=16)
    names = [t.name for t in cascade.config.tiers]
    for i, result in enumerate(results):
        assert result.error is None
        assert result.final_tier == names[replayed.stop[i]], f"item {i}: live {result.final_tier}"
        assert result.answer == replayed.runs[replayed.stop[i]].answers[i]
        assert result.total_cost_usd == pytest.approx(replayed.cost[i], rel=1e-9, abs=1e-15)
        for attempt in result.attempts:
            if attempt.answer is not None:
                j = names.index(attempt.tier)
                assert attempt.confidence == pytest.approx(replayed.confidence[i, j], abs=1e-9)
    return replayed


def write_scored_config(log: LogTable, folder: Path) -> Path:
    """Ensemble (scorer) → gpt-3.5 (agreement) → ensemble of two (vote) → GPT-4, scorer fitted on `log`."""
    choice = extractor(AnswerConfig(format="choice"))
    specs = [TierSpec("vote3", ENSEMBLE), TierSpec("second", (SECOND,))]
    runs = [run_tier(log, s, choice) for s in specs]
    scorer = fit_scorer(chain_inputs(log, runs, 0), runs[0].correct, FitOptions(shared_head=False))
    scorer.save(folder / "arc.scorer.json")
    threshold = float(np.quantile(scorer.predict_many(chain_inputs(log, runs, 0)), 0.4))

    def tier(name: str, models: tuple[str, ...]) -> dict[str, object]:
        spec: dict[str, object] = {"name": name, "max_tokens": 16, "answer": {"format": "choice"}}
        if len(models) == 1:
            spec["model"] = litellm_name(models[0])
        else:
            spec["models"] = [litellm_name(m) for m in models]
        return spec

    tiers = [
        tier("vote3", ENSEMBLE),
        tier("second", (SECOND,)),
        tier("pair", ("claude-v1", "WizardLM/WizardLM-13B-V1.2")),
    ]
    tiers[0]["verifier"] = {"type": "scorer", "path": "arc.scorer.json"}
    tiers[1]["verifier"] = {"type": "agreement"}
    tiers[2]["verifier"] = {"type": "vote"}
    tiers.append(tier("strong", (STRONG,)))
    config = {
        "name": "scored",
        "tiers": tiers,
        "verifier": {"type": "format", "kind": "nonempty"},
        "router": {"type": "threshold", "threshold": 0.5, "per_tier": {"vote3": round(threshold, 4), "second": 1.0}},
    }
    path = folder / "arc.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@needs_data
def test_a_scorer_agreement_and_vote_cascade_decides_live_as_replayed(arc: LogTable, tmp_path: Path) -> None:
    path = write_scored_config(arc.subset(range(200)), tmp_path)
    held = arc.subset(range(200, 400))
    replayed = assert_same_decisions(held, path)
    assert len(set(replayed.stop.tolist())) >= 3  # every kind of gate accepted something: a real test


@needs_data
@pytest.mark.skipif(not TUNED.exists(), reason="no tuned ARC config shipped")
def test_the_shipped_tuned_arc_config_decides_live_as_replayed(arc: LogTable) -> None:
    replayed = assert_same_decisions(arc, TUNED)
    assert replayed.stop.min() == 0 < replayed.stop.max()  # the cascade both accepts and escalates


@needs_data
def test_a_pre_router_that_skips_a_tier_decides_live_as_replayed(arc: LogTable, tmp_path: Path) -> None:
    """Replay follows the route plan as live runs do (`cascade.decision.stopping`): the skipped tier is
    neither called nor paid for, on the items whose rule skips it."""
    path = write_scored_config(arc.subset(range(200)), tmp_path)
    held = arc.subset(range(200, 400))
    long = int(np.median([len(item.prompt.split()) for item in held.items]))
    config = yaml.safe_load(path.read_text())
    config["pre_router"] = {"type": "features", "rules": [{"when": {"min_words": long}, "skip": ["second"]}]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    replayed = assert_same_decisions(held, path)
    skipped = np.array([len(item.prompt.split()) >= long for item in held.items])
    assert skipped.any() and (~skipped).any()
    assert not (replayed.stop[skipped] == 1).any()  # "second" never answers where it is skipped
    assert (replayed.stop[~skipped] == 1).any()
