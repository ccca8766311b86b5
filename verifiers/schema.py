"""Schema: an answer that is not the JSON the app needs is wrong, however sure the model was.

    verifier: {type: schema, schema: {type: object, required: [city], properties: {city: {type: string}}}}

With a `schema`, the tier's text must hold a JSON value (bare, fenced or inside prose) that
validates against it; the verdict's answer is that value as compact JSON, so the app gets JSON
whatever the tier's answer format. Without one it checks what the request asked for
(`response_format`, `tools`): the cascade already refuses outputs that break the request's
contract before any verifier runs, so here that part only confirms them; with neither, the answer
must be some JSON value. Confidence is 1.0 or 0.0, so it is a veto in an ensemble (`mode: all`)
next to a confidence verifier such as `logprob`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cascade.io.schema_refs import schema_validator
from cascade.io.structured import checked_schema, find_json, schema_problem
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext, register
from cascade.types import Verdict


class SchemaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else checked_schema(value, "schema")


class SchemaVerifier:
    """1.0 when the tier's output is valid JSON for the schema (or the request's contract), else 0.0."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.validator = schema_validator(schema) if schema is not None else None

    async def verify(self, ctx: VerifyContext) -> Verdict:
        if self.validator is None and ctx.output is not None and ctx.output.structured:
            if ctx.answer is None:
                return Verdict(0.0, f"schema: no valid {ctx.output.kind} output")
            return Verdict(1.0, f"schema: valid {ctx.output.kind} output")
        text = ctx.samples[0].text if ctx.samples else ""
        try:
            value = find_json(text)
            if self.validator is not None:
                schema_problem(self.validator, value, "answer")
        except ValueError as exc:
            return Verdict(0.0, f"schema: {exc}", details={"valid": False})
        what = "matches the schema" if self.validator is not None else "is JSON"
        return Verdict(1.0, f"schema: answer {what}", answer=json.dumps(value, ensure_ascii=False))


@register("verifier", "schema", SchemaConfig)
def build_schema(config: SchemaConfig, ctx: BuildContext) -> SchemaVerifier:
    return SchemaVerifier(config.json_schema)
