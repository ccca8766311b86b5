"""litellm provider `local/<model>`: catalog names or GGUF paths served in-process by llama.cpp.

`litellm.completion(model="local/qwen2.5-0.5b", ...)` or `model="local//abs/path/m.gguf"`
after `register_local_provider()`. Inference runs in worker threads (one lock per loaded
model, since llama.cpp contexts are not thread-safe), so async callers never block their
event loop and a stream reader can stop early without wedging the model.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.llms.openai import ChatCompletionUsageBlock
from litellm.types.utils import (
    ChatCompletionMessageToolCall,
    ChatCompletionTokenLogprob,
    ChoiceLogprobs,
    Choices,
    Function,
    GenericStreamingChunk,
    Message,
    ModelResponse,
    TopLogprob,
    Usage,
)
from pydantic import ValidationError

from cascade.config.schema import EarlyExitConfig
from cascade.errors import CascadeError, ModelNotFoundError, PermanentProviderError
from cascade.local.catalog import resolve_model
from cascade.local.decoding import Generation, OnText
from cascade.local.engine import DEFAULT_N_CTX, LocalModel, load_model
from cascade.local.params import EARLY_EXIT, HIDDEN, STOP_PATTERN, GenerateParams, TokenLogprob
from cascade.local.structured import constraint_schema, parse_tool_calls
from cascade.types import new_call_id

PROVIDER = "local"


class LocalModelNotFoundError(CustomLLMError, ModelNotFoundError):
    """A ModelNotFoundError that litellm maps to NotFoundError (404, not retried), not a 500."""

    def __init__(self, message: str) -> None:
        CustomLLMError.__init__(self, 404, message)


class LocalRequestError(CustomLLMError, PermanentProviderError):
    """A request the model cannot serve (e.g. prompt longer than n_ctx): litellm's BadRequestError."""

    def __init__(self, message: str) -> None:
        CustomLLMError.__init__(self, 400, message)
        self.status = 400


def cascade_error_of(exc: BaseException) -> CascadeError | None:
    """The cascade error behind a litellm exception (litellm re-raises ours as its own types)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CascadeError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def params_from(optional_params: dict[str, Any]) -> GenerateParams:
    """OpenAI-style optional params (as litellm passes them) to sampling params."""
    stop = optional_params.get("stop") or ()
    max_tokens = optional_params.get("max_tokens") or optional_params.get("max_completion_tokens")
    tools = tuple(optional_params.get("tools") or ())
    tool_choice = optional_params.get("tool_choice")
    schema = constraint_schema(optional_params.get("response_format"), tools, tool_choice)
    return GenerateParams(
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        temperature=float(optional_params.get("temperature", 1.0)),
        top_p=float(optional_params.get("top_p", 0.95)),
        seed=optional_params.get("seed"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        logprobs=bool(optional_params.get("logprobs")),
        top_logprobs=int(optional_params.get("top_logprobs") or 0),
        json_schema=json.dumps(schema) if schema is not None else None,
        tools=tools if tool_choice != "none" else (),
        stop_pattern=optional_params.get(STOP_PATTERN) or None,
        early_exit=_early_exit(optional_params.get(EARLY_EXIT)),
    )


def _early_exit(value: Any) -> EarlyExitConfig | None:
    if value is None or isinstance(value, EarlyExitConfig):
        return value
    try:
        return EarlyExitConfig.model_validate(value)
    except ValidationError as exc:
        raise LocalRequestError(f"invalid {EARLY_EXIT}: {exc.errors()[0]['msg']}") from None


def tool_calls_of(generation: Generation, optional_params: dict[str, Any]) -> list[ChatCompletionMessageToolCall]:
    """The calls in a generation when tools were offered (all of it when a call was forced)."""
    tools, choice = optional_params.get("tools"), optional_params.get("tool_choice")
    if not tools or choice == "none":
        return []
    forced = choice == "required" or isinstance(choice, dict)
    return [
        ChatCompletionMessageToolCall(id=new_call_id(), type="function", function=Function(name=name, arguments=args))
        for name, args in parse_tool_calls(generation.text, forced=forced)
    ]


def _text_of(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**message, "content": _text_of(message.get("content"))} for message in messages]


_PATHS: dict[str, Path] = {}
_RESOLVE_LOCK = threading.Lock()  # two first calls must not join the same 1 GB model twice


def get_local_model(model: str, n_ctx: int = DEFAULT_N_CTX) -> LocalModel:
    """Resolve (once per process) and load (once per path and n_ctx) a catalog name or GGUF path."""
    try:
        with _RESOLVE_LOCK:
            if model not in _PATHS:
                _PATHS[model] = resolve_model(model)
        return load_model(_PATHS[model], n_ctx)
    except ModelNotFoundError as exc:
        raise LocalModelNotFoundError(str(exc)) from exc


def _model_for(model: str, optional_params: dict[str, Any]) -> LocalModel:
    """`n_ctx` passes through litellm as an extra kwarg: `completion(..., n_ctx=4096)`."""
    return get_local_model(model, int(optional_params.get("n_ctx") or DEFAULT_N_CTX))


def _generate(
    local: LocalModel, messages: list[dict[str, Any]], optional_params: dict[str, Any], on_text: OnText | None = None
) -> Generation:
    try:
        return local.generate(plain_messages(messages), params_from(optional_params), on_text)
    except ValueError as exc:
        raise LocalRequestError(f"{local.path.name}: {exc}") from exc


def _text_writer(optional_params: dict[str, Any]) -> OnText | None:
    """The cascade's live-streaming callback (`cascade_on_text`, see LiteLLMCompleter), if it sent one:
    the reply still comes whole, with its logprobs, while its text is also handed out as it is made."""
    write = optional_params.get("cascade_on_text")
    if write is None:
        return None

    def on_text(piece: str) -> bool:
        return write(piece) is not False  # the caller ends the generation by returning False

    return on_text


def _choice_logprobs(tokens: list[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            ChatCompletionTokenLogprob(
                token=t.token,
                logprob=t.logprob,
                bytes=t.bytes,
                top_logprobs=[TopLogprob(token=s, logprob=lp, bytes=b) for s, lp, b in t.top],
            )
            for t in tokens
        ]
    )


def fill_response(
    model_response: ModelResponse,
    generation: Generation,
    model: str,
    calls: list[ChatCompletionMessageToolCall] | None = None,
) -> ModelResponse:
    """Put a generation into litellm's response in OpenAI's shape (usage, logprobs, tool calls)."""
    message = Message(content=None if calls else generation.text, role="assistant", tool_calls=calls or None)
    choice = Choices(finish_reason="tool_calls" if calls else generation.finish_reason, index=0, message=message)
    if generation.logprobs is not None:
        choice.logprobs = _choice_logprobs(generation.logprobs)
    model_response.choices = [choice]
    model_response.model = f"{PROVIDER}/{model}"
    setattr(model_response, "usage", _usage(generation))  # noqa: B010 - litellm's documented way
    extra = {"stopped_by": generation.stopped_by, "probes": generation.probes}
    model_response._hidden_params = {**model_response._hidden_params, HIDDEN: extra}
    return model_response


def _usage(generation: Generation) -> Usage:
    total = generation.prompt_tokens + generation.completion_tokens
    return Usage(
        prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens, total_tokens=total
    )


def _chunk(item: object) -> GenericStreamingChunk:
    """A queued item (text piece, final Generation, or error) as litellm's stream chunk."""
    if isinstance(item, BaseException):
        raise item
    if isinstance(item, Generation):
        usage = ChatCompletionUsageBlock(
            prompt_tokens=item.prompt_tokens,
            completion_tokens=item.completion_tokens,
            total_tokens=item.prompt_tokens + item.completion_tokens,
        )
        return {
            "text": "",
            "is_finished": True,
            "finish_reason": item.finish_reason,
            "usage": usage,
            "index": 0,
            "tool_use": None,
        }
    return {"text": str(item), "is_finished": False, "finish_reason": "", "usage": None, "index": 0, "tool_use": None}


def _start_producer(
    run: Callable[[OnText], Generation], put: Callable[[object], None], cancelled: threading.Event
) -> None:
    """Generate in a daemon thread; a reader that goes away sets `cancelled` and it stops."""

    def on_text(piece: str) -> bool:
        put(piece)
        return not cancelled.is_set()

    def work() -> None:
        try:
            put(run(on_text))
        except Exception as exc:  # handed to the reader, which re-raises it
            put(exc)

    threading.Thread(target=work, name="cascade-local-stream", daemon=True).start()


class LocalLLM(CustomLLM):
    """litellm's CustomLLM for `local/...`; litellm calls these with keyword arguments."""

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        local = _model_for(model, kwargs["optional_params"])
        generation = _generate(local, messages, kwargs["optional_params"], _text_writer(kwargs["optional_params"]))
        calls = tool_calls_of(generation, kwargs["optional_params"])
        return fill_response(kwargs["model_response"], generation, model, calls)

    async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        return await asyncio.to_thread(self.completion, model, messages, *args, **kwargs)

    def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        local = _model_for(model, kwargs["optional_params"])  # fail at call time, not at the first chunk
        items: queue.Queue[object] = queue.Queue()
        cancelled = threading.Event()
        _start_producer(
            lambda on_text: _generate(local, messages, kwargs["optional_params"], on_text), items.put, cancelled
        )
        return _drain(items, cancelled)

    # litellm's base declares a coroutine, but its dispatcher iterates what astreaming returns
    # (its docs use an async generator, as here); tests/integration check it end to end.
    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list[Any], *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        local = await asyncio.to_thread(_model_for, model, kwargs["optional_params"])
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody will read the rest
                cancelled.set()

        _start_producer(lambda on_text: _generate(local, messages, kwargs["optional_params"], on_text), put, cancelled)
        try:
            while True:
                chunk = _chunk(await items.get())
                yield chunk
                if chunk["is_finished"]:
                    return
        finally:
            cancelled.set()


def _drain(items: queue.Queue[object], cancelled: threading.Event) -> Iterator[GenericStreamingChunk]:
    try:
        while True:
            chunk = _chunk(items.get())
            yield chunk
            if chunk["is_finished"]:
                return
    finally:
        cancelled.set()


_REGISTER_LOCK = threading.Lock()


def register_local_provider() -> LocalLLM:
    """Route `local/...` model strings to LocalLLM; idempotent, other providers are kept."""
    with _REGISTER_LOCK:
        for item in litellm.custom_provider_map:
            if item["provider"] == PROVIDER and isinstance(item["custom_handler"], LocalLLM):
                return item["custom_handler"]
        handler = LocalLLM()
        others = [item for item in litellm.custom_provider_map if item["provider"] != PROVIDER]
        litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": handler}]
        return handler
