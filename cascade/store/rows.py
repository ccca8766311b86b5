"""Rows ↔ records: column lists, JSON encoding and key scrubbing shared by both SQL backends.

Everything free-text passes `scrub` on the way in, so an API key pasted into a query, a
provider error or a user's correction never reaches disk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from cascade.completers.litellm_completer import scrub
from cascade.errors import UserError
from cascade.io.text import utf8_safe
from cascade.store.base import FeedbackKind, FeedbackRecord, ReferencePair, ReferenceRecord, RunRecord
from cascade.types import Attempt, CascadeResult

Row = Sequence[Any]

RUN_COLUMNS = (
    "seq", "run_id", "created_at", "config_name", "variant", "query", "answer", "accepted", "final_tier",
    "total_tokens", "total_cost_usd", "features", "route_reason", "stop_reason", "error",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "run_id", "idx", "tier", "model", "answer", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
    "confidence", "threshold", "decision", "reason", "samples", "samples_saved", "error", "details", "members",
)  # fmt: skip
FEEDBACK_COLUMNS = ("id", "run_id", "kind", "value", "user_name", "created_at", "key_id")
REFERENCE_COLUMNS = (
    "seq", "created_at", "run_id", "config_name", "variant", "source", "tier", "answer", "reference_tier",
    "reference", "agree", "weight", "served", "confidence", "threshold", "answer_format", "cost_usd", "tokens", "note",
)  # fmt: skip


def now() -> str:
    """UTC timestamps as ISO text: sortable, and the same in both backends."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def safe(text: str) -> str:
    """Free text as stored: keys scrubbed, encodable as UTF-8 (a model's stray surrogate must not
    cost the run its record), and without NUL characters, which PostgreSQL's text cannot hold
    (a NUL becomes U+FFFD in both backends, so they store the same thing)."""
    return utf8_safe(scrub(text)).replace("\x00", "\ufffd")


def clean(text: str | None) -> str | None:
    return None if text is None else safe(text)


def to_json(value: Mapping[str, Any], what: str) -> str:
    """JSON text for `value`; numpy scalars and arrays become plain numbers and lists."""
    try:
        return json.dumps(dict(value), sort_keys=True, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} must be JSON-serialisable: {exc}") from None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def from_json(text: str | None) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(text)) if text else {}


def run_values(
    result: CascadeResult, run_id: str, config_name: str, variant: str | None, features: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """The runs row for `result`, in RUN_COLUMNS order without `seq` (the database assigns it).

    The run's tag (if any) is kept among its features, where context-aware learners read it back;
    so are the conversation (when the caller sent more than one question), the tool calls made, the
    experiment that assigned the run's variant (read back by the A/B report) and, under `audit:`, the
    run's audit chance and whether it was audited (read back by `cascade report`).
    """
    kept: dict[str, Any] = {"tag": result.tag, "messages": result.messages, "tool_calls": result.tool_calls}
    kept |= {"experiment": result.experiment, "audit_rate": result.audit_rate, "audited": result.audited or None}
    if any(v is not None for v in kept.values()):
        features = {**(features or {}), **{k: v for k, v in kept.items() if v is not None}}
    return (
        run_id, now(), safe(config_name), clean(variant), safe(result.query), clean(result.answer),
        int(result.accepted), clean(result.final_tier), result.total_tokens, result.total_cost_usd,
        safe(to_json(features or {}, "features")), safe(result.route_reason), safe(result.stop_reason),
        clean(result.error),
    )  # fmt: skip


def attempt_values(run_id: str, idx: int, a: Attempt) -> tuple[Any, ...]:
    """One attempts row, in ATTEMPT_COLUMNS order."""
    return (
        run_id, idx, safe(a.tier), safe(a.model), clean(a.answer), a.prompt_tokens, a.completion_tokens, a.cost_usd,
        a.latency_s, a.confidence, a.threshold, a.decision, safe(a.reason), a.samples, a.samples_saved,
        clean(a.error), safe(to_json(a.verifier_details, "verifier_details")), members_json(a),
    )  # fmt: skip


def members_json(attempt: Attempt) -> str:
    """An ensemble attempt's members as JSON, with answers, models and errors scrubbed of keys."""
    members = [
        m.model_dump() | {"model": scrub(m.model), "answer": clean(m.answer), "error": clean(m.error)}
        for m in attempt.members
    ]
    return json.dumps(members, sort_keys=True)


def attempt_of(row: Row) -> Attempt:
    """The `Attempt` an attempts row holds."""
    data = dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    del data["run_id"], data["idx"]
    data["verifier_details"] = from_json(data.pop("details"))
    data["members"] = json.loads(data["members"] or "[]")
    return Attempt.model_validate(data)


STORED_ATTEMPT_FIELDS = frozenset(
    {"verifier_details" if c == "details" else c for c in ATTEMPT_COLUMNS} - {"run_id", "idx"}
)
"""The `Attempt` fields the store keeps."""


def run_record(row: Row, attempts: list[Attempt]) -> RunRecord:
    data = dict(zip(RUN_COLUMNS, row, strict=True))
    data["accepted"] = bool(data["accepted"])
    data["features"] = from_json(data["features"])
    data["total_cost_usd"] = float(data["total_cost_usd"])
    return RunRecord(**data, attempts=attempts)


def feedback_record(row: Row) -> FeedbackRecord:
    fid, run_id, kind, value, user, created_at, key = row
    return FeedbackRecord(int(fid), run_id, cast(FeedbackKind, kind), value, user, created_at, key)


def reference_values(pair: ReferencePair) -> tuple[Any, ...]:
    """One reference_pairs row, in REFERENCE_COLUMNS order without `seq` (the database assigns it)."""
    if not pair.run_id or not pair.config_name:
        raise UserError("a reference pair needs the run_id and config_name of the run it judges")
    if not pair.weight > 0:
        raise UserError(f"a reference pair's weight must be positive, got {pair.weight}")
    agree = None if pair.agree is None else int(pair.agree)
    return (
        now(), pair.run_id, pair.config_name, pair.variant, pair.source, pair.tier, clean(pair.answer),
        pair.reference_tier, clean(pair.reference), agree, float(pair.weight), int(pair.served), pair.confidence,
        pair.threshold, pair.answer_format, float(pair.cost_usd), int(pair.tokens), safe(pair.note),
    )  # fmt: skip


def reference_record(row: Row) -> ReferenceRecord:
    data = dict(zip(REFERENCE_COLUMNS, row, strict=True))
    seq, created_at = int(data.pop("seq")), str(data.pop("created_at"))
    data["agree"] = None if data["agree"] is None else bool(data["agree"])
    data["served"] = bool(data["served"])
    for name in ("weight", "cost_usd"):
        data[name] = float(data[name])
    for name in ("confidence", "threshold"):
        data[name] = None if data[name] is None else float(data[name])
    data["tokens"] = int(data["tokens"])
    return ReferenceRecord(seq, created_at, ReferencePair(**data))
