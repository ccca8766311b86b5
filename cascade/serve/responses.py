"""CascadeResult → OpenAI response bodies and `x-cascade-*` headers (streams: `cascade.serve.streaming`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cascade.serve.schemas import (
    AssistantMessage,
    AttemptInfo,
    CascadeInfo,
    ChatCompletion,
    Choice,
    ChoiceLogprobs,
    MemberInfo,
    Usage,
)
from cascade.types import CascadeResult, answering_attempt


@dataclass(frozen=True)
class ReplyForm:
    """How the answer is written: as legacy `function_call`s, with token logprobs (the request's
    asks), or not at all when no tier accepted it (a config's `on_reject: error`)."""

    legacy_functions: bool = False
    logprobs: bool = False
    refuse_unaccepted: bool = False

    def refuses(self, result: CascadeResult) -> bool:
        """An answer no tier accepted, under `on_reject: error`: a 422 (`not_accepted`), not a reply."""
        return self.refuse_unaccepted and result.error is None and not result.accepted

    def finish_reason(self, result: CascadeResult) -> str:
        """`tool_calls` (`function_call`), `length` when the answering model was cut at its token cap, else `stop`."""
        if result.tool_calls:
            return "function_call" if self.legacy_functions else "tool_calls"
        answered = answering_attempt(result.attempts)
        return "length" if answered is not None and answered.finish_reason == "length" else "stop"

    def calls(self, result: CascadeResult) -> dict[str, Any]:
        """The answer's calls as the message fields that carry them (a legacy request gets the first)."""
        if not result.tool_calls:
            return {}
        if self.legacy_functions:
            return {"function_call": dict(result.tool_calls[0]["function"])}
        return {"tool_calls": result.tool_calls}

    def logprobs_of(self, result: CascadeResult) -> ChoiceLogprobs | None:
        if not self.logprobs:
            return None
        answered = answering_attempt(result.attempts)
        return ChoiceLogprobs(content=answered.logprobs if answered is not None else None)


PLAIN_REPLY = ReplyForm()


def usage_of(result: CascadeResult) -> Usage:
    """Tokens over all attempts: every tier that ran was paid for, not only the one that answered."""
    prompt = sum(a.prompt_tokens for a in result.attempts)
    completion = sum(a.completion_tokens for a in result.attempts)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def not_accepted(result: CascadeResult) -> str:
    """Why a 422: whose answer was best and why it was not accepted."""
    answered = answering_attempt(result.attempts)
    confidence = f"{answered.confidence:.2f}" if answered and answered.confidence is not None else "unknown"
    best = f"tier '{answered.tier}' (confidence {confidence})" if answered else "none"
    return f"no tier accepted its answer ({result.stop_reason}); the best, {best}, is in cascade.answer"


def cascade_info(result: CascadeResult, *, with_answer: bool = False) -> CascadeInfo:
    attempts = [
        AttemptInfo(
            tier=a.tier,
            model=a.model,
            tokens=a.total_tokens,
            cost_usd=a.cost_usd,
            confidence=a.confidence,
            decision=a.decision,
            error=a.error,
            members=[
                MemberInfo(model=m.model, answer=m.answer, tokens=m.total_tokens, cost_usd=m.cost_usd, error=m.error)
                for m in a.members
            ]
            or None,
        )
        for a in result.attempts
    ]
    return CascadeInfo(
        run_id=result.run_id,
        final_tier=result.final_tier,
        accepted=result.accepted,
        stop_reason=result.stop_reason,
        attempts=attempts,
        tag=result.tag,
        experiment=result.experiment,
        variant=result.variant,
        answer=result.answer if with_answer else None,
    )


def headers(result: CascadeResult) -> dict[str, str]:
    found = {
        "x-cascade-run-id": result.run_id,
        "x-cascade-tier": result.final_tier or "",
        "x-cascade-accepted": "true" if result.accepted else "false",
        "x-cascade-cost-usd": format(result.total_cost_usd, ".10g"),
    }
    if result.variant is not None:
        found["x-cascade-variant"] = result.variant  # the experiment variant that answered
    return found


def failure_message(result: CascadeResult) -> str:
    """Why no tier answered, with each failed tier's error: the cause, not just 'bad gateway'."""
    causes = "; ".join(f"{a.tier}: {a.error or a.reason}" for a in result.attempts if a.answer is None)
    stop = f" ({result.stop_reason})" if result.stop_reason else ""
    return f"no tier answered: {result.error}{stop}" + (f"; {causes}" if causes else "")


def completion(result: CascadeResult, model: str, form: ReplyForm = PLAIN_REPLY) -> ChatCompletion:
    """The answer as a `chat.completion`: text, or the tool calls (content null, finish `tool_calls`)."""
    content = None if result.tool_calls else result.answer or ""
    choice = Choice(
        message=AssistantMessage(content=content, **form.calls(result)),
        finish_reason=form.finish_reason(result),
        logprobs=form.logprobs_of(result),
    )
    return ChatCompletion(
        id=f"chatcmpl-{result.run_id}",
        created=int(time.time()),
        model=model,
        choices=[choice],
        usage=usage_of(result),
        cascade=cascade_info(result),
    )
