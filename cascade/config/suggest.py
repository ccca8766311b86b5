"""'did you mean' for a config field pydantic does not know: the nearest field of the model at that place.

`temprature: 0.2` was reported as an unknown field, leaving the reader to find the spelling in the
docs. The model at the error's location is found by walking the field annotations (through
Optional, lists and mappings), and its field names (plus those a model also accepts under another
name, `ALSO_ACCEPTED`) are matched by spelling.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def did_you_mean(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """'; did you mean 'x'?' for the unknown field at `loc` (a path from `model`), or ''."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    found = _model_at(model, loc[:-1])
    if found is None:
        return ""
    names = [*found.model_fields, *getattr(found, "ALSO_ACCEPTED", ())]
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _model_at(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return None
    return _as_model(current)


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one step into `annotation` at `part` (a field name, a list index, a mapping key)."""
    model = _as_model(annotation)
    if model is not None:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _step(args[0], part)
    if origin in (Union, types.UnionType):
        return next((step for arg in args if (step := _step(arg, part)) is not None), None)
    if origin in (list, tuple) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        found = [m for arg in get_args(annotation) if (m := _as_model(arg)) is not None]
        return found[0] if len(found) == 1 else None
    return None
