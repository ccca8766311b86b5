"""llama.cpp's extra buffer types (weight repacking) are off on CPUs that report AMX: its AMX buffer
type segfaults in the first decode on VMs that report AMX without enabling it."""

from __future__ import annotations

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
