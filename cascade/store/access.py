"""The stores plugins read while a cascade is built: one place that says where a store is and opens it.

A learning router or pre-router loads its saved state (and may catch up) at build time. It does not
open a store itself: it asks the build context (`BuildContext.stores`), which resolves the address
once for every plugin and opens it for the length of the plugin's use. The address is the plugin's
own `store:` when its config names one, else the cascade's store (the one its runs are recorded in:
`Cascade(config, learning_store=...)`, `cascade serve --store`, `cascade learn --dsn`), else
`open_store`'s default (`$CASCADE_STORE`, else the user data dir).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cascade.store import Store, open_store


class StoreAccess:
    """Where the plugins of one cascade find their store (`opener` opens an address: `open_store`)."""

    def __init__(self, default: str | None = None, *, opener: Callable[[str | None], Store] = open_store) -> None:
        self.default = default
        self._opener = opener

    def address(self, own: str | None = None) -> str | None:
        """Where a plugin's store is: its own `store:`, else the cascade's (None: `open_store`'s default)."""
        return own or self.default

    @contextmanager
    def open(self, own: str | None = None) -> Iterator[Store]:
        """The store at `address(own)`, open for the length of the block."""
        store = self._opener(self.address(own))
        try:
            yield store
        finally:
            store.close()
