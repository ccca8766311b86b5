"""Learning while serving: feedback posted to the server changes its answers without a restart,
with one learner at a time among processes sharing a store and the others following its state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.learning.online import LearnerSync, catch_up
from cascade.serve import ServeSettings, create_app
from cascade.serve.app import Server
from cascade.serve.learning import BackgroundLearning
from cascade.store import Store, open_store
from routers.adaptive import AdaptiveRouter

QUESTION = "What is the capital of France?"


def config(**router: Any) -> dict[str, Any]:
    """Small answers "Lyon" at confidence ~0.82 (wrong), large "Paris"; the router starts accepting at 0.5."""
    return {
        "name": "geo",
        "tiers": [
            {"name": "small", "model": "fake/small", "max_tokens": 16, "logprobs": True},
            {"name": "large", "model": "fake/large", "max_tokens": 64, "logprobs": True},
        ],
        "verifier": {"type": "logprob", "aggregate": "min"},
        "router": {"type": "adaptive", "target_em": 0.9, "min_evidence": 10, "window": 30, "step": 1.0,
                   "initial": 0.5, **router},
    }  # fmt: skip


def cascade(dsn: str, **router: Any) -> Cascade:
    fake = FakeCompleter(
        {
            "fake/small": FakeReply("Lyon", logprobs=[-0.2], prompt_tokens=10, completion_tokens=1),
            "fake/large": FakeReply("Paris", logprobs=[-0.01], prompt_tokens=12, completion_tokens=2),
        }
    )
    built = CascadeConfig.from_dict(config(**router))
    return Cascade(built, completer=fake, learning_store=dsn, learn_on_build=False)


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return str(tmp_path / "serve.sqlite")


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    opened = open_store(dsn)
    yield opened
    opened.close()


def app_for(served: Cascade, store: Store, dsn: str) -> Any:
    return create_app({"geo": served}, ServeSettings(), store=store, store_dsn=dsn)


def server_of(app: Any) -> Server:
    server = app.state.server
    assert isinstance(server, Server)
    return server


async def ask_and_label(http: httpx.AsyncClient, n: int) -> list[str]:
    """`n` questions; each answer gets the gold label "Paris" through POST /v1/feedback."""
    tiers = []
    for _ in range(n):
        body = (
            await http.post(
                "/v1/chat/completions", json={"model": "geo", "messages": [{"role": "user", "content": QUESTION}]}
            )
        ).json()
        tiers.append(body["cascade"]["final_tier"])
        label = {"run_id": body["cascade"]["run_id"], "kind": "label", "value": "Paris"}
        assert (await http.post("/v1/feedback", json=label)).status_code == 200
    return tiers


async def test_feedback_changes_the_answers_without_a_restart(store: Store, dsn: str) -> None:
    served = cascade(dsn)
    app = app_for(served, store, dsn)
    learning = server_of(app).learning
    assert learning is not None and [s.learner.state_key for s in learning.syncs] == ["router/adaptive/geo"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        before = await ask_and_label(http, 20)
        await learning.tick()
        after = await ask_and_label(http, 5)
        metrics = (await http.get("/metrics")).text
    assert set(before) == {"small"} and set(after) == {"large"}  # the wrong cheap answers stopped
    router = served.router
    assert isinstance(router, AdaptiveRouter) and router.threshold_for("small") > 0.82
    saved = store.get_state_entry("router/adaptive/geo")
    assert saved is not None and saved.value["cursor"] > 0 and saved.version >= 1
    assert 'cascade_learned_total{learner="router/adaptive/geo"} 20.0' in metrics
    assert 'cascade_learner_leading{learner="router/adaptive/geo"} 1.0' in metrics


async def test_two_workers_one_learner_the_other_follows(store: Store, dsn: str) -> None:
    first, second = cascade(dsn), cascade(dsn)
    apps = [app_for(first, store, dsn), app_for(second, open_store(dsn), dsn)]
    learners = [server_of(app).learning for app in apps]
    assert learners[0] is not None and learners[1] is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[1]), base_url="http://t") as http:
        await ask_and_label(http, 20)  # traffic and feedback reach worker 2 only
    await learners[0].tick()  # worker 1 takes the lease and learns
    await learners[1].tick()  # worker 2 sees the lease taken: it adopts the saved state
    leads = [learner.leading.labels("router/adaptive/geo")._value.get() for learner in learners]
    assert leads == [1.0, 0.0]
    a, b = first.router, second.router
    assert isinstance(a, AdaptiveRouter) and isinstance(b, AdaptiveRouter)
    assert a.controller.to_state() == b.controller.to_state() and a.controller.n_observed == 20
    await learners[0].stop()  # worker 1 shuts down and hands the lease back
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[1]), base_url="http://t") as http:
        await ask_and_label(http, 5)
    await learners[1].tick()
    assert b.controller.n_observed == 25 and learners[1].leading.labels("router/adaptive/geo")._value.get() == 1.0
    server_of(apps[1]).feedback.store.close()  # type: ignore[union-attr]


def test_a_stale_learner_never_overwrites_a_newer_state(store: Store, dsn: str) -> None:
    """Two learners step from the same saved state (a lease expired mid-step): one save lands, the
    other starts again from it, and every label is learned exactly once."""
    record_labelled_runs(store, 12)
    one, two = cascade(dsn).router, cascade(dsn).router
    assert isinstance(one, AdaptiveRouter) and isinstance(two, AdaptiveRouter)
    sync_one = LearnerSync(one, store)
    moved = two.advance(None, store, 5)  # two reads the empty state ...
    state, first = sync_one.step(5)  # ... one saves first
    assert first is not None and first.learned == 5 and state is not None
    assert store.compare_and_put_state(two.state_key, moved.state, expect_version=0) is None  # two's save is refused
    assert catch_up(two, store, 5) == 7 and two.controller.n_observed == 12


def test_learners_without_a_store_are_left_out(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_STORE", dsn)  # where a router naming no store loads its state at build
    served = Cascade(CascadeConfig.from_dict(config()), completer=FakeCompleter({}), learn_on_build=False)
    learning = server_of(create_app({"geo": served}, ServeSettings())).learning  # no --store
    assert learning is not None and learning.syncs == []


def test_a_learner_naming_its_own_store_learns_from_it(dsn: str, tmp_path: Path) -> None:
    own = str(tmp_path / "own.sqlite")
    served = Cascade(CascadeConfig.from_dict(config(store=own)), completer=FakeCompleter({}), learning_store=dsn)
    server = server_of(create_app({"geo": served}, ServeSettings(), store=open_store(dsn), store_dsn=dsn))
    assert server.learning is not None and [repr(s.store) for s in server.learning.syncs] == [f"SQLiteStore({own!r})"]


async def test_a_failing_store_is_counted_and_serving_goes_on(store: Store, dsn: str) -> None:
    served = cascade(dsn)
    app = app_for(served, store, dsn)
    learning = server_of(app).learning
    assert isinstance(learning, BackgroundLearning)

    def broken(*_args: Any, **_kwargs: Any) -> bool:
        raise OSError("disk gone")

    learning.syncs[0].store = type("Broken", (), {"acquire_lease": broken})()  # type: ignore[assignment]
    await learning.tick()
    assert learning.errors.labels("router/adaptive/geo")._value.get() == 1.0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert await ask_and_label(http, 1) == ["small"]


def record_labelled_runs(store: Store, n: int) -> None:
    served = cascade(":memory:")
    for _ in range(n):
        result = served.run(QUESTION)
        store.add_feedback(store.record_run(result, config_name="geo"), kind="label", value="Paris")
