"""The real completer: any provider litellm reaches (OpenAI, Anthropic, vLLM, Ollama, llama.cpp, local).

litellm is imported lazily (it is slow to import) and configured in one place,
`cascade.completers.litellm_setup`. Errors are mapped onto our transient/permanent
split and scrubbed of API keys before they travel anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from cascade.completers import progress
from cascade.completers.litellm_setup import import_litellm
from cascade.errors import CascadeError, PermanentProviderError, ProviderError, TransientProviderError
from cascade.local.params import EARLY_EXIT, HIDDEN, STOP_PATTERN
from cascade.types import Completion, CompletionRequest, Probe, ToolCall, TopLogprobs

_TRANSIENT_STATUS = {408, 409, 425, 429}
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|key)[-_][A-Za-z0-9_\-]{8,}")


class LiteLLMCompleter:
    """Completer over `litellm.acompletion`, with usage, cost and logprobs in one Completion."""

    def __init__(self) -> None:
        self._module: Any = None
        self._local_registered = False

    @property
    def _litellm(self) -> Any:
        if self._module is None:
            self._module = import_litellm()
        return self._module

    async def complete(self, request: CompletionRequest) -> Completion:
        if is_local(request.model) and not self._local_registered:
            self._register_local()
        started = time.perf_counter()
        try:
            live = request.on_text is not None and not is_local(request.model)
            if live or (request.stop_pattern and not is_local(request.model)):
                read = await self._stream_until(request)
            else:  # local models stop in process (answer pattern, early exit), with logprobs
                stop = threading.Event()  # set when this call ends, or is cancelled (a timeout)
                try:
                    response = await self._litellm.acompletion(**self._kwargs(request), **_local_writer(request, stop))
                finally:
                    stop.set()
                read = _read(response)
                read = replace(read, text=_cut(read.text, request.stop_pattern), calls=_tool_calls(response.choices[0]))
        except ProviderError:
            raise
        except Exception as exc:  # litellm raises many types; classify them all
            raise classify(exc, request) from None
        prompt_tokens, completion_tokens = read.usage
        return Completion(
            read.text,
            request.model,
            prompt_tokens,
            completion_tokens,
            self._cost(request, prompt_tokens, completion_tokens),
            time.perf_counter() - started,
            read.logprobs,
            read.finish,
            tool_calls=read.calls,
            top_logprobs=read.top,
            probes=read.probes,
            tokens=read.tokens,
        )

    def tools_problem(self, model: str, api_base: str | None) -> str | None:
        """Why `model`'s provider cannot take `tools` (litellm would silently drop them), or None."""
        return self.param_problem(model, api_base, "tools")

    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None:
        """Why `model`'s provider cannot take OpenAI's `param` (litellm would silently drop it), or None.

        Asked of litellm's table of each provider's OpenAI parameters; `local/` models take tools
        (cascade.local answers them with a grammar-constrained call) and logprobs.
        """
        if model.startswith("local/"):
            return None
        try:
            _, provider, _, _ = self._litellm.get_llm_provider(model=model, api_base=api_base)
            supported = self._litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or []
        except Exception as exc:
            return f"cannot tell whether {model!r} takes {param}: {str(exc).splitlines()[0][:200]}"
        return None if param in supported else f"{model!r} ({provider}) does not take {param}"

    def _register_local(self) -> None:
        from cascade.local import register_local_provider

        register_local_provider()
        self._local_registered = True

    def _kwargs(self, request: CompletionRequest, *, stream: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "max_retries": 0,  # retries are ours (RetryingCompleter); the OpenAI SDK's would multiply them
            **request.extra,
        }
        optional: dict[str, Any] = {
            "stop": list(request.stop) or None,
            "seed": request.seed,
            "api_base": request.api_base,
            "api_key": request.api_key,
            "timeout": request.timeout_s,
            "logprobs": True if request.logprobs else None,
            # llama.cpp's server returns no logprobs unless top_logprobs is set; OpenAI accepts it too.
            "top_logprobs": max(1, request.top_logprobs) if request.logprobs else None,
            "response_format": request.response_format,
            "tools": list(request.tools) or None,
            "tool_choice": request.tool_choice if request.tools else None,
        }
        if is_local(request.model):  # parameters only the in-process provider reads
            optional[STOP_PATTERN] = request.stop_pattern
            optional[EARLY_EXIT] = request.early_exit.model_dump() if request.early_exit else None
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if stream:
            kwargs.update(stream=True, stream_options={"include_usage": True})
        return kwargs

    async def _stream_until(self, request: CompletionRequest) -> Read:
        """Stream: hand each piece to `request.on_text` (live streaming) and stop reading once the
        answer is complete (token-level early stopping). Logprobs and top alternatives are kept
        where chunks carry them (OpenAI and vLLM send them per chunk)."""
        writer, counted = _TextWriter(request), progress.current_call()
        stream = await self._litellm.acompletion(**self._kwargs(request, stream=True))
        chunks, usage, finish = 0, None, "length"
        logprobs: list[Any] = []
        async for chunk in stream:
            usage = getattr(chunk, "usage", None) or usage
            if not chunk.choices:
                continue
            logprobs.extend(_content_logprobs(chunk.choices[0]))
            delta = chunk.choices[0].delta.content
            if not delta:
                continue
            chunks += 1
            if counted is not None:
                counted.pieces += 1
            if writer.write(delta):
                finish = "answer_complete"
                break
        await _close(stream)
        values, top, tokens = _values(logprobs) if request.logprobs else (None, None, None)
        if usage is not None and finish != "answer_complete":
            usage_pair = (usage.prompt_tokens, usage.completion_tokens)
            return Read(writer.text, usage_pair, values, "stop", top, tokens=tokens)
        prompt_tokens = self._litellm.token_counter(model=request.model, messages=request.messages)
        return Read(writer.text, (prompt_tokens, max(chunks, len(logprobs))), values, finish, top, tokens=tokens)

    def unit_prices(self, request: CompletionRequest) -> tuple[float, float] | None:
        """USD per prompt and per completion token from litellm's cost map (what budgets reserve
        with); None for a model the map does not price (its calls cost 0 here too)."""
        try:
            prompt_price, _ = self._litellm.cost_per_token(model=request.model, prompt_tokens=1, completion_tokens=0)
            _, completion_price = self._litellm.cost_per_token(
                model=request.model, prompt_tokens=0, completion_tokens=1
            )
        except Exception:  # not in the price map
            return None
        return float(prompt_price), float(completion_price)

    def _cost(self, request: CompletionRequest, prompt_tokens: int, completion_tokens: int) -> float:
        if request.input_price is not None and request.output_price is not None:
            return prompt_tokens * request.input_price + completion_tokens * request.output_price
        try:
            prompt_cost, completion_cost = self._litellm.cost_per_token(
                model=request.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # model not in litellm's price map: cost unknown, counted as 0
            return 0.0
        return float(prompt_cost + completion_cost)


class _TextWriter:
    """The text streamed so far, cut at the answer-format pattern; new text goes to `on_text`."""

    def __init__(self, request: CompletionRequest) -> None:
        self.pattern = re.compile(request.stop_pattern, re.IGNORECASE) if request.stop_pattern else None
        self.on_text = request.on_text
        self.text = ""

    def write(self, delta: str) -> bool:
        """Add `delta`; True once the answer is complete (nothing after it is kept or sent)."""
        text = self.text + delta
        match = self.pattern.search(text) if self.pattern else None
        if match:
            text = text[: match.end()]
        if self.on_text is not None and len(text) > len(self.text):
            self.on_text(text[len(self.text) :])
        self.text = text
        return match is not None


def _local_writer(request: CompletionRequest, stop: threading.Event) -> dict[str, Any]:
    """Local models write their text through a callback (their logprobs come whole with the reply),
    called from the inference thread: each piece goes to the event loop's thread when the text is
    streamed, and is counted for a progress display. Returning False ends the generation, so a
    call that was given up on (a timeout) stops using the CPU instead of running to its end."""
    if not request.model.startswith("local/"):
        return {}
    loop = asyncio.get_running_loop()
    writer = _TextWriter(request) if request.on_text is not None else None
    counted = progress.current_call()

    def on_piece(piece: str) -> bool:
        if counted is not None:
            counted.pieces += 1
        if writer is not None:
            loop.call_soon_threadsafe(writer.write, piece)
        return not stop.is_set()

    return {"cascade_on_text": on_piece}


def _cut(text: str, stop_pattern: str | None) -> str:
    """Answer-format stop after the fact: streams carry no logprobs, so logprob calls are not streamed."""
    match = re.search(stop_pattern, text, re.IGNORECASE) if stop_pattern else None
    return text[: match.end()] if match else text


@dataclass(frozen=True, slots=True)
class Read:
    """What a response (or a stream read up to the answer) gave, before usage is priced."""

    text: str
    usage: tuple[int, int]
    logprobs: tuple[float, ...] | None
    finish: str | None
    top: tuple[TopLogprobs, ...] | None = None
    probes: tuple[Probe, ...] = ()
    calls: tuple[ToolCall, ...] = ()
    tokens: tuple[str, ...] | None = None


def is_local(model: str) -> bool:
    return model.startswith("local/")


def _read(response: Any) -> Read:
    choice = response.choices[0]
    usage = response.usage
    values, top, tokens = _values(_content_logprobs(choice))
    extra = (getattr(response, "_hidden_params", None) or {}).get(HIDDEN) or {}
    finish = extra.get("stopped_by") or choice.finish_reason
    return Read(
        choice.message.content or "",
        (usage.prompt_tokens or 0, usage.completion_tokens or 0),
        values,
        finish,
        top,
        tuple(extra.get("probes") or ()),
        tokens=tokens,
    )


def _tool_calls(choice: Any) -> tuple[ToolCall, ...]:
    """The calls in a response's message, in litellm's (OpenAI's) shape."""
    calls = getattr(choice.message, "tool_calls", None) or []
    made = []
    for call in calls:
        function = call.function if not isinstance(call, dict) else call.get("function", {})
        name = function.name if not isinstance(function, dict) else function.get("name")
        arguments = function.arguments if not isinstance(function, dict) else function.get("arguments")
        call_id = call.id if not isinstance(call, dict) else call.get("id")
        made.append(ToolCall(str(name or ""), str(arguments or ""), str(call_id or "")))
    return tuple(made)


def _content_logprobs(choice: Any) -> list[Any]:
    """The per-token logprob entries of a choice (OpenAI's `logprobs.content`), or []."""
    raw = getattr(choice, "logprobs", None)
    if raw is None:
        return []
    content = raw.get("content") if isinstance(raw, dict) else getattr(raw, "content", None)
    return list(content or [])


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _values(
    content: list[Any],
) -> tuple[tuple[float, ...] | None, tuple[TopLogprobs, ...] | None, tuple[str, ...] | None]:
    """Token logprobs, and when the provider gave them each position's best alternatives and each token's text."""
    entries = [item for item in content if _field(item, "logprob") is not None]
    if not entries:
        return None, None, None
    values = tuple(float(_field(item, "logprob")) for item in entries)
    tops = [
        tuple((str(_field(alt, "token")), float(_field(alt, "logprob"))) for alt in _field(item, "top_logprobs") or ())
        for item in entries
    ]
    tokens = tuple(str(_field(item, "token")) for item in entries)
    known = all(_field(item, "token") is not None for item in entries)
    return values, (tuple(tops) if any(tops) else None), (tokens if known else None)


async def _close(stream: Any) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):  # closing an abandoned stream is best effort
            await closer()


def classify(exc: BaseException, request: CompletionRequest) -> ProviderError:
    """Map a provider exception onto transient (retry) or permanent (fall through now)."""
    inner = _cascade_cause(exc)
    if isinstance(inner, ProviderError):
        return inner
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    transient_names = {
        "Timeout",
        "APIConnectionError",
        "RateLimitError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
        "TimeoutError",
    }
    detail = str(inner) if inner is not None else str(exc)
    if _refused_credentials(name, status, detail):
        # litellm reports OpenAI's missing key as a 500 InternalServerError: no retry will find a key
        detail = _LITELLM_PREFIX.sub("", detail)
        message = f"{request.model}: AuthenticationError (no retry): {scrub(detail, request.api_key)}"
        return PermanentProviderError(message[:500], model=request.model, status=status if status == 403 else 401)
    transient = name in transient_names or (isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500))
    message = f"{request.model}: {name}: {scrub(detail, request.api_key)}"
    kind = TransientProviderError if transient else PermanentProviderError
    return kind(message[:500], model=request.model, status=status if isinstance(status, int) else None)


_MISSING_KEY = re.compile(
    r"missing credentials|api_key client option must be set|no (api )?key is set|missing \w+ api key"
    r"|(invalid|incorrect) api key|api key not (set|found|valid)",
    re.IGNORECASE,
)
_LITELLM_PREFIX = re.compile(r"^(litellm\.\w+: )?(\w+Error: )?")


def _refused_credentials(name: str, status: object, detail: str) -> bool:
    """A key that is missing or refused, however the provider's SDK and litellm label it."""
    return (
        name in {"AuthenticationError", "PermissionDeniedError"}
        or status in (401, 403)
        or bool(_MISSING_KEY.search(detail))
    )


def _cascade_cause(exc: BaseException) -> BaseException | None:
    """Our own error inside litellm's wrapper (e.g. a local model that is not installed)."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, CascadeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def scrub(text: str, *secrets: str | None) -> str:
    """Remove API keys from text that may reach a trace, a log or the store."""
    for secret in secrets:
        if secret and len(secret) >= 8:  # a short "key" (e.g. "x" for a local server) is no secret
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub(r"\1-***", text)


def model_problem(model: str, api_base: str | None = None) -> str | None:
    """Why litellm cannot route `model` (unknown provider prefix), or None when it can. A prefix or
    name in litellm's model map is routable without importing litellm (seconds: validate stays quick)."""
    from cascade.completers.model_names import split_model, suggestion

    if model.startswith("local/"):
        return _local_model_problem(model.removeprefix("local/"))
    if split_model(model) is not None:
        return None
    litellm = import_litellm()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception as exc:
        return f"litellm cannot route model {model!r}: {str(exc).splitlines()[0][:200]}{suggestion(model)}"
    return None


def _local_model_problem(name: str) -> str | None:
    from cascade.errors import ModelNotFoundError
    from cascade.local.catalog import MODELS, get_spec, install_hint, is_gguf_path, locate_parts, resolve_gguf_path

    try:
        if name not in MODELS and is_gguf_path(name):
            resolve_gguf_path(name)
            return None
        _, missing = locate_parts(get_spec(name))
    except ModelNotFoundError as exc:
        return str(exc)
    return f"local model {name!r} is not installed; {install_hint(missing)}" if missing else None
