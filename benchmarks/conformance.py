"""Conformance: llama.cpp's own server tests run against `cascade serve`.

The `tools/server/tests` folder of the llama-cpp-python source distribution (the version the
`local` extra pins) is fetched at run time into a cache directory, never into this repository:

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36

Its tests run with DEBUG_EXTERNAL=1 (they start no llama-server) against `cascade serve --config
FILE` on a loopback port, through benchmarks/support/conformance_shim.py (base URL, key and model; see
there). Tests of what only llama-server has are excluded, each with its reason (EXCLUDED below);
so are repeats of one request that differ only in the llama-server model or chat template they
would load. Tests whose verdict is what the model says (which tool it calls for a prompt, with
which arguments, what it answers from a tool's result, whether it keeps to a schema's `const`)
are MODEL_QUALITY: a failure there on an assertion about the answer is counted and reported as a
model-quality miss, apart from the conformance failures.

    python -m benchmarks.conformance [--config configs/fake.yaml] [--cache-dir DIR] [-k EXPR]

Last line: one JSON object with `passed`, `failed` (tests not excluded that failed, model-quality
misses apart), `quality_misses`, `excluded`, `skipped`, and each failure's test and message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from cascade.config.schema import load_config

LLAMA_CPP_PYTHON = "0.3.36"
TESTS = "vendor/llama.cpp/tools/server/tests"
KEY = "sk-conformance-0123456789"
SECURITY_TEST_KEY = "sk-this-is-the-secret-key"  # the key llama.cpp's test_security.py configures
HERE = Path(__file__).resolve().parent
TEST_MODULES = ("pytest", "openai", "requests", "wget", "filelock")  # what the tests import (the dev extra)

EXCLUDED: list[tuple[str, str]] = [
    ("unit/test_completion.py::*", "legacy text completions (/completion, /v1/completions) and llama-server's sampling "
     "knobs on them: cascade serves chat completions"),
    ("unit/test_compat_anthropic.py::*", "Anthropic's Messages API, not OpenAI's"),
    ("unit/test_compat_gcp.py::*", "Google Vertex AI's prediction route"),
    ("unit/test_compat_oai_responses.py::*", "OpenAI's Responses API; cascade serves chat completions"),
    ("unit/test_ctx_shift.py::*", "llama-server's context shift on its KV cache"),
    ("unit/test_embedding.py::*", "embeddings; cascade serves chat models"),
    ("unit/test_ignore_eos.py::*", "llama-server's ignore_eos sampling option"),
    ("unit/test_infill.py::*", "llama-server's code infill route"),
    ("unit/test_kv_keep_only_active.py::*", "llama-server's KV cache management"),
    ("unit/test_lora.py::*", "LoRA adapters loaded into llama-server"),
    ("unit/test_mcp_servers.py::*", "llama-server's built-in MCP servers"),
    ("unit/test_metrics.py::*", "llama-server's own Prometheus metrics (cascade's /metrics has its own)"),
    ("unit/test_proxy.py::*", "llama-server's MCP and CORS proxy"),
    ("unit/test_rerank.py::*", "reranking"),
    ("unit/test_router.py::*", "llama-server's router mode (models loaded and unloaded on demand)"),
    ("unit/test_sleep.py::*", "llama-server's sleep mode"),
    ("unit/test_slot_save.py::*", "llama-server's slot save and restore"),
    ("unit/test_speculative.py::*", "speculative decoding with a draft model"),
    ("unit/test_stream.py::*", "llama-server's resumable streams (/v1/stream, X-Conversation-Id)"),
    ("unit/test_template.py::*", "llama-server's chat templates and --reasoning-format, read from its debug prompt"),
    ("unit/test_tokenize.py::*", "llama-server's /tokenize and /detokenize"),
    ("unit/test_tools_builtin.py::*", "llama-server's built-in tools (shell, files)"),
    ("unit/test_vision_api.py::*", "images; cascade takes text content parts"),
    ("unit/test_basic.py::test_server_multiple_addresses", "llama-server's list of --host addresses"),
    ("unit/test_basic.py::test_server_props", "llama-server's /props"),
    ("unit/test_basic.py::test_server_slots", "llama-server's /slots"),
    ("unit/test_basic.py::test_load_split_model", "a split GGUF loaded by llama-server"),
    ("unit/test_basic.py::test_no_ui", "llama-server's web UI"),
    ("unit/test_basic.py::test_server_model_aliases_and_tags", "llama-server's --alias and --tags model fields"),
    ("unit/test_chat_completion.py::test_chat_completion[[]*", "the text and token counts of llama.cpp's "
     "stories260K test model, and llama-server's b<build> system_fingerprint"),
    ("unit/test_chat_completion.py::test_chat_completion_stream[[]*", "the text and token counts of llama.cpp's "
     "stories260K test model, and llama-server's b<build> system_fingerprint"),
    ("unit/test_chat_completion.py::test_chat_completion_with_openai_library", "stories260K's text ('Suddenly') cut "
     "at 8 tokens, and llama-server's b<build> system_fingerprint"),
    ("unit/test_chat_completion.py::test_chat_completion_cached_tokens", "llama-server's prompt cache"),
    ("unit/test_chat_completion.py::test_chat_template*", "llama-server's chat templates, read from its debug prompt"),
    ("unit/test_chat_completion.py::test_apply_chat_template", "llama-server's /apply-template"),
    ("unit/test_chat_completion.py::test_completion_with_response_format[[]response_format[01567]-*",
     "a 'schema' inside response_format json_object: llama-server's extension of OpenAI's format"),
    ("unit/test_chat_completion.py::test_completion_with_json_schema*", "llama-server's top-level json_schema"),
    ("unit/test_chat_completion.py::test_completion_with_grammar*", "llama-server's GBNF grammar parameter"),
    ("unit/test_chat_completion.py::test_completion_with_invalid_grammar", "llama-server's GBNF grammar parameter"),
    ("unit/test_chat_completion.py::test_invalid_chat_completion_req[[]messages7]", "llama-server refuses two "
     "assistant turns in a row; OpenAI's API takes them"),
    ("unit/test_chat_completion.py::test_chat_completion_with_timings_per_token", "llama-server's timings"),
    ("unit/test_chat_completion.py::test_logit_bias", "token ids from llama-server's /tokenize"),
    ("unit/test_chat_completion.py::test_context_size_exceeded*", "llama-server's exceed_context_size_error and n_ctx"),
    ("unit/test_chat_completion.py::test_return_progress*", "llama-server's prompt-processing progress events"),
    ("unit/test_chat_completion.py::test_chat_completions_multiple_choices", "n=2 pinned to llama-server's id_slot; "
     "cascade answers one choice a run (n > 1 is a 400)"),
    ("unit/test_chat_completion.py::test_chat_completions_token_count", "llama-server's token counting route"),
    ("unit/test_chat_completion.py::test_verbose_debug", "llama-server's __verbose debug field"),
    ("unit/test_security.py::test_access_static_assets_without_api_key", "llama-server's web UI assets"),
    ("unit/test_security.py::test_incorrect_api_key*", "the legacy /completions route"),
    ("unit/test_security.py::test_correct_api_key*", "the legacy /completions route"),
    ("unit/test_security.py::test_cors*", "CORS for llama-server's web UI; cascade serve sends no CORS headers"),
    ("unit/test_security.py::test_local_media_file*", "images from local files"),
    ("unit/test_tool_call.py::test_thoughts*", "llama-server's --reasoning-format and particular models' wording"),
    ("unit/test_tool_call.py::test_calc_result[[][[]*", "DeepSeek-R1's own wording of the result ('**0.5**')"),
]  # fmt: skip

MODEL_QUALITY = {
    "unit/test_tool_call.py::test_weather": "Expected 1 tool call|Expected weather tool call|location|Istanbul",
    "unit/test_tool_call.py::test_hello_world": "Expected 1 tool call|code not found|Expected hello world|Expecting",
    "unit/test_tool_call.py::test_calc_result": "Expected no tool call|Expected something like|Expected content",
    "unit/test_tool_call.py::test_completion_with_required_tool_real_model": "Expected 1 tool call|tool arguments",
    "unit/test_tool_call.py::test_completion_without_tool_call": "Expected no tool call",
    "unit/test_chat_completion.py::test_completion_with_response_format": "assert 502 == 200|match_regex",
}
"""Tests whose verdict is the model's answer, and the failure messages that say the answer was wrong."""


def require_test_modules() -> None:
    """What llama.cpp's tests import, checked before any download (a missing one would end in no counts)."""
    missing = [name for name in TEST_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"llama.cpp's server tests need {', '.join(missing)}: pip install -e '.[dev]'")


def fetch_tests(cache: Path) -> Path:
    """llama.cpp's server tests from the llama-cpp-python sdist, downloaded once into `cache`."""
    tests = cache / f"llama-cpp-python-{LLAMA_CPP_PYTHON}" / "tests"
    if (tests / "utils.py").exists():
        return tests
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "--quiet", f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", download],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(download).glob("llama_cpp_python-*.tar.gz")
        prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/{TESTS}/"
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
            staging = Path(download) / "tests"
            for member in members:
                member.name = member.name[len(prefix) :]
                archive.extract(member, staging, filter="data")
        tests.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), tests)
    return tests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`cascade serve` on loopback, waited for until /health answers."""
    env = {**os.environ, "CASCADE_API_KEYS": f"{KEY},{SECURITY_TEST_KEY}"}
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(config), "--port", str(port), "--no-learn"]
    server = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"cascade serve exited with {server.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit(f"cascade serve did not answer /health in 120 s; see {log}")


def run_tests(tests: Path, port: int, model: str, work: Path, selection: str | None) -> list[dict[str, Any]]:
    report, excluded = work / "report.jsonl", work / "excluded.json"
    report.unlink(missing_ok=True)
    excluded.write_text(json.dumps(EXCLUDED))
    env = {
        **os.environ,
        "DEBUG_EXTERNAL": "1",
        "PORT": str(port),
        "CONFORMANCE_BASE": f"http://127.0.0.1:{port}",
        "CONFORMANCE_KEY": KEY,
        "CONFORMANCE_MODEL": model,
        "CONFORMANCE_EXCLUDED": str(excluded),
        "CONFORMANCE_REPORT": str(report),
        "PYTHONPATH": os.pathsep.join([str(HERE / "support"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "pytest", "unit", "-p", "conformance_shim", "-p", "no:cacheprovider", "-q",
               "-o", "addopts=", "--basetemp", str(work / "pytest-tmp"), "-rN", "--no-header"]  # fmt: skip
    if selection:
        command += ["-k", selection]
    with (work / "pytest.log").open("wb") as log:
        done = subprocess.run(command, cwd=tests, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode not in (0, 1):  # 2-5: collection errors, no tests: no count would be true
        tail = (work / "pytest.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"llama.cpp's tests did not run (pytest exit {done.returncode}): {' | '.join(tail)}")
    return [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []


def quality_miss(row: dict[str, Any]) -> bool:
    import re

    for test, pattern in MODEL_QUALITY.items():
        if row["test"].startswith(test) and re.search(pattern, row.get("message", "")):
            return True
    return False


def summary(rows: list[dict[str, Any]], config: Path) -> dict[str, Any]:
    failures = [r for r in rows if r["outcome"] == "failed"]
    misses = [r for r in failures if quality_miss(r)]
    real = [r for r in failures if not quality_miss(r)]
    counts = Counter(r["outcome"] for r in rows)
    return {
        "benchmark": "conformance",
        "config": str(config),
        "llama_cpp_python": LLAMA_CPP_PYTHON,
        "passed": counts["passed"],
        "failed": len(real),
        "quality_misses": len(misses),
        "excluded": counts["excluded"],
        "skipped": counts["skipped"],
        "failures": [{"test": r["test"], "message": r["message"][:200]} for r in real],
        "misses": [{"test": r["test"], "message": r["message"][:200]} for r in misses],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/fake.yaml"), help="the config served")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cascade" / "conformance",
                        help="where llama.cpp's tests are unpacked, and each run's logs")  # fmt: skip
    parser.add_argument("-k", dest="selection", help="pytest -k expression: run only the tests it selects")
    args = parser.parse_args(argv)
    config = args.config.resolve()
    model = load_config(config).name
    require_test_modules()
    tests = fetch_tests(args.cache_dir)
    work = args.cache_dir / "runs" / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True)
    port = free_port()
    server = serve(config, port, work / "serve.log")
    try:
        rows = run_tests(tests, port, model, work, args.selection)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = summary(rows, config)
    for row in rows:
        if row["outcome"] == "failed":
            print(f"{'MISS' if quality_miss(row) else 'FAIL'} {row['test']}: {row['message'][:300]}")
    print(f"logs: {work}")
    print(json.dumps(result))
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
