"""What perfgate starts it stops (target process, scratch database); what breaks is reported."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from leftovers import alive, scratch_databases

TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_command_target_is_started_on_a_free_port_and_stopped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makeini(INI)
    pidfile = pytester.path / "server.pid"
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target:
          command: "{sys.executable} -m uvicorn tinyapp:app --port {{port}} --log-level warning"
          env: {{TINYAPP_PIDFILE: "{pidfile}"}}
        defaults: {{requests: 30, concurrency: 2, warmup: 2}}
        endpoints:
          fast: {{request: GET /fast, budget: {{p99_ms: 2s}}}}
          broken: {{request: GET /broken, budget: {{error_rate: 0}}}}
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*error_rate 100.0%*> limit 0.0%*", "*HTTP 503*"])
    pid = int(pidfile.read_text())
    assert not alive(pid), "the target process outlived the run"


def test_a_target_that_dies_is_reported_with_its_output(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target:
          command: "{sys.executable} -c 'import sys; print(\\"cannot bind\\"); sys.exit(3)'"
          ready_timeout: 5s
        endpoints:
          a: GET /a
          b: GET /b
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*could not be measured*exit*3*", "*cannot bind*"])
    assert "Traceback" not in result.stdout.str()


def test_a_dead_base_url_is_an_item_error_not_a_crash(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {base_url: "http://127.0.0.1:9", ready_timeout: 300ms,
                 headers: {Authorization: "Bearer sup3r-s3cret"}}
        endpoints:
          a: GET /a
        """,
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perfgate: endpoint 'a' (GET /a) could not be measured*"])
    assert "sup3r-s3cret" not in result.stdout.str()
    assert "sup3r-s3cret" not in (pytester.path / "out.json").read_text()


def test_database_password_never_appears(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makefile(
        ".yaml",
        budgets="""
        version: 1
        database: {dsn: "postgresql://gate:hunter2-pw@127.0.0.1:9/postgres"}
        queries:
          q: {sql: SELECT 1}
        """,
    )
    result = pytester.runpytest(
        "--perfgate", "--perfgate-json=out.json", "--perfgate-report=out.md"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not be measured*gate:***@127.0.0.1:9*"])
    for text in (result.stdout.str(), (pytester.path / "out.json").read_text()):
        assert "hunter2-pw" not in text
    assert "hunter2-pw" not in (pytester.path / "out.md").read_text()


def test_the_scratch_database_is_dropped(pytester: pytest.Pytester, pg_server_dsn: str) -> None:
    pytester.makeini(INI)
    (pytester.path / "schema.sql").write_text(
        "CREATE TABLE t (id int PRIMARY KEY, v text);"
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;"
    )
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        database: {{dsn: "{pg_server_dsn}", setup: [schema.sql]}}
        queries:
          one: {{sql: "SELECT v FROM t WHERE id = $1", params: [7]}}
        """,
    )
    before = asyncio.run(scratch_databases(pg_server_dsn))
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1)
    assert asyncio.run(scratch_databases(pg_server_dsn)) == before


def test_a_server_that_refuses_create_database_gets_a_clear_message(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    async def make_role() -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(
                "DO $$ BEGIN IF NOT EXISTS "
                "(SELECT FROM pg_roles WHERE rolname = 'perfgate_nocreate') "
                "THEN CREATE ROLE perfgate_nocreate LOGIN NOCREATEDB; END IF; END $$"
            )
        finally:
            await conn.close()

    asyncio.run(make_role())
    parts = urlsplit(pg_server_dsn)
    netloc = "perfgate_nocreate@" + parts.netloc.rpartition("@")[2]
    dsn = urlunsplit(parts._replace(netloc=netloc))
    pytester.makeini(INI)
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        database: {{dsn: "{dsn}"}}
        queries:
          q: {{sql: SELECT 1}}
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*refused CREATE DATABASE*needs a role with CREATEDB*"])
