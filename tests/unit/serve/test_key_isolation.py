"""Key isolation (issue 25): one API key's feedback cannot steer the routing every key shares.

Two servers get the same traffic from keys A and B; their cascade audits half the answers it serves
below the strongest tier and learns (the `adaptive` router) from those audits and from escalations.
On one server, key A also posts 1,000 thumbs-down on answers the audits confirm. Key B's routing is
the same on both, decision for decision. With the defences off (every key trusted, no share cap)
the same flood sends B's easy questions to the dear tier: the test can fail.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config.schema import CascadeConfig
from cascade.run.engine import Cascade
from cascade.serve import ServeSettings, create_app
from cascade.store import open_store

A, B = "sk-key-a-0123456789", "sk-key-b-0123456789"
ROUNDS, PER_ROUND, POSTS_PER_RUN = 10, 10, 10  # A: 100 runs, 1,000 thumbs-down


def price(usd: float) -> dict[str, float]:
    return {"input_per_token": usd, "output_per_token": usd}


def config(**router: Any) -> CascadeConfig:
    return CascadeConfig.from_dict({
        "name": "shared",
        "tiers": [
            {"name": "small", "model": "fake/small", "logprobs": True, "prices": price(1e-7)},
            {"name": "large", "model": "fake/large", "logprobs": True, "prices": price(1e-5)},
        ],
        "verifier": {"type": "logprob"},
        "router": {"type": "adaptive", "target_em": 1.0, "min_evidence": 10, "window": 200, "step": 0.2, **router},
        "audit": {"rate": 0.5},
    })  # fmt: skip


def fake() -> FakeCompleter:
    """Easy questions: the small tier is sure and right (the audits agree); hard ones: unsure and wrong."""
    return FakeCompleter({
        "fake/small": [FakeReply("4", match="easy", logprobs=[-0.05]), FakeReply("390", logprobs=[-0.9])],
        "fake/large": [FakeReply("4", match="easy", logprobs=[-0.01]), FakeReply("391", logprobs=[-0.01])],
    })  # fmt: skip


async def ask(http: httpx.AsyncClient, key: str, question: str) -> dict[str, Any]:
    body = {"model": "shared", "messages": [{"role": "user", "content": question}]}
    response = await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()["cascade"]
    return info


async def settled(cascade: Cascade) -> None:
    """Wait until the audits in flight and their pairs' writes are done (they run off the request path)."""
    auditor = cascade.auditor
    assert auditor is not None
    while auditor.pending or auditor._writes:
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory when the machine has one: the stream commits ~1,800 times, each an fsync on disk."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as made:
        yield Path(made)


async def b_routing(where: Path, name: str, *, flood: bool, **router: Any) -> tuple[list[str], dict[str, Any]]:
    """Serve the stream; B's probe questions' tiers after it, and the router's saved state."""
    path = str(where / f"{name}.sqlite")
    cascade = Cascade(config(**router), completer=fake(), learning_store=path, learn_on_build=False)
    store = open_store(path)
    settings = ServeSettings(api_keys=(A, B), feedback_per_minute=100_000, learn=False)
    app = create_app({"shared": cascade}, settings, store=store, store_dsn=path)
    (learner,) = cascade.learners()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            for r in range(ROUNDS):
                for i in range(PER_ROUND):
                    await ask(http, B, f"{'easy' if i % 2 else 'hard'} question {r}-{i} from B")
                mine = [(await ask(http, A, f"easy question {r}-{i} from A"))["run_id"] for i in range(PER_ROUND)]
                await settled(cascade)
                if flood:
                    for run_id in mine * POSTS_PER_RUN:
                        thumb = {"run_id": run_id, "kind": "thumbs_down"}
                        response = await http.post("/v1/feedback", json=thumb, headers={"authorization": f"Bearer {A}"})
                        assert response.status_code == 200
                learner.learn(store)  # what the server's background learner does every few seconds
            probes = [f"{'easy' if i % 2 else 'hard'} probe {i} from B" for i in range(20)]
            tiers = [(await ask(http, B, q))["final_tier"] for q in probes]
        state = store.get_state(learner.state_key)
        assert state is not None
        if flood:
            assert (
                sum(f.key is not None for r in store.runs(limit=10_000) for f in store.feedback_for(r.run_id)) == 1000
            )
        return tiers, state
    finally:
        cascade.close()
        store.close()


async def test_a_keys_thumbs_down_on_answers_audits_confirm_leave_another_keys_routing_unchanged(
    fast_dir: Path,
) -> None:
    quiet, _ = await b_routing(fast_dir, "quiet", flood=False)
    flooded, state = await b_routing(fast_dir, "flooded", flood=True)
    assert quiet == ["large", "small"] * 10  # it learned from audits and escalations alone: easy ones stay cheap
    assert flooded == quiet
    ((agreed, disagreed),) = state["trust"]["checks"].values()  # key A, checked against the audits
    assert agreed == 0 and disagreed >= 50  # each of its runs the audits or an escalation judged


async def test_without_the_defences_the_same_flood_steers_everyone(fast_dir: Path) -> None:
    steered, _ = await b_routing(fast_dir, "open", flood=True, trust_keys="all", key_share=1.0)
    assert steered.count("large") > 10  # B's easy questions go to the dear tier too


def test_a_server_says_when_keys_feedback_cannot_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Keys earn trust against audits and escalations: without `audit:` their feedback would be ignored."""
    path = str(tmp_path / "s.sqlite")
    unaudited = config().model_copy(update={"audit": None})
    store = open_store(path)
    try:
        for trust_keys, keys in (("earned", (A,)), ("earned", ()), ("all", (A,))):
            caplog.clear()
            built = unaudited.model_copy(update={"router": config(trust_keys=trust_keys).router})
            cascade = Cascade(built, completer=fake(), learning_store=path, learn_on_build=False)
            create_app({"shared": cascade}, ServeSettings(api_keys=keys), store=store, store_dsn=path)
            warned = [r.getMessage() for r in caplog.records if "will not learn from API keys' feedback" in r.message]
            assert len(warned) == (trust_keys == "earned" and bool(keys)), (trust_keys, keys)
            assert all("add `audit: {rate: 0.05}` (recommended), or set `trust_keys: all`" in w for w in warned)
    finally:
        store.close()
