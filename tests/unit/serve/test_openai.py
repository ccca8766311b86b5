"""The real `openai` client against `cascade serve` on a loopback port (uvicorn in a thread)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from cascade import Cascade, FakeCompleter, FakeReply
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from tests.unit.io.test_structured import WEATHER
from tests.unit.serve.test_app import QUESTION, demo

KEY = "sk-serve-test-0123456789"


@pytest.fixture(scope="module")
def fake() -> Cascade:
    return Cascade.from_yaml("configs/fake.yaml")


@pytest.fixture(scope="module")
def base_url(fake: Cascade) -> Iterator[str]:
    cascade, _ = demo()
    slow, _ = demo(large=FakeReply("The capital of France is Paris", logprobs=[-0.01], delay_s=1.2), name="slow")
    app = create_app({"demo": cascade, "fake": fake, "slow": slow}, ServeSettings(api_keys=(KEY,)))
    with serve_in_thread(app) as url:
        yield f"{url}/v1"


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)


def test_openai_client_lists_models_answers_and_streams(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)
    assert [m.id for m in client.models.list()] == ["demo", "fake", "slow"]

    raw = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": QUESTION}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 25
    assert raw.headers["x-cascade-tier"] == "large" and completion.id == f"chatcmpl-{raw.headers['x-cascade-run-id']}"
    assert (completion.model_extra or {})["cascade"]["final_tier"] == "large"

    stream = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 25
    (run_id,) = [(c.model_extra or {})["cascade"]["run_id"] for c in chunks if "cascade" in (c.model_extra or {})]
    assert {c.id for c in chunks} == {f"chatcmpl-{run_id}"}  # as a plain response's id names its run

    raw_stream = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    header = raw_stream.headers["x-cascade-run-id"]  # known before the run ends, for feedback on it
    assert {c.id for c in raw_stream.parse()} == {f"chatcmpl-{header}"}


def test_openai_client_raises_the_servers_errors(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)
    with pytest.raises(openai.BadRequestError, match="role 'user'"):
        client.chat.completions.create(model="demo", messages=[{"role": "system", "content": "Be terse"}])
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    wrong = openai.OpenAI(base_url=base_url, api_key="sk-wrong-0000000000", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        wrong.models.list()


def sent(cascade: Cascade) -> list[tuple[str, str]]:
    """(role, content) of the messages the last model call received."""
    completer = cascade.meter.inner
    assert isinstance(completer, FakeCompleter)
    return [(m["role"], m.get("content") or "") for m in completer.calls[-1].messages]


def test_system_prompt_and_a_three_turn_conversation_get_answers(client: openai.OpenAI, fake: Cascade) -> None:
    system = client.chat.completions.create(
        model="fake",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": QUESTION}],
    )
    assert system.choices[0].message.content == "Paris"
    assert sent(fake) == [("system", "Be terse."), ("user", QUESTION)]  # the large tier saw the system prompt
    conversation = client.chat.completions.create(
        model="fake",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Paris"},
            {"role": "user", "content": "And 3+4?"},
        ],
    )
    assert conversation.choices[0].message.content == "4"  # the scripted small tier, for any sum
    assert (conversation.model_extra or {})["cascade"]["final_tier"] == "small"
    assert [role for role, _ in sent(fake)] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent(fake)[1:] == [
        ("user", "What is 2+2?"),
        ("assistant", "4"),
        ("user", QUESTION),
        ("assistant", "Paris"),
        ("user", "And 3+4?"),
    ]


def test_json_object_answers_are_valid_json_or_a_clear_error(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="fake",
        messages=[{"role": "user", "content": "Reply in JSON: the capital of France?"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Paris", "country": "France"}
    with pytest.raises(openai.APIStatusError, match="no tier produced valid json_object output") as failed:
        client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": QUESTION}], response_format={"type": "json_object"}
        )
    assert failed.value.status_code == 502 and failed.value.code == "invalid_output"
    stream = client.chat.completions.create(
        model="fake",
        messages=[{"role": "user", "content": QUESTION}],
        response_format={"type": "json_object"},
        stream=True,
    )
    with pytest.raises(openai.APIError, match="no tier produced valid json_object output"):
        list(stream)  # the status line went out before the run: the error is an event the client raises
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    typed = client.chat.completions.create(
        model="fake",
        messages=[{"role": "user", "content": "Reply in JSON: the capital of France?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    assert json.loads(typed.choices[0].message.content or "")["city"] == "Paris"


def test_required_tool_choice_returns_tool_calls_and_the_follow_up_is_answered(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="fake", messages=ask, tools=[WEATHER], tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    result = {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'}
    follow_up = client.chat.completions.create(
        model="fake", messages=[*ask, choice.message.model_dump(exclude_none=True), result], tools=[WEATHER]
    )
    assert follow_up.choices[0].message.content == "It is 18 °C in Paris."  # with tools, a reply is read whole
    streamed = list(
        client.chat.completions.create(model="fake", messages=ask, tools=[WEATHER], tool_choice="required", stream=True)
    )
    deltas = [c.choices[0].delta.tool_calls for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert deltas and deltas[0][0].function.name == "get_weather"
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_required_tool_choice_without_a_tool_call_is_a_clear_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError, match="tool_choice 'required' but the model answered in text"):
        client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER], tool_choice="required"
        )


def test_the_last_tiers_words_arrive_while_it_is_still_writing(client: openai.OpenAI) -> None:
    """The large tier writes 6 words over 1.2 s; the client reads each as it is written (as
    `reasoning_content`: the tier's `first_line` format reads the answer out of them), then the answer."""
    started = time.perf_counter()
    arrivals, content = [], ""
    for chunk in client.chat.completions.create(
        model="slow", messages=[{"role": "user", "content": "Capital?"}], stream=True
    ):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None and (delta.model_extra or {}).get("reasoning_content"):
            arrivals.append((time.perf_counter() - started, (delta.model_extra or {})["reasoning_content"]))
        content += (delta.content or "") if delta is not None else ""
    assert "".join(text for _, text in arrivals) == "The capital of France is Paris" == content
    assert len(arrivals) == 6 and arrivals[-1][0] - arrivals[0][0] > 0.6, arrivals


def test_a_client_leaving_mid_stream_stops_the_run_and_frees_its_slot(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    body = {"model": "slow", "messages": [{"role": "user", "content": "Capital?"}], "stream": True}
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, headers=headers, timeout=10) as response:
        lines = response.iter_lines()
        assert next(lines) == ": cascade admitted"
        while httpx.get(f"{root}/health").json()["running"] != 1:
            time.sleep(0.02)
    deadline = time.perf_counter() + 5
    while httpx.get(f"{root}/health").json()["running"] and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{root}/health").json()["running"] == 0
