"""setup_sql keeps the measurement's rolled-back transaction and pinned settings, or says why not.

``;COMMIT AND CHAIN`` once passed silently: it committed what ran before it and started a new
transaction without perfgate's ``SET LOCAL statement_timeout``, so the run went on unbounded.
setup_sql was also interpolated like the rest of the file, which turned a ``$$`` body into ``$``.
"""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import asyncpg
import pytest

from perfgate.budgets import parse_config
from perfgate.budgets.model import Query
from perfgate.exceptions import ConfigError, QueryError
from perfgate.probes import postgres
from perfgate.probes.postgres import measure_query


def setup_sql_error(statement: str) -> str:
    text = (
        f"version: 1\nqueries:\n  q:\n    sql: SELECT 1\n    setup_sql: [{json.dumps(statement)}]\n"
    )
    with pytest.raises(ConfigError) as excinfo:
        parse_config(text, Path("budgets.yaml"), {})
    return str(excinfo.value)


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        (";COMMIT", "COMMIT (or END) is not allowed in setup_sql"),
        (";COMMIT AND CHAIN", "COMMIT AND CHAIN is not allowed in setup_sql"),
        ("-- first\nROLLBACK AND CHAIN", "ROLLBACK AND CHAIN is not allowed in setup_sql"),
        ("commit", "COMMIT (or END) is not allowed"),
        ("END", "COMMIT (or END) is not allowed"),
        ("/* no */ ABORT", "ROLLBACK (or ABORT) is not allowed"),
        ("BEGIN", "BEGIN is not allowed"),
        ("START TRANSACTION", "START TRANSACTION is not allowed"),
        ("SAVEPOINT s", "SAVEPOINT is not allowed"),
        ("RELEASE SAVEPOINT s", "RELEASE is not allowed"),
        ("ROLLBACK TO s", "ROLLBACK TO is not allowed"),
        ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION is not allowed"),
        ("RESET ALL", "RESET ALL would undo the settings perfgate pins for the run (jit, *)"),
        ("SET statement_timeout = 0", "statement_timeout is pinned by perfgate for the run*key)"),
        ("SET LOCAL jit = on", "jit is pinned by perfgate for the run and may not be changed here"),
        ("RESET plan_cache_mode", "plan_cache_mode is pinned by perfgate*"),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET SESSION CHARACTERISTICS sets later transactions' defaults*use SET TRANSACTION",
        ),
        ("SET LOCAL work_mem = '1MB'; COMMIT", "expected one SQL statement, got 2 (give each *"),
        ("SELEC 1", "cannot parse the SQL: syntax error at or near *"),
        ("-- nothing", "expected one SQL statement, got 0*"),
    ],
)
def test_transaction_control_is_refused_when_the_file_is_read(statement: str, says: str) -> None:
    message = setup_sql_error(statement)
    assert message.startswith("budgets.yaml:5: queries.q.setup_sql[0]: "), message
    assert fnmatch(message.split(": ", 2)[2], says + "*"), message


def test_setup_sql_is_not_interpolated() -> None:
    body = "DO $$ BEGIN PERFORM '${HOME}'; END $$"
    config = parse_config(
        f"version: 1\nqueries:\n  q: {{sql: SELECT 1, setup_sql: [{body!r}]}}\n",
        Path("budgets.yaml"),
        {"HOME": "/root"},
    )
    assert config.queries[0].setup_sql == (body,)


async def run(dsn: str, *setup: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await measure_query(conn, Query(name="q", sql="SELECT 1", runs=2, setup_sql=setup))
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_a_dollar_quoted_body_and_local_settings_run(pg_dsn: str) -> None:
    await run(pg_dsn, "DO $$ BEGIN PERFORM 1; END $$", "SET LOCAL work_mem = '8MB'")


@pytest.mark.asyncio
async def test_a_commit_inside_a_do_block_is_postgresqls_error(pg_dsn: str) -> None:
    with pytest.raises(QueryError, match=r"setup_sql\[0\]: invalid transaction termination"):
        await run(pg_dsn, "DO $$ BEGIN COMMIT; END $$")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "SELECT set_config('statement_timeout', '0', false)",
            r"setup_sql\[0\] changed statement_timeout from '30s' to '0'; perfgate pins it for "
            r"the run \(set the query's statement_timeout key\)",
        ),
        (
            "SELECT set_config('max_parallel_workers_per_gather', '4', true)",
            r"setup_sql\[0\] changed max_parallel_workers_per_gather from '0' to '4'",
        ),
    ],
)
async def test_a_pinned_setting_changed_where_no_parser_sees_fails_the_run(
    pg_dsn: str, statement: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        await run(pg_dsn, statement)


@pytest.mark.asyncio
async def test_a_chained_commit_is_caught_at_run_time_too(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the parser to miss one, the run sees its transaction change under it."""
    monkeypatch.setattr(postgres, "setup_sql_problem", lambda sql: None)
    with pytest.raises(QueryError, match=r"setup_sql\[0\] ended the transaction .* another"):
        await run(pg_dsn, "COMMIT AND CHAIN")
    with pytest.raises(QueryError, match=r"setup_sql\[0\] ended the transaction the run is"):
        await run(pg_dsn, "COMMIT")


@pytest.mark.asyncio
async def test_a_query_built_in_code_is_checked_before_it_runs(pg_dsn: str) -> None:
    with pytest.raises(QueryError, match=r"query 'q': setup_sql\[1\]: COMMIT AND CHAIN is not"):
        await run(pg_dsn, "SET LOCAL work_mem = '8MB'", ";COMMIT AND CHAIN")


def test_the_gate_fails_the_item_and_names_the_setting(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        database: {{dsn: "{pg_server_dsn}"}}
        defaults: {{runs: 2}}
        queries:
          sneaky:
            sql: SELECT 1
            setup_sql: ["SELECT set_config('statement_timeout', '0', false)"]
          fine:
            sql: SELECT 1
            setup_sql: ["SET LOCAL work_mem = '8MB'", "DO $$ BEGIN PERFORM 1; END $$"]
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*perfgate: query 'sneaky' (SELECT 1) could not be measured: setup_sql[[]0[]] changed "
            "statement_timeout from '30s' to '0'; perfgate pins it for the run*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
