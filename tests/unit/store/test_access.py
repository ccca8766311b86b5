"""Learning plugins get their store from the build context: one place resolves its address and opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, FakeCompleter
from cascade.config.schema import CascadeConfig
from cascade.learning.online import learners_of
from cascade.registry import BuildContext
from cascade.store import Store, open_store
from cascade.store.access import StoreAccess

TIERS = [{"name": "small", "model": "fake/small"}, {"name": "large", "model": "fake/large"}]
LEARNERS: dict[str, dict[str, Any]] = {
    "router": {"type": "adaptive", "target_em": 0.9},
    "pre_router": {"type": "learned"},
}


class Counting:
    """An opener that records the addresses it opened and whether each store was closed."""

    def __init__(self) -> None:
        self.opened: list[str | None] = []
        self.stores: list[Store] = []

    def __call__(self, address: str | None) -> Store:
        self.opened.append(address)
        self.stores.append(open_store(address))
        return self.stores[-1]


@pytest.fixture
def cascade_store(tmp_path: Path) -> str:
    return str(tmp_path / "runs.sqlite")


def test_the_address_is_the_plugins_own_else_the_cascades(cascade_store: str) -> None:
    access = StoreAccess(cascade_store)
    assert access.address() == cascade_store
    assert access.address("elsewhere.sqlite") == "elsewhere.sqlite"
    assert StoreAccess().address() is None  # open_store's default: $CASCADE_STORE, else the user data dir


def test_every_learning_plugin_opens_its_store_through_the_context(cascade_store: str, tmp_path: Path) -> None:
    own = str(tmp_path / "own.sqlite")
    data: dict[str, Any] = {"name": "access", "tiers": TIERS, **LEARNERS}
    data["pre_router"] = {**LEARNERS["pre_router"], "store": own}
    config, opener = CascadeConfig.from_dict(data), Counting()
    assert config.pre_router is not None
    ctx = BuildContext(config, stores=StoreAccess(cascade_store, opener=opener))
    built = [ctx.router(config.router), ctx.pre_router(config.pre_router)]
    assert opener.opened == [cascade_store, own]
    assert [b.store_dsn for b in learners_of(built)] == [cascade_store, own]
    for store in opener.stores:  # each was closed once the plugin had loaded and learned
        with pytest.raises(Exception, match="closed"):
            store.get_state("x")


def test_the_cascade_gives_its_learning_store_to_the_plugins(cascade_store: str) -> None:
    config = CascadeConfig.from_dict({"name": "access", "tiers": TIERS, **LEARNERS})
    cascade = Cascade(config, completer=FakeCompleter({}), learning_store=cascade_store)
    assert [learner.store_dsn for learner in cascade.learners()] == [cascade_store, cascade_store]
