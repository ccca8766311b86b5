"""The cascade as a LangChain chat model, and inside a small LangGraph agent, on the fake completer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import BaseModel

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, UserError
from cascade.integrations.langchain import CascadeChatModel

SURE = [-0.01]


def chat_model(small: Any, large: Any) -> tuple[CascadeChatModel, FakeCompleter]:
    fake = FakeCompleter({"fake/small": small, "fake/large": large})
    tiers = [
        {"name": "small", "model": "fake/small", "logprobs": True},
        {"name": "large", "model": "fake/large", "logprobs": True, "answer": {"format": "text"}},
    ]
    config = {"name": "demo", "tiers": tiers, "router": {"type": "threshold", "threshold": 0.6}}
    return CascadeChatModel(cascade=Cascade(CascadeConfig.from_dict(config), completer=fake)), fake


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18 °C and sunny in {city}"


def test_invoke_answers_a_conversation_with_usage_and_the_cascades_account() -> None:
    model, fake = chat_model(FakeReply("Lyon", logprobs=[-2.0]), FakeReply("Paris", logprobs=SURE))
    reply = model.invoke([SystemMessage("Be brief."), HumanMessage("Capital of France?")])
    assert isinstance(reply, AIMessage) and reply.content == "Paris"
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0
    account = reply.response_metadata["cascade"]
    assert account["final_tier"] == "large" and [a[1] for a in account["attempts"]] == ["escalate", "accept"]
    assert reply.response_metadata["model_name"] == "fake/large"
    assert [m["role"] for m in fake.calls[-1].messages] == ["system", "user"]


def test_stream_yields_the_last_tiers_words_as_written() -> None:
    model, _ = chat_model(FakeReply("Lyon", logprobs=[-2.0]), FakeReply("It is Paris.", logprobs=SURE))

    async def collect() -> list[Any]:
        return [chunk async for chunk in model.astream("Capital of France?")]

    chunks = asyncio.run(collect())
    assert [c.content for c in chunks if c.content] == ["It", " is", " Paris."]  # they add up to the answer
    assert chunks[-1].usage_metadata is not None and chunks[-1].response_metadata["cascade"]["final_tier"] == "large"
    assert "".join(str(c.content) for c in model.stream("Capital of France?")) == "It is Paris."


def test_bound_tools_come_back_as_tool_calls() -> None:
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    model, fake = chat_model(FakeReply("sunny", logprobs=[-2.0]), FakeReply(tool_calls=calls, logprobs=SURE))
    reply = model.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
    assert isinstance(reply, AIMessage) and reply.content == ""
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert fake.calls[-1].tool_choice == "required" and fake.calls[-1].tools[0]["function"]["name"] == "get_weather"


class City(BaseModel):
    city: str
    country: str


def test_structured_output_is_checked_by_the_cascade_and_parsed() -> None:
    model, fake = chat_model(
        FakeReply('{"city": "Lyon"}', logprobs=SURE), FakeReply('{"city": "Paris", "country": "France"}', logprobs=SURE)
    )
    city = model.with_structured_output(City).invoke("Capital of France?")
    assert city == City(city="Paris", country="France")  # the small tier's JSON lacked "country": escalated
    assert fake.calls[0].response_format is not None and fake.calls[0].response_format["type"] == "json_schema"
    raw = model.with_structured_output(City, include_raw=True).invoke("Capital of France?")
    assert isinstance(raw, dict) and raw["parsing_error"] is None and isinstance(raw["raw"], AIMessage)


def test_per_call_stop_sequences_and_sampling_are_refused_clearly() -> None:
    model, _ = chat_model("x", "y")
    with pytest.raises(UserError, match="stop sequences are set per tier"):
        model.invoke("q", stop=["\n"])
    with pytest.raises(UserError, match="does not take"):
        model.bind(temperature=0.3).invoke("q")


def test_a_langgraph_agent_calls_the_tool_and_answers_with_its_result() -> None:
    """The classic agent loop: model → tools → model, with the cascade as the model."""
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    model, fake = chat_model(
        FakeReply("I do not know", logprobs=[-3.0]),
        [
            FakeReply(tool_calls=calls, match="weather", logprobs=SURE),
            FakeReply("It is 18 °C and sunny in Paris.", match="18 °C", logprobs=SURE),
        ],
    )
    agent_model = model.bind_tools([get_weather])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [agent_model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile()

    final = app.invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
    messages = final["messages"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert isinstance(messages[2], ToolMessage) and messages[2].content == "18 °C and sunny in Paris"
    assert messages[-1].content == "It is 18 °C and sunny in Paris."
    follow_up = fake.calls[-1].messages
    assert [m["role"] for m in follow_up] == ["user", "assistant", "tool"]
    assert follow_up[1]["tool_calls"][0]["id"] == follow_up[2]["tool_call_id"] == messages[1].tool_calls[0]["id"]
