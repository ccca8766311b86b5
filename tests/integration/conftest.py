"""Fixtures for tests on real local models: resolved GGUF paths, the `local` provider, a llama.cpp server.

Everything is session-scoped so each model is loaded (and each split model joined) once per run.
Missing llama-cpp-python or weight packages skip with the exact pip command; CI installs them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from cascade.errors import ModelNotFoundError
from cascade.local.catalog import LOCAL_EXTRA_HINT, resolve_model
from cascade.serve.background import stop_process

SERVER_MODELS = ("smollm2-135m", "qwen2.5-0.5b")
SERVER_MODEL_ALIAS = SERVER_MODELS[0]
SERVER_START_TIMEOUT_S = 120.0
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The shipped per-call timeout (120 s) is for users. On this 2-core CI machine, shared with other
# jobs, Qwen2.5-1.5B wrote 2.3 tokens/s (benchmarks/omp_wait.py), so the reasoning tier's 384
# tokens take ~170 s before any load on top; tests allow 900 s a call (0.43 tokens/s), which
# still ends a call that hangs with a timeout error instead of a wait without end.
LOCAL_CALL_TIMEOUT_S = 900.0


def _skip_without_llama_cpp() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip(f"llama-cpp-python is not installed ({LOCAL_EXTRA_HINT})")


@pytest.fixture(scope="session")
def local_model_path() -> Callable[[str], Path]:
    """`local_model_path("qwen2.5-0.5b")` -> verified GGUF path, or a skip naming what to install."""
    _skip_without_llama_cpp()
    resolved: dict[str, Path] = {}

    def resolve(name: str) -> Path:
        if name not in resolved:
            try:
                resolved[name] = resolve_model(name)
            except ModelNotFoundError as exc:
                pytest.skip(str(exc))
        return resolved[name]

    return resolve


@pytest.fixture(scope="session")
def local_provider() -> object:
    """Registers the `local` litellm provider (idempotent) and returns its handler."""
    _skip_without_llama_cpp()
    from cascade.local.provider import register_local_provider

    return register_local_provider()


def _local_model(name: str, local_model_path: Callable[[str], Path]) -> str:
    """Resolve and load a catalog model once; returns its litellm model string."""
    from cascade.local.provider import get_local_model

    local_model_path(name)
    get_local_model(name)
    return f"local/{name}"


@pytest.fixture(scope="session")
def smollm2(local_provider: object, local_model_path: Callable[[str], Path]) -> str:
    return _local_model("smollm2-135m", local_model_path)


@pytest.fixture(scope="session")
def qwen05(local_provider: object, local_model_path: Callable[[str], Path]) -> str:
    return _local_model("qwen2.5-0.5b", local_model_path)


@pytest.fixture(scope="session")
def patient_config(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`patient_config("local.yaml")` -> a copy of that shipped config whose calls may take
    LOCAL_CALL_TIMEOUT_S, for tests that load it as users do (by path: the CLI, `cascade serve`)."""

    def copy(name: str) -> Path:
        data = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
        data["retry"] = {**data.get("retry", {}), "timeout_s": LOCAL_CALL_TIMEOUT_S}
        path = tmp_path_factory.mktemp("patient") / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return copy


@pytest.fixture(scope="session")
def llama_server_model() -> str:
    """The litellm model string for the `llama_server` fixture's model."""
    return f"openai/{SERVER_MODEL_ALIAS}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    pytest.fail(
        f"llama_cpp.server did not answer {url} within {SERVER_START_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="session")
def llama_server(local_model_path: Callable[[str], Path]) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on loopback (SmolLM2 and Qwen2.5-0.5B); yields `http://127.0.0.1:N/v1`.

    Started through `python -m cascade.local.server`, as users do. Reach it from litellm as
    `model="openai/<catalog name>"`, `api_base=<this>`, any api_key.
    """
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]')")
    for name in SERVER_MODELS:
        local_model_path(name)  # skips with the pip command when weights are missing
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "cascade.local.server",
        "--port",
        str(port),
        "--n-ctx",
        "1024",
        "--models",
        ",".join(SERVER_MODELS),
    ]
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until_serving(f"{base}/v1/models", process, log)
            yield f"{base}/v1"
        finally:
            stop_process(process)
