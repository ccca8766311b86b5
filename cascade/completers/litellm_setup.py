"""The one place that configures litellm for the project.

litellm reads `LITELLM_LOCAL_MODEL_COST_MAP` once, when it is first imported: unset, it fetches its
price map over the network at import. This module sets it at its own import, and `cascade/__init__.py`
imports it first, so no cascade module (nor a plugin, test or benchmark importing one) can import
litellm before it is set. A user's own setting wins (`setdefault`). `import_litellm()` then sets
litellm's module switches, once, where the completer and the server first need litellm.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def import_litellm() -> Any:
    """litellm, imported (slow: seconds) and quiet; parameters a provider lacks are dropped, not errors."""
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # a provider without logprobs/seed support ignores them
    return litellm
