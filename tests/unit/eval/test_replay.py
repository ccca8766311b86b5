"""Replay reports: a hand-computed case, the CLI on a RouterBench-shaped file, and the real logs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cascade.cli.replay import add_parser, run
from cascade.eval.analysis.anchors import routellm_metrics
from cascade.eval.analysis.confidence import LoggedConfidence
from cascade.eval.analysis.policies import CascadePolicy
from cascade.eval.analysis.replay import METRIC_KEYS, replay, replay_file
from cascade.eval.analysis.tables import anchors_table
from tests.unit.eval.test_logs import _row, routerbench_csv
from tests.unit.eval.test_policies import four_items

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not available")
BASELINE_KEYS = {"em", "em_ci", "total_tokens", "cost_usd"}


def _hand_report(**options: Any) -> dict:
    log = four_items().select(["w", "s"])
    return replay(log, [CascadePolicy(("w", "s"), LoggedConfidence())], seed=0, **options)


def test_replay_metrics_by_hand() -> None:
    report = _hand_report()
    # Curve (cost, EM): (4,.5) (14,.75) (24,.75) (34,.75) (44,.75); weak (4,.5), strong (40,.75).
    # x = (c-4)/36: 0, 10/36, 20/36, 30/36 (44 is past strong: dropped); PGR: 0, 1, 1, 1.
    # APGR = (10/36)*(0+1)/2 + (26/36)*1 = 31/36. CPT(50%) = CPT(80%) = 10/36.
    # AIQ over [4, 40]: hull (4,.5)-(14,.75) then flat: (10*(.5+.75)/2 + 26*.75)/36 = 25.75/36.
    # ΔIBC: best IBC at (14,.75): (.25/10)/(.25/36) = 3.6 → +260%.
    # Matched EM .75 first at cost 14: 1 - 14/40 = 0.65. Oracle over w, s costs 13:
    # captured (40-14)/(40-13) = 26/27.
    metrics = report["metrics"]
    assert metrics["apgr"] == pytest.approx(31 / 36)
    assert metrics["cpt50"] == pytest.approx(10 / 36) and metrics["cpt80"] == pytest.approx(10 / 36)
    assert metrics["aiq"] == pytest.approx(25.75 / 36)
    assert metrics["delta_ibc"] == pytest.approx(260.0)
    assert metrics["cost_reduction_at_matched_em"] == pytest.approx(0.65)
    assert metrics["oracle_saving_captured"] == pytest.approx(26 / 27)
    assert report["random"]["metrics"]["apgr"] == pytest.approx(0.5)
    assert report["baselines"]["oracle"]["cost_usd"] == 13.0


def test_anchor_metrics_by_hand() -> None:
    report = _hand_report()
    # Share of items calling s at each threshold: 0, 1/4, 2/4, 3/4, 1 with EM .5, .75, .75, .75, .75.
    # RouteLLM: AUC = .25*(.5+.75)/2 + .75*.75 = .71875; APGR = (.71875-.5)/(.75-.5) = .875.
    # CPT: np.interp(.625 | .7, EMs, shares) = .125 | .2.
    routellm = report["metrics"]["routellm"]
    assert routellm["apgr"] == pytest.approx(0.875) and routellm["notes"] == {}
    assert routellm["cpt50"] == pytest.approx(0.125) and routellm["cpt80"] == pytest.approx(0.2)
    assert [p["strong_call_share"] for p in report["policies"][0]["curve"]] == [0, 0.25, 0.5, 0.75, 1]
    assert report["random"]["metrics"]["routellm"]["apgr"] == pytest.approx(0.5)
    # RouterBench: the cascade reaches its best EM last at cost 44 (random mixing at 40), so both are
    # averaged over [0, 44]: cascade (10*(.5+.75)/2 + 30*.75)/44; random (36*(.5+.75)/2 + 4*.75)/44.
    assert report["metrics"]["routerbench"] == {"aiq": pytest.approx(28.75 / 44), "cost_end": 44.0}
    assert report["random"]["metrics"]["routerbench"]["aiq"] == pytest.approx(25.5 / 44)
    assert {"routellm.apgr", "routellm.cpt80", "routerbench.aiq", "apgr"} <= set(report["metric_definitions"])


def test_share_axis_undefined_when_the_strong_model_is_never_called() -> None:
    log = four_items()
    report = replay(log, [CascadePolicy(("w", "v"), LoggedConfidence())], models=["w", "v", "s"], strong="s")
    routellm = report["policies"][0]["metrics"]["routellm"]
    assert routellm["apgr"] is None and routellm["notes"]["cpt50"].startswith("undefined")
    console = Console(color_system=None, width=200, record=True)
    console.print(anchors_table(report))
    row = next(line for line in console.export_text().splitlines() if line.startswith("│ w → v"))
    assert row.count("undefined") == 3 and " 0.0%" not in row


def test_report_shape_and_given_threshold() -> None:
    report = _hand_report(threshold=0.4)
    assert report["n_items"] == 4 and report["weak"] == "w" and report["strong"] == "s"
    cascade = report["cascade"]
    assert {"em", "em_ci", "total_tokens", "cost_usd", "escalation_rate"} <= set(cascade)
    assert (cascade["em"], cascade["cost_usd"], cascade["escalation_rate"]) == (0.75, 14.0, 0.25)
    assert set(report["baselines"]) == {"w", "s", "random", "oracle"}
    assert all(set(b) >= BASELINE_KEYS for b in report["baselines"].values())
    # Random mixing at the cascade's cost: p = (14-4)/36, EM = .5 + .25 p.
    assert report["baselines"]["random"]["cost_usd"] == pytest.approx(14.0)
    assert report["baselines"]["random"]["em"] == pytest.approx(0.5 + 0.25 * 10 / 36)
    assert set(METRIC_KEYS) <= set(report["metrics"])
    assert len(report["policies"][0]["curve"]) == 5
    json.dumps(report)


def test_cross_fitted_operating_point() -> None:
    cascade = _hand_report()["cascade"]
    assert len(cascade["thresholds"]) == 2 and "cross-fitted" in cascade["selection"]
    assert 0.5 <= cascade["em"] <= 0.75 and 4.0 <= cascade["cost_usd"] <= 44.0


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    argv = ["replay", "--dataset", str(overrides.pop("dataset"))]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


def test_cli_on_a_routerbench_shaped_file(tmp_path: Path) -> None:
    rows = [
        _row(("1.0", "1.0", "1.0"), ("A", "A", "A"), (0.1, 0.2, 1.0)),
        _row(("0.0", "1.0", "1.0"), ("B", "A", "A"), (0.1, 0.2, 1.0)),
        _row(("0.0", "0.0", "1.0"), ("B", "B", "A"), (0.1, 0.2, 1.0)),
        _row(("1.0", "", "1.0"), ("A", "A", "A"), (0.1, 0.2, 1.0)),
    ]
    path = routerbench_csv(tmp_path / "rb.csv", rows)
    out = tmp_path / "r.json"
    assert run(_args(dataset=path, models="small,big", verifiers="mid", out=out)) == 0
    report = json.loads(out.read_text())
    assert report["n_items"] == 3 and report["excluded_items"] == 1  # the verifier's unknown cell
    assert report["policies"][0]["verifiers"] == ["mid"] and set(report["baselines"]) == {
        "small",
        "big",
        "random",
        "oracle",
    }
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    assert run(_args(dataset=path, plot=png)) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def _sane(report: dict) -> None:
    singles = [v for k, v in report["baselines"].items() if k not in ("random", "oracle")]
    assert all(report["baselines"]["oracle"]["em"] >= s["em"] for s in singles)
    assert report["baselines"]["oracle"]["cost_usd"] <= report["baselines"][report["strong"]]["cost_usd"]
    assert report["cascade"] is not None and set(METRIC_KEYS) <= set(report["metrics"])
    lo, hi = report["cascade"]["em_ci"]
    assert lo <= report["cascade"]["em"] <= hi
    assert 0.5 < report["metrics"]["apgr"] <= 1.0  # better than random mixing
    assert report["random"]["metrics"]["apgr"] == pytest.approx(0.5)
    json.dumps(report)


@needs_data
def test_replay_routellm_gsm8k() -> None:
    report = replay_file(DATA / "routellm" / "gsm8k_responses.csv")
    assert report["n_items"] == 1307 and report["strong"] == "gpt-4-1106-preview"  # decontaminated
    assert report["baselines"]["gpt-4-1106-preview"]["em"] == pytest.approx(0.857, abs=1e-3)
    assert report["baselines"]["mistralai/Mixtral-8x7B-Instruct-v0.1"]["em"] == pytest.approx(0.638, abs=1e-3)
    assert report["cascade"]["confidence"] == "heuristic"  # two models, no verifier to agree with
    _sane(report)
    # RouteLLM's definition on the replay's own curve (share of GPT-4 calls); values are in RESULTS.md.
    curve = [(p["strong_call_share"], p["em"]) for p in report["policies"][0]["curve"]]
    weak, strong = (report["baselines"][report[k]]["em"] for k in ("weak", "strong"))
    assert report["metrics"]["routellm"] == routellm_metrics(curve, weak, strong).as_dict()
    assert 0.5 < report["metrics"]["routellm"]["apgr"] < 1 and report["metrics"]["routerbench"]["aiq"] > 0.7


@needs_data
def test_replay_routerbench_arc() -> None:
    report = replay_file(DATA / "routerbench" / "arc_challenge_train.csv")
    assert report["n_items"] + report["excluded_items"] == 1039 and report["excluded_items"] == 20
    assert len(report["baselines"]) == 13  # 11 models, random, oracle
    assert report["cascade"]["confidence"] == "agreement" and report["strong"] == "gpt-4-1106-preview"
    _sane(report)
