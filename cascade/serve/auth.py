"""API keys and per-key budgets.

Keys come from the environment (`CASCADE_API_KEYS`, comma-separated), never from a config file
or the command line, where they would end up in shell history and process listings. A key is
checked against every configured key with `hmac.compare_digest` over SHA-256 digests, so neither
the content nor the length of a guess leaks through timing. Everywhere else (logs, metrics,
budgets) a key is known only by its id: `key-` and the first 8 hex digits of its SHA-256.

Each key's budget is a metering account (`cascade.serve.key_budgets`): every call reserves before
it is made, so a key with many requests in flight cannot overshoot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence

from cascade.serve.api_errors import ApiError

ENV_VAR = "CASCADE_API_KEYS"
ANONYMOUS = "anonymous"


def keys_from_env(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(key.strip() for key in environ.get(ENV_VAR, "").split(",") if key.strip())


def key_id(key: str) -> str:
    """A name for a key that is safe to log: it identifies the key but does not reveal it."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ApiKeys:
    """Bearer-token authentication; with no keys configured every caller is `anonymous`."""

    def __init__(self, keys: Sequence[str]):
        self._keys = [(_digest(key), key_id(key)) for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> str:
        """The caller's key id, or a 401 that never repeats what was sent."""
        if not self._keys:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        guess = _digest(token.strip())
        found = None
        for digest, ident in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(digest, guess):
                found = ident
        if found is None:
            raise ApiError(401, "invalid API key", code="invalid_api_key")
        return found
