"""Keep llama.cpp off Intel AMX where the CPU advertises it: in virtual machines it crashes the process.

llama-cpp-python is built on the user's machine with `GGML_NATIVE`, so on a CPU that lists
`amx_int8` its matrix products go through AMX tiles (an "extra buffer type" of ggml's CPU backend).
On a Firecracker VM with Sapphire Rapids cores the kernel grants the AMX permission, yet the
first `ldtilecfg` kills the process with SIGSEGV: `cascade run` on a fresh machine died on its
first token. llama.cpp's `use_extra_bufts = false` model parameter keeps every weight in the
plain CPU buffer (ggml's AVX2/AVX-512 kernels); llama-cpp-python does not expose it, so the
default model parameters it builds every `Llama` from are wrapped here, once per process, before
any model loads. `CASCADE_LLAMA_EXTRA_BUFFERS=1` keeps llama.cpp's choice (bare metal, where AMX works).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

KEEP_EXTRA_BUFFERS = "CASCADE_LLAMA_EXTRA_BUFFERS"
_WRAPPED = "_cascade_without_extra_buffers"


def advertises_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU lists AMX among its flags (Linux; elsewhere the answer is no)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and " amx_int8" in line for line in text.splitlines())


def avoid_amx(llama_cpp: Any, *, amx: bool | None = None) -> bool:
    """Make every later `Llama` load without extra buffer types when the CPU advertises AMX.

    Returns whether the defaults are (now) wrapped. Idempotent."""
    low = llama_cpp.llama_cpp
    original = low.llama_model_default_params
    if getattr(original, _WRAPPED, False):
        return True
    if os.environ.get(KEEP_EXTRA_BUFFERS) == "1" or not (advertises_amx() if amx is None else amx):
        return False

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    setattr(defaults, _WRAPPED, True)
    low.llama_model_default_params = defaults
    return True
