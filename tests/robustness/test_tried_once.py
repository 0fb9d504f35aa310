"""A target or database setup that fails is tried once per run, not once per item: the first
item shows the whole error, the others say so in one line."""

from __future__ import annotations

import sys

import pytest

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
COUNTER = (
    'import sys\nopen(sys.argv[1], "a").write("x")\nprint("no such table: guests")\nsys.exit(3)\n'
)


def test_a_failing_database_setup_runs_once_for_every_query(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(fail=COUNTER)
    count = pytester.path / "count"
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        database:
          dsn: "{pg_server_dsn}"
          setup: [{{run: "{sys.executable} fail.py {count}"}}]
        queries:
          a: {{sql: "SELECT 1"}}
          b: {{sql: "SELECT 2"}}
          c: {{sql: "SELECT 3"}}
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=3)
    assert count.read_text() == "x"
    # In a's failure only (the short summary, untruncated when CI is set, repeats a's message).
    failures = result.stdout.str().split("short test summary info")[0]
    assert failures.count("no such table: guests") == 1
    result.stdout.fnmatch_lines(
        [
            "*query 'b'*could not be measured: the database could not be started (the whole error "
            "is shown for a)*"
        ]
    )


def test_a_target_that_cannot_start_is_started_once(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(fail=COUNTER)
    count = pytester.path / "count"
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target: {{command: "{sys.executable} fail.py {count}"}}
        endpoints: {{a: GET /a, b: GET /b, c: GET /c}}
        """,
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=3)
    assert count.read_text() == "x"
    result.stdout.fnmatch_lines(["*exited with code 3 before it was ready*"])
