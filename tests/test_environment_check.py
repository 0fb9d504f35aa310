"""The stored-baseline timing comparison is judged on a pull request that changes the schema,
and not judged, saying why, when the data an item reads changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
SCHEMA = """
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);
INSERT INTO orders (customer, total) SELECT 'c' || (g % 100), g FROM generate_series(1, 2000) g;
CREATE TABLE audit (id serial PRIMARY KEY, note text);
INSERT INTO audit (note) SELECT 'n' FROM generate_series(1, 10);
"""


def _run(pytester: pytest.Pytester, dsn: str, extra: str, *args: str) -> dict[str, Any]:
    pytester.makeini(INI)
    (pytester.path / "schema.sql").write_text(SCHEMA)
    (pytester.path / "extra.sql").write_text(extra or "SELECT 1;")
    pytester.makefile(
        ".yaml",
        budgets=f"""
version: 1
database:
  dsn: "{dsn}"
  setup: [schema.sql, extra.sql]
queries:
  totals:
    sql: SELECT sum(total) FROM orders WHERE customer = 'c7'
    runs: 15
""",
    )
    pytester.runpytest("--perfgate", "--perfgate-json=out.json", *args)
    (result,) = json.loads((pytester.path / "out.json").read_text())["results"]
    return dict(result)


def _timing(result: dict[str, Any]) -> dict[str, Any]:
    (c,) = [c for c in result["comparisons"] if c["metric"] == "execution_ms"]
    return dict(c)


def test_an_index_or_a_new_table_on_the_branch_still_gets_timings_judged(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _run(pytester, pg_server_dsn, "")
    (pytester.path / "out.json").rename(pytester.path / "base.json")
    migration = (
        "CREATE INDEX orders_total_idx ON orders (total);\n"
        "CREATE TABLE coupons (id serial PRIMARY KEY, code text);\n"
        "INSERT INTO audit (note) SELECT 'more' FROM generate_series(1, 50);\n"
    )
    now = _run(pytester, pg_server_dsn, migration, "--perfgate-compare=base.json")
    assert "not judged" not in _timing(now)["reason"], _timing(now)["reason"]


def test_more_rows_in_a_table_the_query_reads_is_said_and_not_judged(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _run(pytester, pg_server_dsn, "")
    (pytester.path / "out.json").rename(pytester.path / "base.json")
    more = "INSERT INTO orders (customer, total) SELECT 'c1', g FROM generate_series(1, 2000) g;"
    now = _run(pytester, pg_server_dsn, more, "--perfgate-compare=base.json")
    timing = _timing(now)
    assert timing["outcome"] == "inconclusive"
    assert "not judged: the environment differs" in timing["reason"]
    assert "table_rows.orders: 2000 -> 4000" in timing["reason"]
