"""Logged per-model outputs: RouterBench and RouteLLM readers, unknown correctness, our JSONL format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cascade.errors import UserError
from cascade.eval.data.external import LIST_PRICES, Price, estimate_tokens
from cascade.eval.data.formats import detect_log_format, read_log
from cascade.eval.data.logs import LogItem, LogTable, TierLog, write_log

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not available")
MODELS = ["small", "mid", "big"]


def routerbench_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A RouterBench-shaped CSV: per-model 0/1 columns, `|model_response`, `|total_cost`."""
    header = ["", "sample_id", "prompt", "eval_name", *MODELS]
    header += [f"{m}|model_response" for m in MODELS] + [f"{m}|total_cost" for m in MODELS]
    header.append("oracle_model_to_route_to")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({"": str(i), "sample_id": f"s{i}", "eval_name": "arc-challenge"} | row)
    return path


def _row(correct: tuple[str, str, str], answers: tuple[str, str, str], costs: tuple[float, float, float]) -> dict:
    row = {"prompt": "['Q?\\nA) x\\nB) y\\nAnswer:']"}
    for m, c, a, cost in zip(MODELS, correct, answers, costs, strict=True):
        row |= {m: c, f"{m}|model_response": f"['{a}\\n']", f"{m}|total_cost": str(cost)}
    return row


def test_routerbench_reader_and_unknown_correctness(tmp_path: Path) -> None:
    path = routerbench_csv(
        tmp_path / "rb.csv",
        [
            _row(("1.0", "1.0", "1.0"), ("A", "A", "A"), (0.1, 0.2, 1.0)),
            _row(("0.0", "", "1.0"), ("B", "A", "A"), (0.1, 0.2, 1.0)),
            _row(("0.0", "1.0", "1.0"), ("B", "A", "A"), (0.1, 0.2, 1.0)),
        ],
    )
    assert detect_log_format(path) == "routerbench"
    log = read_log(path)
    assert log.models == MODELS and len(log) == 3
    item = log.items[0]
    assert item.prompt == "Q?\nA) x\nB) y\nAnswer:" and item.task == "choice" and item.meta["letters"] == ["A", "B"]
    assert item.tiers["small"] == TierLog(True, 0.1, estimate_tokens(item.prompt) + 1, "A\n")
    assert log.items[1].tiers["mid"].correct is None  # empty cell: unknown, never correct
    chosen = log.select(["small", "mid"])
    assert len(chosen) == 2 and chosen.excluded == 1 and "1 item(s) excluded" in chosen.notes[-1]
    assert log.select(["small", "big"]).excluded == 0
    assert chosen.correct("small").tolist() == [1.0, 0.0]
    with pytest.raises(UserError, match="unknown model"):
        log.select(["nope"])


def test_routellm_reader_prices_tokens(tmp_path: Path) -> None:
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    path = tmp_path / "gsm8k_responses.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", weak, strong, f"{weak}_response", f"{strong}_response"])
        writer.writerow(["x" * 40, "True", "False", "y" * 80, "z" * 8])
    log = read_log(path)
    assert log.fmt == "routellm" and log.tokens_estimated
    small, big = log.items[0].tiers[weak], log.items[0].tiers[strong]
    # prompt 40 chars = 10 tokens; responses 20 and 2 tokens.
    assert small.tokens == 30 and small.cost_usd == pytest.approx((10 * 0.6 + 20 * 0.6) / 1e6)
    assert big.tokens == 12 and big.cost_usd == pytest.approx((10 * 10 + 2 * 30) / 1e6)
    assert (small.correct, big.correct) == (True, False)
    repriced = read_log(path, prices={strong: Price(24.7, 24.7)}, prompt_overhead_tokens=100)
    assert repriced.items[0].tiers[strong].cost_usd == pytest.approx((110 + 2) * 24.7 / 1e6)
    assert LIST_PRICES[strong].input_per_m == 10.0 and LIST_PRICES[weak].output_per_m == 0.6


def _routellm_file(path: Path, prompts: list[str]) -> Path:
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", weak, strong, f"{weak}_response", f"{strong}_response"])
        for prompt in prompts:
            writer.writerow([prompt, "True", "True", "4", "4"])
    return path


def _contaminated(path: Path, prompts: list[str]) -> None:
    path.write_text("".join(json.dumps({"train_prompt": p, "eval_prompt": p}) + "\n" for p in prompts))


def test_routellm_contaminated_prompts_left_out_unless_kept(tmp_path: Path) -> None:
    path = _routellm_file(tmp_path / "gsm8k_responses.csv", ["q1", "q2", "q3"])
    assert len(read_log(path)) == 3 and "every prompt kept" in read_log(path).notes[-1]
    _contaminated(tmp_path / "gsm8k_contaminated_prompts.jsonl", ["q2", "not in the log"])
    log = read_log(path)
    assert [item.prompt for item in log.items] == ["q1", "q3"] and [i.id for i in log.items][-1].endswith("-2")
    assert log.notes[-1].startswith("1 contaminated prompt(s) left out")
    kept = read_log(path, keep_contaminated=True)
    assert len(kept) == 3 and "kept" in kept.notes[-1]


def test_routellm_contamination_list_in_routellms_own_layout(tmp_path: Path) -> None:
    _routellm_file(tmp_path / "mmlu" / "responses" / "mmlu_anatomy.csv", ["a", "b"])
    _contaminated(tmp_path / "mmlu" / "contaminated_prompts.jsonl", ["a"])
    assert [item.prompt for item in read_log(tmp_path / "mmlu" / "responses").items] == ["b"]
    (tmp_path / "mmlu" / "contaminated_prompts.jsonl").write_text('{"train_prompt": "a"}\n')
    with pytest.raises(UserError, match=r"contaminated_prompts.jsonl:1: .*'eval_prompt'"):
        read_log(tmp_path / "mmlu" / "responses")


def test_cascade_jsonl_round_trip(tmp_path: Path) -> None:
    table = LogTable(
        ["a", "b"],
        [LogItem("q1", "2+2?", {"a": TierLog(True, 0.1, 5, "4", 0.9), "b": TierLog(None, 1.0)}, "number")],
    )
    path = tmp_path / "run.jsonl"
    write_log(table, path)
    back = read_log(path)
    assert back.models == ["a", "b"] and back.items[0].tiers == table.items[0].tiers
    assert back.items[0].task == "number" and back.tokens_estimated  # one tier has no token count


@needs_data
def test_real_routellm_gsm8k() -> None:
    log = read_log(DATA / "routellm" / "gsm8k_responses.csv")
    assert len(log) == 1307  # RouteLLM's 12 contaminated prompts left out, as its evals do
    assert len(read_log(DATA / "routellm" / "gsm8k_responses.csv", keep_contaminated=True)) == 1319
    assert log.correct("gpt-4-1106-preview").mean() == pytest.approx(0.857, abs=1e-3)
    assert log.correct("mistralai/Mixtral-8x7B-Instruct-v0.1").mean() == pytest.approx(0.638, abs=1e-3)
    assert (log.cost("gpt-4-1106-preview") > 10 * log.cost("mistralai/Mixtral-8x7B-Instruct-v0.1")).all()


@needs_data
def test_real_routellm_mmlu_directory() -> None:
    log = read_log(DATA / "routellm" / "mmlu_responses")
    assert len(log) == 14037 and log.items[0].task == "choice"  # 14,042 less 5 contaminated
    assert not log.has_answers("gpt-4-1106-preview")  # correctness only: no cascade possible


@needs_data
def test_real_routerbench_arc() -> None:
    log = read_log(DATA / "routerbench" / "arc_challenge_train.csv")
    assert len(log) == 1039 and len(log.models) == 11
    chosen = log.select(log.models)
    assert chosen.excluded == 20 and len(chosen) == 1019
    assert chosen.correct("gpt-4-1106-preview").mean() == pytest.approx(0.953, abs=1e-3)


def test_tier_log_from_a_live_attempt() -> None:
    from cascade.types import Attempt

    attempt = Attempt(
        tier="small",
        model="m",
        answer="4",
        prompt_tokens=7,
        completion_tokens=3,
        cost_usd=0.01,
        confidence=0.8,
        decision="accept",
    )
    assert TierLog.from_attempt(attempt, True) == TierLog(True, 0.01, 10, "4", 0.8, completion_tokens=3)
