"""Long runs show progress: the tier being called and the tokens so far, in `cascade run` (a status line
on the terminal) and `cascade eval` (under its bars); a local model's timeout is not retried, and a
failure after retries says how many tries and how long, as the attempt's latency does."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from cascade.cli import main as cli
from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.completers.progress import Meter, watching
from cascade.completers.retrying import RetryingCompleter
from cascade.config.schema import RetryConfig, load_config
from cascade.errors import PermanentProviderError, TransientProviderError
from cascade.run.engine import Cascade
from cascade.types import Completion, CompletionRequest
from tests.unit.eval.test_cost_axis import dataset

FAKE = Path(__file__).resolve().parents[3] / "configs" / "fake.yaml"


class Snapshots:
    """A completer that notes what a progress display would show while each call is in flight."""

    def __init__(self, inner: FakeCompleter, meter: Meter):
        self.inner, self.meter = inner, meter
        self.seen: list[str] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.seen.append(self.meter.describe())
        return await self.inner.complete(request)


def test_the_meter_shows_the_tier_in_flight_and_the_tokens_so_far() -> None:
    config = load_config(FAKE)
    meter = Meter()
    script = {"fake/small": FakeReply("Lyon", logprobs=[-2.0]), "fake/large": FakeReply("Paris", logprobs=[-0.01])}
    snapshots = Snapshots(FakeCompleter(script), meter)
    with watching(meter):
        result = Cascade(config, completer=snapshots).run("Capital of France?")
    small, _ = result.attempts
    assert snapshots.seen[0].startswith("small (fake/small) · 0 tokens")
    assert snapshots.seen[1].startswith(f"large (fake/large) · {small.total_tokens} tokens")
    assert meter.tokens == result.total_tokens and meter.finished_calls == 2 and not meter.in_flight


def test_cascade_run_shows_the_tier_and_tokens_on_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "progress_console", lambda: Console(file=screen, force_terminal=True, width=100))
    assert cli.main(["run", "--config", str(FAKE), "--json", "Capital of France?"]) == 0
    total = json.loads(capsys.readouterr().out)["total_tokens"]
    assert f"calling large (fake/large) · {total} tokens" in screen.getvalue()


def test_cascade_eval_shows_the_tokens_so_far_under_its_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--config", str(FAKE), "--dataset", str(dataset(tmp_path)), "--cache", str(tmp_path / "c.sqlite")]
    assert cli.main(args) == 0
    assert re.search(r"now: (small|large) \(fake/(small|large)\) · [1-9][\d,]* tokens · \d+ s", capsys.readouterr().err)


def test_a_local_models_timeout_is_not_retried_and_says_why() -> None:
    slow = FakeCompleter({"local/qwen2.5-1.5b": FakeReply("4", delay_s=5.0)})
    retrying = RetryingCompleter(slow, RetryConfig(attempts=3, timeout_s=0.05))
    request = CompletionRequest(
        model="local/qwen2.5-1.5b", messages=[{"role": "user", "content": "2+2?"}], max_tokens=8
    )
    said = r"no answer within 0.05 s: 0 of at most 8 tokens written \(not retried"
    with pytest.raises(PermanentProviderError, match=said):
        asyncio.run(retrying.complete(request))
    assert retrying.retries == 0


def test_a_failure_after_retries_says_how_many_tries_and_how_long() -> None:
    slow = FakeCompleter({"fake/hosted": FakeReply("4", delay_s=5.0)})

    async def no_wait(_: float) -> None:
        return None

    retrying = RetryingCompleter(slow, RetryConfig(attempts=3, timeout_s=0.05), sleep=no_wait)
    request = CompletionRequest(model="fake/hosted", messages=[{"role": "user", "content": "2+2?"}], max_tokens=8)
    with pytest.raises(TransientProviderError, match=r"no answer within 0.05 s \(3 tries, 0\.\d s in all\)"):
        asyncio.run(retrying.complete(request))
