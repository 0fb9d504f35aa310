"""Query items from budgets.yaml, as a user runs them: gated, isolated, never changing data."""

from __future__ import annotations

import pytest

SCHEMA = """
CREATE TABLE guests (id int PRIMARY KEY, wedding_id int NOT NULL, name text NOT NULL);
INSERT INTO guests SELECT g, g % 500, 'guest ' || g FROM generate_series(1, 20000) g;
CREATE INDEX guests_wedding_idx ON guests (wedding_id);
"""

BUDGETS = """
version: 1
database: {{dsn: "{dsn}", setup: [schema.sql{extra}]}}
defaults: {{runs: 5}}
queries:
  by-wedding:
    sql: SELECT id, name FROM guests WHERE wedding_id = $1
    params: [42]
    require_index: true
    budget: {{max_buffers: 60, no_seq_scan: true, execution_ms: 500}}
  purge:
    sql: DELETE FROM guests WHERE wedding_id = $1
    params: [7]
    budget: {{execution_ms: 1s}}
  broken:
    sql: SELEC id FROM guests
  missing-param:
    sql: SELECT id FROM guests WHERE id = $1
"""

CHECK = """
import asyncpg, pytest

@pytest.mark.asyncio
async def test_rows_are_untouched(perfgate_dsn):
    conn = await asyncpg.connect(perfgate_dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM guests WHERE wedding_id = 7")
        digest = await conn.fetchval(
            "SELECT md5(string_agg(id || ':' || wedding_id || ':' || name, ',' ORDER BY id)) "
            "FROM guests"
        )
    finally:
        await conn.close()
    assert count == 40
    assert digest == {digest!r}
"""


@pytest.fixture
def project(pytester: pytest.Pytester, pg_server_dsn: str) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (pytester.path / "schema.sql").write_text(SCHEMA)
    (pytester.path / "drop_index.sql").write_text("DROP INDEX guests_wedding_idx;")
    pytester.makefile(".yaml", budgets=BUDGETS.format(dsn=pg_server_dsn, extra=""))
    return pytester


def _digest(pg_dsn: str) -> str:
    import asyncio

    import asyncpg

    async def run() -> str:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("DROP TABLE IF EXISTS guests")
            await conn.execute(SCHEMA)
            value = await conn.fetchval(
                "SELECT md5(string_agg(id || ':' || wedding_id || ':' || name, ',' ORDER BY id)) "
                "FROM guests"
            )
            await conn.execute("DROP TABLE guests")
            return str(value)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_queries_are_gated_and_broken_ones_are_errors(
    project: pytest.Pytester, pg_dsn: str
) -> None:
    project.makepyfile(test_check=CHECK.format(digest=_digest(pg_dsn)))
    result = project.runpytest(
        "--perfgate",
        "budgets.yaml",
        "test_check.py",
        "-p",
        "asyncio",
        "-v",
        "--perfgate-json=r.json",
    )
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*budgets.yaml::by-wedding PASSED*",
            "*budgets.yaml::purge PASSED*",
            "*budgets.yaml::broken FAILED*",
            "*budgets.yaml::missing-param FAILED*",
            "*test_check.py::test_rows_are_untouched PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(["*query 'broken'*could not be measured*syntax error*"])
    result.stdout.fnmatch_lines(["*query 'missing-param'*could not be measured*parameter*"])


def test_a_dropped_index_turns_the_query_red(project: pytest.Pytester, pg_server_dsn: str) -> None:
    project.makefile(".yaml", budgets=BUDGETS.format(dsn=pg_server_dsn, extra=", drop_index.sql"))
    result = project.runpytest("--perfgate", "-k", "by-wedding")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*query 'by-wedding'*is over budget*",
            "*max_buffers 128 > limit 60*",
            "*no_seq_scan: Seq Scan on guests*",
            "*guests*wedding_id*",
        ]
    )
