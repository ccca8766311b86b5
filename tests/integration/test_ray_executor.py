"""The Ray executor produces the same report as the local one on the same 50 items."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cascade.cli.eval import run_eval
from cascade.cli.main import _parser

pytestmark = pytest.mark.integration

CONFIG = {
    "name": "ray-check",
    "completer": {
        "type": "fake",
        "replies": {
            "fake/small": [
                {"match": r"[02468]\?$", "text": "even", "logprobs": [-0.02]},
                {"match": r"[13]\?$", "text": "even", "logprobs": [-0.05]},
                {"text": "odd", "logprobs": [-1.5]},
            ],
            "fake/large": [{"match": r"[02468]\?$", "text": "even", "logprobs": [-0.01]}, {"text": "odd"}],
        },
    },
    "tiers": [
        {
            "name": "small",
            "model": "fake/small",
            "logprobs": True,
            "prices": {"input_per_token": 1e-8, "output_per_token": 2e-8},
        },
        {
            "name": "large",
            "model": "fake/large",
            "logprobs": True,
            "prices": {"input_per_token": 1e-6, "output_per_token": 2e-6},
        },
    ],
    "verifier": {"type": "logprob"},
    "router": {"type": "threshold", "threshold": 0.6},
}
RUN_SPECIFIC = {"latency_s_mean", "latency_s_ci", "settings", "source"}


def _args(tmp: Path, executor: str) -> argparse.Namespace:
    """The real parser's namespace, so an option added to `cascade eval` is there with its default."""
    argv = ["eval", "--config", str(tmp / "c.yaml"), "--dataset", str(tmp / "items.jsonl"), "--limit", "50"]
    argv += ["--seed", "3", "--cache", str(tmp / f"{executor}.sqlite"), "--out", str(tmp / f"{executor}.json")]
    return _parser().parse_args([*argv, "--executor", executor])


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    report = {k: v for k, v in report.items() if k not in RUN_SPECIFIC}
    report["cascade"] = {k: v for k, v in report["cascade"].items() if k not in RUN_SPECIFIC}
    return report


def test_ray_report_equals_local_report(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    lines = [{"question": f"Is {n} even or odd? {n}?", "answer": "even" if n % 2 == 0 else "odd"} for n in range(60)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_eval(_args(tmp_path, "local")) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_eval(_args(tmp_path, "ray")) == 0
    finally:
        ray.shutdown()
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "ray.json").read_text())
    assert local["n_items"] == remote["n_items"] == 50
    assert 0 < local["cascade"]["em"] < 1 and local["cascade"]["escalation_rate"] > 0
    assert _stable(remote) == _stable(local)
    assert remote["settings"]["executor"] == "ray"
