"""The caller's input as a conversation: OpenAI-style messages, split into what the cascade needs.

`Cascade.run("What is 2+2?")` and `Cascade.run([{"role": "system", ...}, {"role": "user", ...}])`
are the same thing: a string is a conversation of one user turn. The parts:

- `query`: the last user turn's text. Routers, pre-routers and verifiers judge it; the store and
  the trace show it.
- `system`: the caller's system (and developer) messages, joined in order.
- `history`: the turns before the query; `after`: what follows it (an assistant's tool calls and
  the tool results, on the follow-up turn of a tool-using agent).

How a tier's own prompt settings compose with it (`build_messages` in `cascade.run.tiers`): one system
message first (the tier's `system`, then the caller's, then a format instruction for JSON output),
then the tier's worked `examples`, then the history verbatim, then the query through the tier's
`template`, then the turns after it verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cascade.errors import UserError
from cascade.io.structured import PLAIN, OutputSpec
from cascade.io.text import check_utf8
from cascade.types import Message

_ROLES = ("system", "developer", "user", "assistant", "tool")
_KEPT = ("role", "content", "name", "tool_calls", "tool_call_id")


@dataclass(frozen=True)
class Conversation:
    """Checked messages plus the output the caller asked for (text, JSON, tool calls)."""

    messages: tuple[Message, ...]
    query_index: int
    output: OutputSpec = PLAIN

    @property
    def query(self) -> str:
        return str(self.messages[self.query_index]["content"])

    @property
    def system(self) -> str | None:
        parts = [m["content"] for m in self.messages if m["role"] in ("system", "developer") and m["content"]]
        return "\n\n".join(parts) or None

    @property
    def history(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages[: self.query_index] if m["role"] not in ("system", "developer"))

    @property
    def after(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages[self.query_index + 1 :] if m["role"] not in ("system", "developer"))

    @property
    def tool_call_ids(self) -> set[str]:
        """The ids of the tool calls made earlier in the conversation."""
        return {str(call.get("id")) for m in self.messages for call in m.get("tool_calls") or () if call.get("id")}

    @property
    def is_single_turn(self) -> bool:
        """Only the query: no system prompt, no history, nothing after it."""
        return len(self.messages) == 1

    def text_size(self) -> int:
        """Characters of text over all messages (tool calls counted by their JSON): for size limits."""
        return sum(len(m.get("content") or "") + len(str(m.get("tool_calls") or "")) for m in self.messages)


def conversation_of(query: str | Sequence[Mapping[str, Any]], output: OutputSpec = PLAIN) -> Conversation:
    """A checked Conversation from a string or a list of OpenAI-style messages; UserError says why not."""
    if isinstance(query, str):
        if not query.strip():
            raise UserError("query must be a non-empty string")
        check_utf8(query, "the query")
        return Conversation(({"role": "user", "content": query},), 0, output)
    if isinstance(query, Mapping) or not isinstance(query, Sequence) or not query:
        raise UserError("query must be a non-empty string or a non-empty list of messages")
    messages = tuple(_message(m, i) for i, m in enumerate(query))
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise UserError("a conversation needs at least one message with role 'user'")
    last = users[-1]
    if not str(messages[last]["content"]).strip():
        raise UserError(f"messages[{last}]: the last user message is empty")
    return Conversation(messages, last, output)


def _message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: a message must be a mapping with 'role' and 'content'")
    role = raw.get("role")
    if role not in _ROLES:
        raise UserError(f"{where}.role must be one of {', '.join(_ROLES)}; got {role!r}")
    message: Message = {k: raw[k] for k in _KEPT if raw.get(k) is not None}
    message["content"] = _text(raw.get("content"), where)
    check_utf8(message["content"], f"{where}.content")
    if role == "tool" and not isinstance(raw.get("tool_call_id"), str):
        raise UserError(f"{where}: a tool message needs the 'tool_call_id' it answers")
    if "tool_calls" in message and (role != "assistant" or not isinstance(message["tool_calls"], list)):
        raise UserError(f"{where}: only an assistant message carries 'tool_calls', as a list")
    return message


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI content parts of type text (others are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, Mapping) for p in content):
        kinds = sorted({str(p.get("type")) for p in content} - {"text"})
        if kinds:
            raise UserError(f"{where}.content: only text parts are supported, got {', '.join(kinds)}")
        return "".join(str(p.get("text", "")) for p in content)
    raise UserError(f"{where}.content must be a string or a list of text parts")
