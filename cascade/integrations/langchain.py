"""A cascade as a LangChain chat model: `CascadeChatModel(cascade=Cascade.from_yaml(...))`.

Anything that takes a LangChain chat model (chains, LangGraph agents, `create_agent`) then runs
on the cascade: messages go in as the conversation, `bind_tools` and `with_structured_output`
become the cascade's checked `tools` and `response_format`, `stream` yields the answer's text as
`Cascade.astream(tokens=True)` gives it (the last tier live, an earlier tier once accepted), and
each reply carries usage summed over the tiers tried and the cascade's account of the run in
`response_metadata["cascade"]`. Needs `langchain-core` (`pip install 'cascade-router[langchain]'`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict

from cascade.errors import UserError
from cascade.run.engine import Cascade
from cascade.types import CascadeResult, TextDelta

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool


class CascadeChatModel(BaseChatModel):
    """LangChain's chat-model interface over a cascade (invoke, stream, batch, tools, structured output)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cascade: Cascade
    tag: str | None = None
    """The caller's context label for every run (see `Cascade.arun`)."""

    @property
    def _llm_type(self) -> str:
        return "cascade"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"cascade": self.cascade.config.name, "tiers": [t.name for t in self.cascade.config.tiers]}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _no_stop(stop)
        result = self.cascade.run(_openai(messages), tag=self.tag, **_output(kwargs))
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _no_stop(stop)
        result = await self.cascade.arun(_openai(messages), tag=self.tag, **_output(kwargs))
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        _no_stop(stop)
        async for event in self.cascade.astream(_openai(messages), tag=self.tag, tokens=True, **_output(kwargs)):
            if isinstance(event, TextDelta) and event.reasoning:  # LangChain's place for it (as ChatDeepSeek's)
                yield ChatGenerationChunk(
                    message=AIMessageChunk(content="", additional_kwargs={"reasoning_content": event.text})
                )
            elif isinstance(event, TextDelta):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=event.text))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
            elif isinstance(event, CascadeResult):
                yield _closing_chunk(self._message(event), "")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Sync streaming gives the whole reply in one chunk once the run ends: `astream` gives text as written."""
        result = self._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        yield _closing_chunk(message, message.content)

    def bind_tools(
        self,
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools as OpenAI function tools; `tool_choice`: "auto", "none", "any"/"required"/True, or a tool's name."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=_tool_choice(tool_choice, formatted), **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers validated against `schema` by the cascade itself (a tier whose JSON does not fit
        escalates), parsed into the pydantic class or dict. `function_calling` asks for it as a forced
        tool call instead; `json_mode` for any JSON object."""
        if kwargs:
            raise UserError(f"with_structured_output got unsupported arguments {sorted(kwargs)}")
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw)
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "json_mode":
            llm = self.bind(response_format={"type": "json_object"})
        else:
            json_schema = convert_to_json_schema(schema)
            name = str(json_schema.get("title") or "answer")
            llm = self.bind(
                response_format={"type": "json_schema", "json_schema": {"name": name, "schema": json_schema}}
            )
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()  # type: ignore[arg-type]
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    def _message(self, result: CascadeResult) -> AIMessage:
        """The run as an AIMessage; a run with no answer raises (AllTiersFailedError) with every attempt."""
        result.raise_for_error()
        calls = [
            {
                "name": call["function"]["name"],
                "args": json.loads(call["function"]["arguments"]),
                "id": call["id"],
                "type": "tool_call",
            }
            for call in result.tool_calls or []
        ]
        prompt = sum(a.prompt_tokens for a in result.attempts)
        completion = sum(a.completion_tokens for a in result.attempts)
        answered = next((a for a in result.attempts if a.tier == result.final_tier), None)
        return AIMessage(
            content="" if calls else (result.answer or ""),
            tool_calls=calls,
            id=f"run-{result.run_id}",
            usage_metadata=UsageMetadata(
                input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
            ),
            response_metadata={
                "model_name": answered.model if answered else self.cascade.config.name,
                "finish_reason": "tool_calls" if calls else "stop",
                "cascade": {
                    "run_id": result.run_id,
                    "final_tier": result.final_tier,
                    "accepted": result.accepted,
                    "cost_usd": result.total_cost_usd,
                    "attempts": [(a.tier, a.decision, a.confidence) for a in result.attempts],
                },
            },
        )


def _closing_chunk(message: AIMessage, content: str | list[Any]) -> ChatGenerationChunk:
    """A stream's last chunk: `content` (empty when the text already streamed), the tool calls,
    usage and the cascade's account."""
    calls = [
        {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
        for i, c in enumerate(message.tool_calls)
    ]
    chunk = AIMessageChunk(
        content=content,
        tool_call_chunks=calls,  # type: ignore[arg-type]
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk)


def _openai(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    converted = convert_to_openai_messages(messages)
    return converted if isinstance(converted, list) else [converted]


def _output(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The bound arguments the cascade understands; anything else is a mistake worth naming."""
    known: dict[str, Any] = {k: kwargs.pop(k) for k in ("tools", "tool_choice", "response_format") if k in kwargs}
    kwargs.pop("ls_structured_output_format", None)  # LangChain's tracing hint from with_structured_output
    if kwargs:
        raise UserError(f"CascadeChatModel does not take {sorted(kwargs)}; tiers set their own sampling in YAML")
    return known


def _no_stop(stop: list[str] | None) -> None:
    if stop:
        raise UserError("stop sequences are set per tier in the cascade's config, not per call")


def _tool_choice(
    choice: str | bool | dict[str, Any] | None, tools: list[dict[str, Any]]
) -> str | dict[str, Any] | None:
    names = [t["function"]["name"] for t in tools]
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, str) and choice in names:
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, dict):
        return choice
    raise UserError(f"tool_choice must be 'auto', 'none', 'any', True or one of {names}, got {choice!r}")
