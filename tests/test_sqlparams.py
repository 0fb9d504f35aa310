"""YAML parameter values as the types PostgreSQL asked for, and as SQL literals."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

from perfgate.budgets.model import Query
from perfgate.exceptions import QueryError
from perfgate.probes.sqlparams import check_count, coerce_params, literal, quote_literal

Q = Query(name="q", sql="SELECT $1")
UID = "8c1a2b3c-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("2026-06-13", "date", dt.date(2026, 6, 13)),
        (
            "2026-06-13T10:00:00Z",
            "timestamptz",
            dt.datetime(2026, 6, 13, 10, tzinfo=dt.timezone.utc),
        ),
        (dt.date(2026, 6, 13), "timestamp", dt.datetime(2026, 6, 13)),
        ("10:30:00", "time", dt.time(10, 30)),
        ("42", "int4", 42),
        (42.0, "int8", 42),
        ("2.5", "float8", 2.5),
        (3, "float4", 3.0),
        ("1.10", "numeric", Decimal("1.10")),
        (0.1, "numeric", Decimal("0.1")),
        (UID, "uuid", uuid.UUID(UID)),
        ("yes", "bool", True),
        ("off", "bool", False),
        (7, "text", "7"),
        (dt.date(2026, 6, 13), "varchar", "2026-06-13"),
        ({"a": [1, 2]}, "jsonb", '{"a": [1, 2]}'),
        (None, "int4", None),
        ("plain", "text", "plain"),
    ],
)
def test_values_become_the_type_postgresql_asked_for(
    value: object, type_name: str, expected: object
) -> None:
    assert coerce_params(Q, [value], [type_name]) == [expected]


def test_a_list_for_an_array_parameter_is_coerced_item_by_item() -> None:
    assert coerce_params(Q, [["1", 2]], ["int4[]"]) == [[1, 2]]


@pytest.mark.parametrize(
    ("value", "type_name", "message"),
    [
        ("soon", "date", r"parameter \$1 \(date\): cannot use 'soon'"),
        ("maybe", "bool", r"parameter \$1 \(bool\): cannot use 'maybe': expected true or false"),
        ("x", "int4", r"parameter \$1 \(int4\): cannot use 'x'"),
    ],
)
def test_a_value_that_cannot_be_that_type_names_the_parameter(
    value: object, type_name: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        coerce_params(Q, [value], [type_name])


def test_the_number_of_parameters_must_match() -> None:
    with pytest.raises(
        QueryError, match=r"the SQL takes 2 parameters \(\$1, \$2\), but params gives 1"
    ):
        check_count(Q, 2, 1)
    with pytest.raises(QueryError, match="the SQL takes 0 parameters, but params gives 1"):
        check_count(Q, 0, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "E'true'"),
        (42, "E'42'"),
        (math.nan, "E'NaN'"),
        (-math.inf, "E'-Infinity'"),
        (1.5, "E'1.5'"),
        ("O'Brien \\ co", "E'O''Brien \\\\ co'"),
        (dt.date(2026, 6, 13), "E'2026-06-13'"),
        ([1, None, 'a"b', [2, 3]], 'E\'{"1",NULL,"a\\\\"b",{"2","3"}}\''),
    ],
)
def test_literals_for_generic_plans(value: object, expected: str) -> None:
    assert quote_literal(value) == expected


def test_what_cannot_be_a_literal_is_a_query_error() -> None:
    with pytest.raises(QueryError, match=r"parameter \$1: PostgreSQL text cannot contain a NUL"):
        literal(Q, 1, "a\x00b")
    with pytest.raises(QueryError, match=r"parameter \$2: cannot pass a dict as a parameter"):
        literal(Q, 2, {"a": 1})
