"""Learned state has a size bound: tags are labels of bounded length, a bandit keeps a bounded number
of contexts, and the store refuses a state beyond its backstop (60 tags of 500 KB once grew the
bandit's state to 30 MB)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cascade.errors import UserError
from cascade.learning.thompson import ThompsonBandit
from cascade.learning.trust import KeyTrust
from cascade.run.graph import MAX_TAG_CHARS
from cascade.serve import ServeSettings, create_app
from cascade.store import open_store
from cascade.store.sql import MAX_STATE_BYTES
from routers.bandit import BanditConfig, BanditRouter, bandit_context
from tests.unit.learning.test_adaptive import attempt, labelled
from tests.unit.scripted import make_cascade
from tests.unit.serve.test_app import ask, demo


def test_a_tag_longer_than_a_label_is_the_callers_mistake() -> None:
    cascade, _ = make_cascade({"small": 0.9})
    assert cascade.run("q", tag="t" * MAX_TAG_CHARS).tag == "t" * MAX_TAG_CHARS
    with pytest.raises(UserError, match="tag is 500,000 characters; at most 512"):
        cascade.run("q", tag="t" * 500_000)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"tag": "t" * 500_000}, "values 512; 'tag' has 3 and 500000"),
        ({f"k{i}": "v" for i in range(17)}, "at most 16 key-value pairs, got 17"),
        ({"k" * 65: "v"}, "keys are at most 64 characters"),
    ],
)
async def test_metadata_beyond_openais_limits_gets_a_400(metadata: dict[str, str], message: str) -> None:
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.post("/v1/chat/completions", json=ask() | {"metadata": metadata})
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_many_long_tags_leave_the_bandits_state_small() -> None:
    """The issue's probe, scaled up: 2,000 tags of the longest length allowed, each a context."""
    router = BanditRouter(BanditConfig(arms=[0.0, 1.01], max_contexts=500), "large")
    for i in range(2_000):
        item = labelled(i, f"q{i}", [attempt("small", "4", 0.9, "accept", 10)])
        tag = f"{i:04d}" + "x" * (MAX_TAG_CHARS - 4)
        router.learn_one(router.bandit, replace(item, run=replace(item.run, features={"tag": tag})), KeyTrust())
    state = router.dump_model(router.bandit)
    size = len(json.dumps(state))
    assert len(state["by_context"]) == 500 and size < 200_000, size
    assert all(len(context) < 120 for context in state["by_context"])


def test_a_new_context_evicts_the_least_observed_one() -> None:
    bandit = ThompsonBandit(2, max_contexts=2)
    for _ in range(3):
        bandit.update("busy", 0, 1.0)
    bandit.update("quiet", 0, 1.0)
    bandit.update("new", 1, 0.0)
    assert set(bandit.by_context) == {"busy", "new"} and bandit.overall[0].n == 4
    smaller = ThompsonBandit.from_state(bandit.to_state(), max_contexts=1)
    assert set(smaller.by_context) == {"busy"}


def test_long_tags_become_bounded_context_names_and_stay_distinct() -> None:
    a, b = "a" * 400 + "1", "a" * 400 + "2"
    names = {bandit_context("q", 0.9, [0.5], "confidence", tag) for tag in (a, b)}
    assert len(names) == 2 and all(len(name) <= 64 + 8 for name in names)
    assert bandit_context("q", 0.9, [0.5], "confidence", "billing") == "tag=billing|c1"


def test_the_store_refuses_a_state_beyond_its_backstop(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        with pytest.raises(UserError, match=r"state 'router/x' is [\d,]+ bytes, above the store's limit"):
            store.put_state("router/x", {"blob": "x" * MAX_STATE_BYTES})
        with pytest.raises(UserError, match="above the store's limit"):
            store.compare_and_put_state("router/x", {"blob": "x" * MAX_STATE_BYTES}, expect_version=0)
        assert store.get_state("router/x") is None
    finally:
        store.close()
