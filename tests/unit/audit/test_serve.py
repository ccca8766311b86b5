"""`cascade serve` with audits: the promise in /metrics, audits off the request path and charged to no key,
drained at shutdown, and `cascade report` reading the store."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from cascade.cli.main import main
from cascade.cli.report import since_time
from cascade.run.engine import Cascade
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.store import open_store
from tests.unit.audit.test_engine import config, fake, gated

KEY = "sk-audit-test-0123456789"


def test_served_answers_are_audited_and_the_promise_shows_in_metrics_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "store.sqlite")
    gate = threading.Event()  # holds the audit of the France answer until every reply is in
    cascade = Cascade(config(rate=1.0, min_agreement=0.5), completer=fake(gated(gate)), learning_store=path)
    store = open_store(path)
    settings = ServeSettings(api_keys=(KEY,), key_max_cost_usd=1.0)
    app = create_app({"audited": cascade}, settings, store=store, store_dsn=path)
    questions = ["2+2?"] * 6 + ["Capital of France?", "Who?"]
    with serve_in_thread(app) as base, httpx.Client(base_url=base, headers={"authorization": f"Bearer {KEY}"}) as http:
        replies = [
            http.post("/v1/chat/completions", json={"model": "audited", "messages": [{"role": "user", "content": q}]})
            for q in questions
        ]
        in_flight = cascade.auditor.monitor.snapshot().pending if cascade.auditor else 0
        gate.set()
        assert all(r.status_code == 200 for r in replies)
        assert in_flight >= 1  # the France answer was served while its audit still waited
        metrics = http.get("/metrics").text
    # leaving the block shut the server down: its audits in flight were drained into the store
    assert 'cascade_agreement{bound="estimate",model="audited",variant=""}' in metrics
    assert 'cascade_drift_alarm{model="audited",variant=""} 0.0' in metrics
    assert "cascade_audit_cost_usd_total" in metrics and "cascade_cost_ratio_vs_strongest" in metrics
    pairs = [r.pair for r in store.reference_pairs()]
    audits = [p for p in pairs if p.source == "audit"]
    assert len(audits) == 7 and sum(p.agree is True for p in audits) == 6  # six "4"s agree, "Lyon" does not
    assert [p.answer for p in pairs if p.source == "escalation"] == ["?"]
    runs = store.runs()
    below = [r for r in runs if r.final_tier == "small"]
    assert len(below) == 7 and all(r.features.get("audit_rate") == 1.0 and r.features.get("audited") for r in below)
    (key_account,) = store.budget_accounts()  # type: ignore[attr-defined]
    store.close()
    runs_usd = sum(r.total_cost_usd for r in runs)
    assert key_account[1].usd == pytest.approx(runs_usd)  # the key paid its runs; the audits are no key's
    yaml_path = tmp_path / "audited.yaml"
    yaml_path.write_text(config(rate=1.0, min_agreement=0.5).model_dump_json(exclude_none=True))
    assert main(["report", "--config", str(yaml_path), "--store", path, "--json"]) == 0
    (variant,) = json.loads(capsys.readouterr().out)["variants"]
    audits = variant["audits"]
    assert (variant["runs"], variant["answers"], audits["agree"], audits["disagree"]) == (8, 8, 6, 1)
    assert variant["agreement"]["estimate"] == pytest.approx(7 / 8) and variant["promise_holds"] is True
    assert variant["runs_usd"] == pytest.approx(runs_usd) and variant["audits_usd"] > 0
    assert variant["tiers"]["small"] == {"audited": 7, "audited_agree": 6, "escalated": 1, "escalated_agree": 0}
    assert main(["report", "--config", str(yaml_path), "--store", path, "--since", "1h"]) == 0
    assert "agreement with 'large'" in capsys.readouterr().out
    assert main(["report", "--config", str(yaml_path), "--store", path, "--since", "yesterday"]) == 2


def test_since_reads_ages_and_iso_times() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert since_time("90m", now) == "2026-12-07T10:30:00.000000+00:00"
    assert since_time("2026-12-01T08:00", now) == "2026-12-01T08:00:00.000000+00:00"
    assert since_time("2026-12-01T09:00+01:00", now) == "2026-12-01T08:00:00.000000+00:00"
    assert since_time(None) is None
