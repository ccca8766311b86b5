"""A query's tag: from the caller through the workflow to the router, the result, the store and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cascade.errors import UserError
from cascade.protocols import DecideContext
from cascade.run.trace import Trace
from cascade.store import open_store
from routers.bandit import BanditRouter, bandit_context
from routers.threshold import ThresholdRouter
from tests.unit.learning.test_adaptive import build, run_result
from tests.unit.scripted import make_cascade


class Spy(ThresholdRouter):
    """A threshold router that remembers what every decision saw."""

    def __init__(self) -> None:
        super().__init__(0.7)
        self.seen: list[DecideContext] = []

    def decide(self, ctx: DecideContext) -> Any:
        self.seen.append(ctx)
        return super().decide(ctx)


def test_the_tag_reaches_every_decision_and_the_result() -> None:
    cascade, _ = make_cascade({"small": 0.2, "medium": 0.2, "large": 0.9})
    spy = Spy()
    cascade.graph.router = spy
    result = cascade.run("What is 2 + 2?", tag="billing")
    assert [ctx.tag for ctx in spy.seen] == ["billing"] * len(result.attempts) and len(spy.seen) > 1
    assert result.tag == "billing" and result.to_json_dict()["tag"] == "billing"
    assert cascade.run("What is 2 + 2?").tag is None


@pytest.mark.parametrize("tag", ["", "  ", 3])
def test_an_empty_or_non_text_tag_is_the_callers_mistake(tag: Any) -> None:
    cascade, _ = make_cascade({"small": 0.9})
    with pytest.raises(UserError, match="tag"):
        cascade.run("q", tag=tag)


def test_the_store_keeps_the_tag_with_the_run(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "runs.sqlite"))
    tagged = run_result(1).model_copy(update={"tag": "search"})
    run_id = store.record_run(tagged, config_name="cascade", features={"words": 4})
    record = store.get_run(run_id)
    store.close()
    assert record is not None and record.features == {"words": 4, "tag": "search"}
    assert record.result().tag == "search"


def test_the_bandit_learns_per_tag(tmp_path: Path) -> None:
    assert bandit_context("q", 0.9, [0.5], "query+confidence", "a").startswith("tag=a|")
    assert bandit_context("q", 0.9, [0.5], "query+confidence") == bandit_context(
        "q", 0.9, [0.5], "query+confidence", None
    )
    dsn = str(tmp_path / "bandit.sqlite")
    store = open_store(dsn)
    for i in range(40):
        run_id = store.record_run(run_result(i).model_copy(update={"tag": "math"}), config_name="cascade")
        store.add_feedback(run_id, kind="label", value="4")
    store.close()
    router = build("bandit", store=dsn)
    assert isinstance(router, BanditRouter)
    contexts = list(router.bandit.to_state()["by_context"])
    assert contexts and all(context.startswith("tag=math|") for context in contexts)


def test_the_trace_shows_the_tag() -> None:
    from rich.console import Console

    cascade, _ = make_cascade({"small": 0.9})
    console = Console(record=True, width=120)
    console.print(Trace(cascade.run("What is 2 + 2?", tag="onboarding")))
    assert "tag: onboarding" in console.export_text()
