"""JSON schemas from callers, made safe to validate with: references stay inside the schema, and
patterns run in linear time.

A request's `response_format` or tool `parameters` is a stranger's schema. `jsonschema` would fetch
a `$ref` to a URL (a request from the server to wherever the caller points it), and a reference
chain that comes back to where it started without descending into the value (`{"$ref": "#"}`)
recurses until the stack overflows, after the models were paid. `check_refs` refuses both up
front; `schema_validator` never fetches anything.

`jsonschema` matches `pattern` and `patternProperties` with Python's backtracking `re`, so a
stranger's `"^(a+)+$"` against an answer of 25 a's and a '!' holds the event loop for seconds,
doubling with each character. `schema_validator` matches them with RE2 instead (google-re2), whose
time is linear in the text; `check_patterns` refuses up front what RE2 cannot run (backreferences,
lookaround), so no pattern ever reaches the backtracking engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from cascade.errors import UserError

_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")
"""Keywords whose subschemas apply to the same value (a cycle through them alone never ends)."""


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(uri)


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs private-field alias


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator that resolves references only inside `schema`, never reaches the network, and
    matches patterns in linear time."""
    return _LinearValidator(schema, registry=_NO_RETRIEVAL)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the caller's error, not a line in the server's log


@lru_cache(maxsize=1024)
def linear_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2; ValueError saying why RE2 cannot run it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"pattern {pattern!r:.80} cannot be matched in linear time: {reason}") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not linear_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r:.80} does not match {pattern!r:.80}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if linear_regex(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """jsonschema's own keyword, told which keys the patterns matched (it would match them with `re`)."""
    patterns = schema.get("patternProperties")
    if patterns and validator.is_type(instance, "object"):
        matched = {key: True for key in instance if any(linear_regex(p).search(key) for p in patterns)}
        schema = {k: v for k, v in schema.items() if k != "patternProperties"}
        schema["properties"] = {**schema.get("properties", {}), **matched}
    yield from Draft202012Validator.VALIDATORS["additionalProperties"](validator, extra, instance, schema)


_LinearValidator = validators.extend(
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
)


def check_patterns(schema: dict[str, Any], where: str) -> None:
    """UserError naming `where` for a pattern RE2 cannot run; `unevaluatedProperties` may not be
    combined with `patternProperties` (jsonschema would match those with `re` to evaluate it)."""
    nodes = list(_subschemas(schema))
    for node in nodes:
        patterns = [node.get("pattern"), *(node.get("patternProperties") or {})]
        for pattern in patterns:
            if isinstance(pattern, str):
                try:
                    linear_regex(pattern)
                except ValueError as exc:
                    raise UserError(f"{where}: {exc}") from None
    keywords = {key for node in nodes for key in node}
    if {"unevaluatedProperties", "patternProperties"} <= keywords:
        raise UserError(f"{where}: unevaluatedProperties cannot be combined with patternProperties here")


def schema_depth(value: Any, limit: int) -> int:
    """How deeply objects and arrays nest in `value`, counted up to `limit` + 1 (iteratively, so a
    deep value cannot overflow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= limit:
            stack.extend((child, level + 1) for child in children)
    return deepest


def check_refs(schema: dict[str, Any], where: str) -> None:
    """UserError naming `where` unless every `$ref` points inside the schema (`#...`; `$id` only at
    the root) and no chain of references and in-place keywords leads back to where it started."""
    resolver = _NO_RETRIEVAL.with_resource("", DRAFT202012.create_resource(schema)).resolver("")
    edges: dict[int, list[dict[str, Any]]] = {}
    for node in _subschemas(schema):
        if node is not schema and "$id" in node:
            raise UserError(f"{where}: '$id' is only supported at the schema's root")
        edges[id(node)] = [*_references(node, resolver, where), *_in_place(node)]
    if _has_cycle(edges):
        raise UserError(f"{where}: the schema refers back to itself without descending into the value")


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every subschema in schema positions (not inside `enum`, `const` or a property named `$ref`)."""
    seen: set[int] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict) and id(node) not in seen:
            seen.add(id(node))
            yield node
            stack.extend(DRAFT202012.subresources_of(node))


def _references(node: dict[str, Any], resolver: Any, where: str) -> Iterator[dict[str, Any]]:
    for keyword in ("$ref", "$dynamicRef"):
        ref = node.get(keyword)
        if ref is None:
            continue
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UserError(f"{where}: only references inside the schema ('#/$defs/...') are supported, got {ref!r}")
        try:
            target = resolver.lookup(ref).contents
        except Unresolvable:
            raise UserError(f"{where}: {keyword} {ref!r} points nowhere in the schema") from None
        if isinstance(target, dict):
            yield target


def _in_place(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    dependent = node.get("dependentSchemas")
    values = [node.get(k) for k in _IN_PLACE] + (list(dependent.values()) if isinstance(dependent, dict) else [])
    for value in values:
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, dict):
                yield child


def _has_cycle(edges: dict[int, list[dict[str, Any]]]) -> bool:
    """Depth-first search with an explicit stack (a long chain cannot overflow Python's)."""
    state: dict[int, int] = {}  # 1: on the current path, 2: finished
    for start in edges:
        if state.get(start):
            continue
        state[start] = 1
        path = [(start, iter(edges[start]))]
        while path:
            node, children = path[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                path.pop()
            elif state.get(id(child)) == 1:
                return True
            elif not state.get(id(child)):
                state[id(child)] = 1
                path.append((id(child), iter(edges.get(id(child), []))))
    return False
