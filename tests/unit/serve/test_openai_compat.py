"""OpenAI compatibility of `cascade serve` as real clients see it (openai, litellm, langchain-openai)
against a uvicorn server on loopback: what OpenAI's schema allows is accepted, what a request asks
for is honoured or refused with a 400, never silently ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from cascade import Cascade, FakeCompleter, FakeReply
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from tests.unit.io.test_structured import WEATHER
from tests.unit.serve.test_app import CONFIG, demo

KEY = "sk-compat-test-0123456789"
QUESTION = "What is the capital of France?"
LONG = "The capital of France is Paris"  # six tokens of five characters in the scripted `wordy` cascade
WORD_PROBLEM = "Tom has 3 boxes with 12 apples each and gives 1 box away. How many apples does he have left?"
REASONING = "3 boxes of 12 apples are 36 apples.\nGiving away one box leaves 24.\nThe answer is 24."


FENCED_CALL = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
TWO_LINES = "It is 18 °C in Paris.\nTake a light jacket."
FENCED: list[FakeCompleter] = [FakeCompleter()]  # the `fenced` cascade's completer, once built


class NoLogprobs(FakeCompleter):
    """A provider that, as litellm's table says of many, cannot return token logprobs."""

    def param_problem(self, model: str, api_base: str | None, param: str) -> str | None:
        return f"{model!r} does not take {param}" if param == "logprobs" else None


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    wordy, _ = demo(large=FakeReply(LONG, logprobs=[-0.01] * 6), name="wordy")
    twice = [{"name": "get_weather", "arguments": {"city": c}, "id": "dup"} for c in ("Paris", "Lyon")]
    calls, _ = demo(large=FakeReply(tool_calls=twice, logprobs=[-0.01]), name="calls")
    plain, _ = demo(name="plain")
    plain.meter.inner = NoLogprobs({"fake/small": "Lyon", "fake/large": "Paris"})
    final = [CONFIG["tiers"][0], {**CONFIG["tiers"][1], "answer": {"format": "final"}}]
    thinks, _ = demo(large=FakeReply(REASONING, logprobs=[-0.01] * 8), name="thinks", tiers=final)
    cascades = {"fake": Cascade.from_yaml("configs/fake.yaml"), "wordy": wordy, "calls": calls, "plain": plain}
    cascades["thinks"] = thinks
    cascades["fenced"], FENCED[0] = demo(
        large=[FakeReply(FENCED_CALL, match="weather", logprobs=[-0.01]), FakeReply(TWO_LINES, logprobs=[-0.01])],
        name="fenced",
        tiers=[
            CONFIG["tiers"][0],
            {**CONFIG["tiers"][1], "prompt": {"examples": [{"question": "12 + 30?", "answer": "42"}]}},
        ],
    )
    cascades["unsure"] = demo(large=FakeReply("Paris", logprobs=[-2.0]), name="unsure")[0]
    cascades["strict"] = demo(large=FakeReply("Paris", logprobs=[-2.0]), name="strict", on_reject="error")[0]
    with serve_in_thread(create_app(cascades, ServeSettings(api_keys=(KEY,)))) as url:
        yield f"{url}/v1"


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)


def test_a_model_is_retrieved_by_id_and_an_unknown_one_is_a_404(client: openai.OpenAI) -> None:
    assert client.models.retrieve("fake").id == "fake"
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4o'") as missing:
        client.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"


def test_explicit_nulls_mean_the_defaults(base_url: str) -> None:
    """What litellm and other clients send for the optional fields they do not set."""
    nulls = dict.fromkeys(
        ("n", "stream", "stream_options", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
         "logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "user", "metadata", "seed",
         "functions", "function_call", "parallel_tool_calls", "presence_penalty", "frequency_penalty"),
    )  # fmt: skip
    body = {"model": "fake", "messages": [{"role": "user", "content": QUESTION, "name": None}], **nulls}
    headers = {"authorization": f"Bearer {KEY}"}
    answer = httpx.post(f"{base_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Paris"
    streamed = httpx.post(
        f"{base_url}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": None}},
        headers=headers,
        timeout=10,
    )
    assert streamed.status_code == 200 and '"content":"Paris"' in streamed.text


def ask(client: openai.OpenAI, model: str = "wordy", content: str = QUESTION, **options: object) -> object:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **options)


def streamed(client: openai.OpenAI, model: str = "wordy", **options: object) -> tuple[str, str | None, list]:
    """The content, finish reason and logprob entries a stream carries."""
    text, finish, logprobs = "", None, []
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], stream=True, **options
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            logprobs += (choice.logprobs.content or []) if choice.logprobs else []
    return text, finish, logprobs


def test_max_tokens_cuts_the_answer_and_says_length(client: openai.OpenAI) -> None:
    whole = ask(client)
    assert whole.choices[0].message.content == LONG and whole.choices[0].finish_reason == "stop"
    for limit in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        cut = ask(client, **limit)
        assert cut.choices[0].message.content == "The capital of" and cut.choices[0].finish_reason == "length"
        assert streamed(client, **limit)[:2] == ("The capital of", "length")
    assert ask(client, "fake", max_tokens=50).choices[0].finish_reason == "stop"  # under every tier's own cap


def test_stop_sequences_end_the_answer(client: openai.OpenAI) -> None:
    assert ask(client, stop=" is").choices[0].message.content == "The capital of France"
    assert ask(client, stop=["France", "capital"]).choices[0].message.content == "The"
    assert streamed(client, stop=[" is"])[0] == "The capital of France"
    with pytest.raises(openai.BadRequestError, match="stop must be") as refused:
        ask(client, stop=["a", "b", "c", "d", "e"])
    assert refused.value.body["param"] == "stop"  # type: ignore[index]


def test_logprobs_are_the_answers_tokens_streamed_or_not(client: openai.OpenAI) -> None:
    answer = ask(client, logprobs=True, top_logprobs=2)
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content == LONG
    assert all(t.logprob <= 0 and t.bytes == list(t.token.encode()) and t.top_logprobs for t in choice.logprobs.content)
    text, _, entries = streamed(client, logprobs=True, top_logprobs=2)
    assert text == LONG and "".join(e.token for e in entries) == LONG
    first_line = ask(client, "fake", "It is 2+2?", logprobs=True).choices[0]  # fake.yaml's small tier: '4'
    assert first_line.message.content == "4" and [t.token for t in first_line.logprobs.content] == ["4"]
    assert ask(client).choices[0].logprobs is None  # not asked, not sent


def test_logprobs_a_provider_cannot_give_are_refused_before_any_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not take logprobs") as refused:
        ask(client, "plain", logprobs=True)
    assert refused.value.code == "logprobs_unsupported"
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs"):
        ask(client, top_logprobs=3)
    assert ask(client, "plain").choices[0].message.content == "Paris"


def test_legacy_functions_are_called_and_answered(client: openai.OpenAI) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.chat.completions.create(
        model="fake", messages=[question], functions=[WEATHER["function"]], function_call="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert choice.message.function_call is not None and choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Paris"}
    call = {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()}
    result = {"role": "function", "name": "get_weather", "content": '{"temp_c": 18}'}
    follow_up = client.chat.completions.create(
        model="fake", messages=[question, call, result], functions=[WEATHER["function"]]
    )
    assert follow_up.choices[0].message.content == "It is 18 °C in Paris."
    chunks = list(
        client.chat.completions.create(
            model="fake", messages=[question], functions=[WEATHER["function"]], function_call={"name": "get_weather"},
            stream=True,
        )
    )  # fmt: skip
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices and c.choices[0].delta.function_call]
    assert [c.name for c in calls] == ["get_weather"] and chunks[-1].choices[0].finish_reason == "function_call"
    with pytest.raises(openai.BadRequestError, match="either tools or the legacy functions"):
        client.chat.completions.create(
            model="fake", messages=[question], functions=[WEATHER["function"]], tools=[WEATHER]
        )


def test_tool_call_ids_are_unique_in_the_response_and_the_conversation(client: openai.OpenAI) -> None:
    """The scripted model names both its calls 'dup' (as servers that number calls per turn do)."""
    question = {"role": "user", "content": "Weather in Paris and Lyon?"}
    first = client.chat.completions.create(model="calls", messages=[question], tools=[WEATHER])
    ids = [c.id for c in first.choices[0].message.tool_calls or []]
    assert len(ids) == 2 and len(set(ids)) == 2
    turn = first.choices[0].message.model_dump(exclude_none=True)
    results = [{"role": "tool", "tool_call_id": i, "content": "18"} for i in ids]
    again = client.chat.completions.create(
        model="calls", messages=[question, turn, *results, {"role": "user", "content": "And now?"}], tools=[WEATHER]
    )
    later = [c.id for c in again.choices[0].message.tool_calls or []]
    assert len(set(later)) == 2 and not set(later) & set(ids)


@pytest.mark.parametrize(
    ("model", "question", "answer"),
    [("thinks", WORD_PROBLEM, "24"), ("fake", "What temperature is it in Paris?", "It is 18 °C in Paris"),
     ("wordy", QUESTION, LONG)],
)  # fmt: skip
def test_the_same_content_streamed_or_not_in_every_client(
    base_url: str, model: str, question: str, answer: str
) -> None:
    """The answer a tier's format reads (the reasoning's conclusion, the first line without its full
    stop) is the content either way; a reasoning streams as `reasoning_content`, which clients skip."""
    import litellm
    from langchain_openai import ChatOpenAI

    messages = [{"role": "user", "content": question}]
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)
    plain = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True))
    assert plain == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices
    )
    assert reasoning == (REASONING if model == "thinks" else "It is 18 °C in Paris." if model == "fake" else LONG)

    via = {"model": f"openai/{model}", "messages": messages, "api_base": base_url, "api_key": KEY}
    assert litellm.completion(**via).choices[0].message.content == answer
    assert "".join(c.choices[0].delta.content or "" for c in litellm.completion(**via, stream=True)) == answer

    chat = ChatOpenAI(model=model, base_url=base_url, api_key=KEY, max_retries=0)  # type: ignore[arg-type]
    assert chat.invoke(question).content == answer
    assert "".join(str(c.content) for c in chat.stream(question)) == answer


def test_an_answer_no_tier_accepted_is_marked_or_under_on_reject_error_a_422(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="unsure", messages=[{"role": "user", "content": QUESTION}]
    )
    assert raw.headers["x-cascade-accepted"] == "false" and raw.parse().choices[0].message.content == "Paris"
    assert (raw.parse().model_extra or {})["cascade"]["accepted"] is False
    final = list(ask(client, "unsure", stream=True))[-1]  # type: ignore[call-overload]
    assert (final.model_extra or {})["cascade"]["accepted"] is False

    with pytest.raises(openai.UnprocessableEntityError, match="no tier accepted its answer") as refused:
        ask(client, "strict")
    assert refused.value.code == "not_accepted" and refused.value.status_code == 422
    body = refused.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["cascade"]["answer"] == "Paris" and body["cascade"]["accepted"] is False  # paid for, not lost
    with pytest.raises(openai.APIError, match="no tier accepted its answer"):
        chunks = list(ask(client, "strict", stream=True))  # type: ignore[call-overload]
        assert not [c for c in chunks if c.choices and c.choices[0].delta.content]  # nothing live to take back


def test_tool_calls_written_as_text_are_calls_and_replies_are_not_cut_to_their_first_line(
    client: openai.OpenAI,
) -> None:
    """Under tool_choice auto a model without native tool calls writes its call as fenced JSON;
    the tiers' first_line format must neither cut it to '```json' nor cut a two-line reply."""
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.chat.completions.create(model="fenced", messages=[question], tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    sent = FENCED[0].calls[-1].messages
    assert [m["role"] for m in sent] == ["user"]  # no worked example ("12 + 30?" -> "42") beside tools
    result = {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'}
    turn = choice.message.model_dump(exclude_none=True)
    for tools in ({"tools": [WEATHER]}, {}):  # some clients leave the tools out of the last turn
        follow_up = client.chat.completions.create(model="fenced", messages=[question, turn, result], **tools)
        reply = follow_up.choices[0].message.content
        assert reply == (TWO_LINES if tools else TWO_LINES.splitlines()[0].rstrip("."))
        assert "42" not in json.dumps(FENCED[0].calls[-1].messages)  # the examples stay out of a follow-up turn
