"""Conversations as input: checking, how a tier's prompt composes with them, what routers and verifiers see."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply, UserError
from cascade.config.schema import TierConfig
from cascade.io.conversation import conversation_of
from cascade.io.structured import OutputSpec
from cascade.protocols import DecideContext, VerifyContext
from cascade.registry import register
from cascade.run.tiers import build_messages
from cascade.types import Decision, Verdict

SYSTEM = {"role": "system", "content": "You are ACME's assistant."}
TIER = TierConfig.model_validate(
    {
        "name": "t",
        "model": "fake/t",
        "prompt": {
            "system": "Answer briefly.",
            "template": "Q: {query}",
            "examples": [{"question": "1+1?", "answer": "2"}],
        },
    }
)


def test_a_string_is_a_one_turn_conversation() -> None:
    chat = conversation_of("What is 2+2?")
    assert chat.query == "What is 2+2?" and chat.is_single_turn and chat.system is None and chat.history == ()


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_tier_prompt_composes_with_the_callers_system_history_and_tool_turns() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chat = conversation_of(
        [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "now?"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
    )
    assert chat.query == "Weather now?" and [m["role"] for m in chat.after] == ["assistant", "tool"]
    messages = build_messages(TIER, chat)
    assert messages == [  # no worked example: the turn goes on from a tool's result, not from the question
        {"role": "system", "content": "Answer briefly.\n\nYou are ACME's assistant."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Q: Weather now?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    question = conversation_of([SYSTEM, {"role": "user", "content": "Weather now?"}])
    assert build_messages(TIER, question)[1:3] == [  # a question asked from scratch gets them
        {"role": "user", "content": "Q: 1+1?"},
        {"role": "assistant", "content": "2"},
    ]
    with_tools = conversation_of([{"role": "user", "content": "Weather now?"}], OutputSpec.of(tools=[TOOL]))
    assert [m["role"] for m in build_messages(TIER, with_tools)] == ["system", "user"]  # nor a request with tools


def test_json_output_adds_a_format_instruction_after_both_system_prompts() -> None:
    schema = {"type": "object", "required": ["city"]}
    output = OutputSpec.of({"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    system = build_messages(TIER, conversation_of([SYSTEM, {"role": "user", "content": "x"}], output))[0]["content"]
    first, second, instruction = system.split("\n\n")
    assert (first, second) == ("Answer briefly.", "You are ACME's assistant.")
    assert instruction.startswith("Reply with a single JSON value") and '"required": ["city"]' in instruction


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "non-empty"),
        ([{"role": "system", "content": "x"}], "at least one message with role 'user'"),
        ([{"role": "wizard", "content": "x"}], "role must be one of"),
        ([{"role": "user", "content": "   "}], "last user message is empty"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "only text parts"),
        ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}], "tool_call_id"),
        ([{"role": "user", "content": "q", "tool_calls": []}], "only an assistant message"),
        (["hello"], "a message must be a mapping"),
    ],
)
def test_malformed_conversations_are_user_errors(messages: Any, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        conversation_of(messages)


class NoFields(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seen:
    """A verifier and a router that record what they were shown."""

    verify: ClassVar[list[VerifyContext]] = []
    decide: ClassVar[list[DecideContext]] = []


@register("verifier", "seen_test", NoFields)
def _seen_verifier(config: NoFields, ctx: Any) -> Any:
    class Verifier:
        async def verify(self, vctx: VerifyContext) -> Verdict:
            Seen.verify.append(vctx)
            return Verdict(0.9, "seen")

    return Verifier()


@register("router", "seen_test", NoFields)
def _seen_router(config: NoFields, ctx: Any) -> Any:
    class Router:
        def decide(self, dctx: DecideContext) -> Decision:
            Seen.decide.append(dctx)
            return Decision("accept", "seen")

    return Router()


def test_verifiers_and_routers_see_the_last_user_turn_as_query_and_the_history() -> None:
    config = CascadeConfig.from_dict(
        {
            "tiers": [{"name": "only", "model": "fake/m"}],
            "verifier": {"type": "seen_test"},
            "router": {"type": "seen_test"},
        }
    )
    fake = FakeCompleter({"fake/m": "Paris"})
    history = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    result = Cascade(config, completer=fake).run([*history, {"role": "user", "content": "Capital of France?"}])
    assert result.answer == "Paris" and result.query == "Capital of France?"
    assert result.messages is not None and len(result.messages) == 4
    assert Seen.verify[-1].query == "Capital of France?" and Seen.decide[-1].query == "Capital of France?"
    assert [m["content"] for m in Seen.verify[-1].history] == ["Hi", "Hello!"]
    assert Seen.decide[-1].history == Seen.verify[-1].history
    assert [m["role"] for m in fake.calls[0].messages] == ["system", "user", "assistant", "user"]


def test_run_takes_system_and_user_messages_from_yaml_config() -> None:
    cascade = Cascade.from_yaml("configs/fake.yaml")
    result = cascade.run([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 2+2?"}])
    assert result.answer == "4" and result.accepted and result.final_tier == "small"
    assert result.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    fake = cascade.meter.inner
    assert isinstance(fake, FakeCompleter) and fake.calls[-1].messages[0]["content"] == "Be terse."


def test_batch_takes_conversations_too() -> None:
    fake = FakeCompleter({"fake/m": [FakeReply("4", match="2\\+2"), FakeReply("Lima")]})
    cascade = Cascade(CascadeConfig.from_dict({"tiers": [{"name": "m", "model": "fake/m"}]}), completer=fake)
    results = cascade.batch(["2+2?", [SYSTEM, {"role": "user", "content": "Capital of Peru?"}]])
    assert [r.answer for r in results] == ["4", "Lima"]
