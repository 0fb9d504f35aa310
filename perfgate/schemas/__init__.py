"""The JSON Schemas of perfgate's files, and checking a file against them before it is read.

perfgate-2.schema.json  results files (--perfgate-json) and baseline records, schema 2
perfgate-1.schema.json  the same as perfgate 0.1 wrote them (schema 1), as far as they are read

A results file may come from an untrusted pull request's artifact. ``check`` refuses anything a
reader or renderer could trip on: a wrong type, an unknown status or outcome, a missing key,
NaN or a number beyond a float, nesting deeper than perfgate writes. Its message names the key
path and what was expected (``results[3].comparisons[0].outcome: expected one of 'regression',
..., got '<img src=x>'``), with the offending text escaped and shortened, so it can be printed
to a CI log as it is.
"""

from __future__ import annotations

import functools
import json
import math
import re
from importlib.resources import files
from typing import Any

import jsonschema
import referencing
from jsonschema.exceptions import ValidationError, best_match

__all__ = ["MAX_DEPTH", "SCHEMAS", "SchemaError", "check", "load"]

SCHEMAS = {1: "perfgate-1.schema.json", 2: "perfgate-2.schema.json"}
MAX_DEPTH = 32  # perfgate writes 8 levels at most; a deeper file is not one of its own
_SHOWN = 60  # characters of an offending value in a message
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SchemaError(ValueError):
    """The data is not a perfgate file of a schema this perfgate reads; says where and why."""


def load(schema: int) -> dict[str, Any]:
    """The JSON Schema of ``schema`` (1 or 2), as packaged."""
    text = (files("perfgate") / "schemas" / SCHEMAS[schema]).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def check(data: object) -> None:
    """Raise SchemaError unless ``data`` is a results file or baseline record perfgate reads."""
    _check_numbers_and_depth(data)
    if not isinstance(data, dict):
        raise SchemaError(f"expected a JSON object at the top level, got {_shown(data)}")
    schema = data.get("schema")
    if isinstance(schema, bool) or schema not in SCHEMAS:
        readable = " or ".join(map(str, SCHEMAS))
        raise SchemaError(
            f"schema: expected {readable} (the schemas this perfgate reads), got {_shown(schema)}"
        )
    kind = "baseline_record" if "commit_date" in data or "dirty" in data else "results_file"
    error = best_match(_validator(int(schema), kind).iter_errors(data))
    if error is not None:
        raise SchemaError(_explain(_deepest(error)))


def _deepest(error: ValidationError) -> ValidationError:
    """Into ``oneOf: [null, {...}]``: what is wrong inside the value, not that it is not null."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        inside = [e for e in error.context if e.relative_path or e.validator != "type"]
        if not inside:
            break
        error = best_match(inside) or error
    return error


@functools.cache
def _validator(schema: int, kind: str) -> jsonschema.Draft202012Validator:
    resources = [(s["$id"], referencing.Resource.from_contents(s)) for s in map(load, SCHEMAS)]
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    root = load(schema)
    wrapper = {"$id": root["$id"], "$defs": root["$defs"], "$ref": f"#/$defs/{kind}"}
    return jsonschema.Draft202012Validator(wrapper, registry=registry)


def _check_numbers_and_depth(data: object) -> None:
    """NaN and infinities (which Python's json reads), numbers beyond a float, deep nesting."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise SchemaError(f"{_path(path)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(f"{_path(path)}: expected a finite number, got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**1024:
            digits = len(str(abs(value)))
            raise SchemaError(
                f"{_path(path)}: expected a number a float holds, got {digits} digits"
            )
        if isinstance(value, dict):
            stack += [(v, (*path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*path, i)) for i, v in enumerate(value)]


def _explain(error: ValidationError) -> str:
    where = _path(tuple(error.absolute_path)) or "the top level"
    value, keyword = error.instance, error.validator
    expected: Any = error.validator_value
    if keyword == "enum":
        allowed = ", ".join(repr(v) for v in expected)
        return f"{where}: expected one of {allowed}, got {_shown(value)}"
    if keyword == "const":
        return f"{where}: expected {expected!r}, got {_shown(value)}"
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"{where}: expected {names}, got {_shown(value)}"
    if keyword == "required" and isinstance(value, dict):
        missing = [k for k in expected if k not in value]
        return f"{where}: missing key {missing[0]!r}"
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(str(k) for k in value if k not in known)
        return f"{where}: unknown key {_text(extra[0]) if extra else '?'}"
    if keyword in ("minItems", "maxItems") and isinstance(value, list):
        bound = "at least" if keyword == "minItems" else "at most"
        return f"{where}: expected {bound} {expected} items, got {len(value)}"
    if keyword in ("minimum", "maximum"):
        bound = ">=" if keyword == "minimum" else "<="
        return f"{where}: expected a number {bound} {expected}, got {_shown(value)}"
    if keyword in ("minLength", "maxLength", "pattern"):
        what = {"minLength": "non-empty text", "maxLength": f"at most {expected} characters"}
        wanted = what.get(keyword, "a node path like 0.1.0")
        return f"{where}: expected {wanted}, got {_shown(value)}"
    if keyword == "oneOf":
        return f"{where}: expected {_one_of(expected)}, got {_shown(value)}"
    return f"{where}: {_ascii(error.message)}"


_TYPE_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "null",
}


def _one_of(options: list[dict[str, Any]]) -> str:
    names = []
    for option in options:
        ref, kind = option.get("$ref", ""), option.get("type")
        name = ref.rsplit("/", 1)[-1].replace("_", " ")
        names.append(name or _TYPE_NAMES.get(str(kind), str(kind)))
    return " or ".join(names)


def _path(path: tuple[str | int, ...]) -> str:
    """results[3].comparisons[0].outcome; an odd key as ["..."], escaped."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _KEY.fullmatch(part) and len(part) <= _SHOWN:
            out += f".{part}" if out else part
        else:
            out += f"[{_text(part)}]"
    return out


def _shown(value: object) -> str:
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _ascii(repr(value))


def _text(text: str) -> str:
    """Quoted, escaped to ASCII (no line breaks, no terminal controls) and shortened."""
    shown = ascii(text[:_SHOWN])
    return shown + ("…" if len(text) > _SHOWN else "")


def _ascii(text: str) -> str:
    return ascii(text[: _SHOWN * 2])[1:-1]
