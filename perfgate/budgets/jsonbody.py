"""A request's ``json`` body: YAML values made JSON, strings interpolated, the rest checked."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from perfgate.budgets.yamlsource import Path_, Source

__all__ = ["json_body"]


def json_body(src: Source, value: Any, path: Path_, allowed: frozenset[str]) -> Any:
    """A JSON body as YAML gave it, made JSON: dates and timestamps become ISO 8601 text.

    Strings are interpolated and checked for placeholders; NaN, infinities and what JSON has
    no form for (!!binary bytes, !!set) are errors.
    """
    if isinstance(value, str):
        return src.template(value, path, allowed)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            src.error(path, f"expected a finite number (JSON has no NaN or infinity), got {value}")
        return value
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [json_body(src, v, (*path, i), allowed) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = _json_key(k)
            if key in out:
                src.error((*path, str(k)), f"duplicate key {key!r} once written as JSON")
            out[key] = json_body(src, v, (*path, str(k)), allowed)
        return out
    src.error(
        path,
        "expected a JSON value (text, a number, true, false, null, a list or a mapping), "
        f"got {type(value).__name__} {value!r:.60}",
    )
    return None


def _json_key(key: object) -> str:
    """A mapping key as JSON writes it: text stays, 1 is "1", true is "true", a date ISO text."""
    if isinstance(key, str):
        return key
    if isinstance(key, (dt.date, dt.time)):
        return key.isoformat()
    return json.dumps(key) if key is None or isinstance(key, (bool, int, float)) else str(key)
