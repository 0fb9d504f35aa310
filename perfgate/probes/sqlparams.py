"""Query parameters from YAML: coerced to the types PostgreSQL inferred, or quoted as literals.

asyncpg binds typed values (a date column wants a ``datetime.date``, not a string), and
``EXPLAIN EXECUTE`` of a generic plan takes its parameters as SQL literals.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from perfgate.budgets.model import Query
from perfgate.exceptions import QueryError

_INTS = frozenset({"int2", "int4", "int8", "oid", "smallint", "integer", "bigint"})
_FLOATS = frozenset({"float4", "float8", "real", "double precision"})
_TEXTS = frozenset({"text", "varchar", "bpchar", "name", "character varying", "character"})
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


def coerce_params(query: Query, params: Sequence[Any], types: Sequence[str]) -> list[Any]:
    """YAML values as the Python types asyncpg encodes for the parameter types PostgreSQL chose.

    budgets.yaml writes a date as '2024-05-01' and a UUID as a string; asyncpg wants a
    ``date`` and a ``UUID``. Values that need no change pass through untouched.
    """
    check_count(query, len(types), len(params))
    out = []
    for i, (value, type_name) in enumerate(zip(params, types, strict=True), 1):
        try:
            if isinstance(value, list) and type_name.endswith("[]"):
                out.append([_coerce(v, type_name[:-2]) for v in value])
            else:
                out.append(_coerce(value, type_name))
        except (ValueError, InvalidOperation, TypeError) as exc:
            raise QueryError(
                f"query {query.name!r}: parameter ${i} ({type_name}): cannot use {value!r}: {exc}"
            ) from exc
    return out


def _coerce(value: Any, type_name: str) -> Any:
    """One scalar for one PostgreSQL type name (asyncpg's short names: int4, timestamptz)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _from_text(value, type_name)
    if type_name in _TEXTS and isinstance(value, (int, float, Decimal, dt.date, dt.time)):
        return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
    if type_name == "numeric" and isinstance(value, float):
        return Decimal(repr(value))
    if type_name in _INTS and isinstance(value, float) and value.is_integer():
        return int(value)
    if type_name in _FLOATS and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return float(value)
    if type_name in ("timestamp", "timestamptz") and type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    if type_name in ("json", "jsonb"):
        return json.dumps(value, default=str)
    return value


def _from_text(value: str, type_name: str) -> Any:
    if type_name == "date":
        return dt.date.fromisoformat(value)
    if type_name in ("timestamp", "timestamptz"):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if type_name in ("time", "timetz"):
        return dt.time.fromisoformat(value)
    if type_name in _INTS:
        return int(value)
    if type_name in _FLOATS:
        return float(value)
    if type_name == "numeric":
        return Decimal(value)
    if type_name == "uuid":
        return uuid.UUID(value)
    if type_name == "bool":
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("expected true or false")
    return value


def quote_literal(value: Any) -> str:
    """A SQL literal for EXECUTE's argument list; untyped ('...'), so PostgreSQL casts it.

    Strings use the E'' form with backslashes and quotes doubled, so the result does not
    depend on standard_conforming_strings. Lists become array literals ('{1,2}').
    TypeError for anything else.
    """
    if value is None:
        return "NULL"
    return _quote_text(_literal_text(value))


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise TypeError("PostgreSQL text cannot contain a NUL character")
        return value
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if item is None:
                items.append("NULL")
            elif isinstance(item, (list, tuple)):
                items.append(_literal_text(item))
            else:
                text = _literal_text(item).replace("\\", "\\\\").replace('"', '\\"')
                items.append(f'"{text}"')
        return "{" + ",".join(items) + "}"
    raise TypeError(
        f"cannot pass a {type(value).__name__} as a parameter: use a string, number, "
        "boolean, null, date or list"
    )


def _quote_text(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def literal(query: Query, index: int, value: Any) -> str:
    try:
        return quote_literal(value)
    except TypeError as exc:
        raise QueryError(f"query {query.name!r}: parameter ${index}: {exc}") from exc


def check_count(query: Query, expected: int, given: int) -> None:
    if expected != given:
        wanted = f"{expected} parameter{'s' if expected != 1 else ''}"
        dollars = f" (${', $'.join(str(i) for i in range(1, expected + 1))})" if expected else ""
        raise QueryError(
            f"query {query.name!r}: the SQL takes {wanted}{dollars}, but params gives {given}"
        )
