"""llama.cpp's extra buffer types (weight repacking) are off on CPUs that report AMX: its AMX buffer
type segfaults in the first decode on VMs that report AMX without enabling it. Its OpenMP threads
wait passively: spinning starved them on a shared machine."""

from __future__ import annotations

import os

import pytest

from cascade.local.engine import EXTRA_BUFFERS_ENV, extra_buffers_wanted

AMX = "flags : fpu avx2 avx512f amx_bf16 amx_tile amx_int8"
PLAIN = "flags : fpu avx2 avx512f fma"


def test_off_where_the_cpu_reports_amx_on_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTRA_BUFFERS_ENV, raising=False)
    assert extra_buffers_wanted(AMX) is False
    assert extra_buffers_wanted(PLAIN) is True


def test_the_environment_overrides_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTRA_BUFFERS_ENV, "1")
    assert extra_buffers_wanted(AMX) is True
    monkeypatch.setenv(EXTRA_BUFFERS_ENV, "0")
    assert extra_buffers_wanted(PLAIN) is False


def test_openmp_waits_passively_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spinning waits starved llama.cpp's working threads on a shared 2-core machine (0.25 against 2.3
    tokens/s for the 1.5B model; benchmarks/omp_wait.py); a user's own setting is kept."""
    from cascade.local.engine import import_llama_cpp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    import_llama_cpp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    import_llama_cpp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
