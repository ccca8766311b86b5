"""Serve the local catalog models over llama.cpp's OpenAI-compatible HTTP server.

    python -m cascade.local.server --port 8080 [--models smollm2-135m,qwen2.5-0.5b]

Resolves (joins, verifies) the weights from the installed packages, writes llama-cpp-python's
server config and runs `llama_cpp.server` with it, so a cascade reaches the same models through
litellm's `openai/<name>` provider and `api_base` (see configs/local_http.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cascade.local.catalog import resolve_model

DEFAULT_MODELS = ("smollm2-135m", "qwen2.5-0.5b")


def server_config(models: Sequence[str], host: str, port: int, n_ctx: int = 2048) -> dict[str, Any]:
    """llama_cpp.server's `--config_file` content: one entry per model, aliased by catalog name."""
    return {
        "host": host,
        "port": port,
        "models": [
            {
                "model": str(resolve_model(name)),
                "model_alias": name,
                "n_ctx": n_ctx,
                "n_threads": os.cpu_count() or 1,
                "logits_all": True,  # the server computes logprobs only with all logits kept
                "verbose": False,
            }
            for name in models
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated catalog names")
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args(argv)
    config = server_config([m.strip() for m in args.models.split(",") if m.strip()], args.host, args.port, args.n_ctx)
    path = Path(tempfile.mkdtemp(prefix="cascade-llama-server-")) / "config.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    launch = "from cascade.local.server import run_llama_server; run_llama_server()"
    os.execv(sys.executable, [sys.executable, "-c", launch, "--config_file", str(path)])
    return 0  # pragma: no cover  (execv does not return)


def run_llama_server() -> None:  # pragma: no cover  (the exec'd process; tests/integration run it)
    """`python -m llama_cpp.server` with its arguments, its models loaded as cascade loads them
    (without extra buffer types where the CPU reports AMX: `extra_buffers_wanted`)."""
    import runpy

    from cascade.local.engine import extra_buffers_setting, extra_buffers_wanted, import_llama_cpp

    with extra_buffers_setting(import_llama_cpp(), extra_buffers=extra_buffers_wanted()):
        runpy.run_module("llama_cpp.server", run_name="__main__")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
