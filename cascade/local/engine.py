"""llama.cpp inference for one loaded GGUF: chat prompt, sampling loop, per-token logprobs.

Why not `Llama.create_chat_completion(logprobs=True)`: it needs `logits_all=True`, which
computes and stores vocabulary-sized logits for every prompt token and then sorts the whole
vocabulary in Python per token; on 2 cores that made a SmolLM2 call ~10-25x slower. Here the
sampling loop runs on `Llama.generate` and reads the one logits row the sampler just used
(`llama_get_logits_ith(ctx, -1)`), so logprobs cost one log-softmax per generated token and a
single loaded instance serves calls with and without logprobs.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascade.errors import ModelNotFoundError
from cascade.local.catalog import LOCAL_EXTRA_HINT
from cascade.local.decoding import Decoder, Generation, OnText
from cascade.local.params import GenerateParams, TokenLogprob
from cascade.local.prefill import prefill
from cascade.local.structured import prepare_messages

if TYPE_CHECKING:
    import numpy as np


__all__ = ["DEFAULT_N_CTX", "LocalModel", "load_model"]

DEFAULT_N_CTX = 2048


def import_llama_cpp() -> Any:
    """The llama_cpp module, or a ModelNotFoundError that says how to install it.

    llama.cpp's threads wait for each other through OpenMP, whose default is to spin. On a 2-core
    machine shared with other processes the spinning threads starve the working ones: SmolLM2
    decoded 0.7-3.3 tokens/s, against 11.9-13.6 with passive waiting in the same minutes (the
    reasoning tier that wrote nothing for minutes). So waiting is passive unless the environment
    says otherwise; OpenMP reads it when llama.cpp's library loads, hence before the import."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelNotFoundError(
            f"local models need llama-cpp-python, which is not installed: {LOCAL_EXTRA_HINT}"
        ) from exc
    return llama_cpp


EXTRA_BUFFERS_ENV = "CASCADE_LLAMA_EXTRA_BUFFERS"


def extra_buffers_wanted(cpu_flags: str | None = None) -> bool:
    """Whether llama.cpp may repack weights into its extra buffer types (`use_extra_bufts`).

    Off on a CPU that reports AMX: ggml's AMX buffer type segfaults in the first decode of every
    model on virtual machines whose hypervisor reports AMX without enabling it (seen on this
    project's 2-core VMs with llama-cpp-python 0.3.36 built natively). llama.cpp has one switch for
    all its repacks, so the AVX ones go too (slower prompt processing, same answers).
    `CASCADE_LLAMA_EXTRA_BUFFERS=1` (or `0`) overrides.
    """
    forced = os.environ.get(EXTRA_BUFFERS_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if cpu_flags is None:
        try:
            cpu_flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return True
    return "amx_tile" not in cpu_flags.split()


@contextmanager
def extra_buffers_setting(lib: Any, *, extra_buffers: bool) -> Iterator[None]:
    """llama-cpp-python's `Llama` takes no `use_extra_bufts`: its default model params are wrapped
    while one model loads (under `_LOAD_LOCK` when loaded through `load_model`), or while
    llama-cpp-python's server runs (`cascade.local.server`)."""
    module = lib.llama_cpp
    default = module.llama_model_default_params

    def params() -> Any:
        value = default()
        value.use_extra_bufts = extra_buffers
        return value

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = default


class LocalModel:
    """One loaded GGUF. llama.cpp contexts are not thread-safe, so every call holds `lock`."""

    def __init__(self, path: Path, n_ctx: int = DEFAULT_N_CTX) -> None:
        self._lib = import_llama_cpp()
        self.path = path
        self.lock = threading.Lock()
        started = time.perf_counter()
        with extra_buffers_setting(self._lib, extra_buffers=extra_buffers_wanted()):
            self.llama = self._lib.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False
            )
        self.load_seconds = time.perf_counter() - started
        self._vocab = self._lib.llama_model_get_vocab(self.llama.model)
        self._n_vocab = self.llama.n_vocab()
        self._formatter = self._chat_formatter()
        self.knows_tools = "tools" in (self.llama.metadata.get("tokenizer.chat_template") or "")
        self._prefilled: list[int] = []  # the prompt whose chunks the KV cache holds (cascade.local.prefill)

    def _chat_formatter(self) -> Any:
        """The model's own chat template, compiled once (as create_chat_completion would use it)."""
        from llama_cpp import llama_chat_format

        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:  # a bare GGUF without a template: llama-cpp-python's own fallback format
            return llama_chat_format.format_llama2
        eos = self.llama.token_eos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self._special_text(eos),
            bos_token=self._special_text(self.llama.token_bos()),
            stop_token_ids=[eos],
        )

    def prompt_tokens(
        self, messages: list[dict[str, Any]], tools: tuple[dict[str, Any], ...] = ()
    ) -> tuple[list[int], tuple[str, ...]]:
        """The chat prompt as tokens, plus the stop strings the template asks for."""
        messages = prepare_messages(messages, tools, self.knows_tools)
        result = self._formatter(messages=messages, tools=list(tools) if tools and self.knows_tools else None)
        tokens = self.llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        extra = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        return tokens, tuple(extra)

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self.llama.detokenize([token], special=True)).decode("utf-8", errors="replace")

    def generate(
        self, messages: list[dict[str, Any]], params: GenerateParams, on_text: OnText | None = None
    ) -> Generation:
        """One chat completion, serialised with any other call on this model."""
        with self.lock:
            prompt, template_stops = self.prompt_tokens(messages, params.tools)
            budget = self._budget(len(prompt), params.max_tokens)
            seed = self._lib.LLAMA_DEFAULT_SEED if params.seed is None else params.seed
            self.llama.set_seed(seed)
            previous, self._prefilled = self._prefilled, []  # trusted again once this prompt is in
            prefill(self.llama, previous, prompt)
            self._prefilled = prompt
            return Decoder(self, prompt, budget, params, params.stop + template_stops, on_text).run()

    def _budget(self, prompt_len: int, max_tokens: int | None) -> int:
        room = self.llama.n_ctx() - prompt_len
        if room <= 0:
            raise ValueError(f"prompt has {prompt_len} tokens, the context window holds {self.llama.n_ctx()}")
        return int(room if max_tokens is None else max(0, min(max_tokens, room)))

    def is_end(self, token: int) -> bool:
        """An end-of-generation token (end of turn, end of text)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def decode(self, tokens: list[int], prompt: list[int]) -> str:
        return bytes(self.llama.detokenize(tokens, prev_tokens=prompt)).decode("utf-8", errors="ignore")

    def tokens_covering(self, tokens: list[int], prompt: list[int], length: int) -> int:
        """How many leading tokens it takes to spell the first `length` characters."""
        return next((k for k in range(len(tokens)) if len(self.decode(tokens[:k], prompt)) >= length), len(tokens))

    def token_logprob(self, token: int, top_n: int) -> TokenLogprob:
        """Log-softmax of the logits row the sampler just used (the last evaluated position)."""
        import numpy as np  # a llama-cpp-python dependency: imported only where logprobs are made

        pointer = self._lib.llama_get_logits_ith(self.llama.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        logp = shifted - np.log(np.exp(shifted).sum())
        top: list[tuple[str, float, list[int]]] = []
        if 0 < top_n < self._n_vocab:
            best = np.argpartition(-logp, top_n)[:top_n]
            top = [self._entry(int(i), logp) for i in best[np.argsort(-logp[best])]]
        text, value, raw = self._entry(token, logp)
        return TokenLogprob(text, value, raw, top)

    def _entry(self, token: int, logp: np.ndarray) -> tuple[str, float, list[int]]:
        raw = bytes(self.llama.detokenize([token], special=True))
        return raw.decode("utf-8", errors="replace"), float(logp[token]), list(raw)


_MODELS: dict[tuple[Path, int], LocalModel] = {}
_LOAD_LOCK = threading.Lock()


def load_model(path: Path, n_ctx: int = DEFAULT_N_CTX) -> LocalModel:
    """Load a GGUF once per (path, n_ctx) and share it; concurrent first calls load it once."""
    key = (path.resolve(), n_ctx)  # a catalog name and its file path share one instance
    with _LOAD_LOCK:
        if not _MODELS:
            atexit.register(_close_models)
        if key not in _MODELS:
            _MODELS[key] = LocalModel(key[0], n_ctx)
        return _MODELS[key]


def _close_models() -> None:
    """Free the models while llama_cpp is still whole: left to the garbage collector at interpreter
    shutdown, each Llama.__del__ printed a TypeError traceback (its library functions already gone)."""
    with _LOAD_LOCK:
        for model in _MODELS.values():
            if model.lock.acquire(timeout=5):  # never free a model a thread is still generating with
                model.llama.close()
        _MODELS.clear()


def loaded_models() -> dict[tuple[Path, int], LocalModel]:
    """The models loaded in this process (for diagnostics and tests)."""
    return dict(_MODELS)
