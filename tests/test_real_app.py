"""What a real app needs: its own executables, migrations as setup, login, unique values per
request, and items that start from the same database whatever ran before them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHOPAPP = (Path(__file__).parent / "apps" / "shopapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

# A migration tool as apps have them: a program that reads DATABASE_URL and changes the schema.
MIGRATE = """
import asyncio, os, sys
import asyncpg
from shopapp import SCHEMA

async def main():
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    print("migrated", os.environ["DATABASE_URL"].rsplit("/", 1)[1])

asyncio.run(main())
"""

BUDGETS = """
version: 1
target:
  command: "uvicorn shopapp:app --port {{port}} --log-level warning"
  env: {{DATABASE_URL: "{{dsn}}"{env}}}
  login:
    request: POST /login
    json: {{user: {{email: a@example.com, password: "${{SHOP_PASSWORD:-hunter2}}"}}}}
  headers: {{Authorization: "Token {{login.user.token}}"}}
database:
  dsn: "{dsn}"{isolate}
  setup:
    - {{run: "python migrate.py", env: {{DATABASE_URL: "{{dsn}}"}}}}
defaults: {{requests: 40, concurrency: 4, warmup: 5}}
endpoints:
{endpoints}
queries:
  items:
    sql: SELECT id, title FROM items WHERE title LIKE 'item %' OR title LIKE 'new %'
    budget: {{execution_ms: 5s}}
"""


def _project(
    pytester: pytest.Pytester, dsn: str, endpoints: str, env: str = "", isolate: bool = True
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(shopapp=SHOPAPP)
    (pytester.path / "migrate.py").write_text(MIGRATE)
    pytester.makefile(
        ".yaml",
        budgets=BUDGETS.format(
            dsn=dsn,
            endpoints=endpoints,
            env=env,
            isolate="" if isolate else "\n  isolate: false",
        ),
    )


def _results(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, object]]:
    out = pytester.path / "results.json"
    result = pytester.runpytest("--perfgate", f"--perfgate-json={out}", *args)
    result.stdout.no_fnmatch_line("*Traceback*")
    return {r["name"]: r for r in json.loads(out.read_text())["results"]}


ME = "  me: {request: GET /me, budget: {error_rate: 0}}"
CREATE = """  create:
    request: POST /items
    json: {title: "new {seq} {uuid}"}
    expect_status: 201
    budget: {error_rate: 0}"""


def test_a_command_from_the_venv_is_found_without_activating_it(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `.venv/bin/pytest` runs it: the venv's bin is not on PATH, yet uvicorn and python are.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    _project(pytester, pg_server_dsn, ME)
    results = _results(pytester)
    assert results["me"]["status"] == "passed", results["me"]
    assert results["items"]["status"] == "passed", results["items"]


def test_login_token_is_sent_and_never_reported(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(pytester, pg_server_dsn, ME)
    out = pytester.path / "results.json"
    report = pytester.path / "report.md"
    result = pytester.runpytest(
        "--perfgate", f"--perfgate-json={out}", f"--perfgate-report={report}"
    )
    result.assert_outcomes(passed=2)
    data = json.loads(out.read_text())
    assert data["results"][0]["metrics"]["errors"]["value"] == 0
    for text in (out.read_text(), report.read_text(), result.stdout.str()):
        assert "tok-" not in text


def test_a_refused_login_fails_every_endpoint_with_what_the_server_said(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_PASSWORD", "letmein-please")
    _project(pytester, pg_server_dsn, ME + "\n  me-too: GET /me")
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*target.login: POST /login answered HTTP 422: "
            '{"errors": {"password": [[]"is wrong"]}}*',
            "*the target could not be started (the whole error is shown for me)*",
        ]
    )
    assert "letmein-please" not in result.stdout.str()


def test_login_values_from_headers_and_cookies_and_a_missing_path(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    endpoints = """  header:
    request: GET /me
    headers: {Authorization: "Token {login.headers.x-token}", X-Session: "{login.cookies.session}"}
    budget: {error_rate: 0}
  missing:
    request: GET /me
    headers: {Authorization: "Token {login.user.jwt}"}"""
    _project(pytester, pg_server_dsn, endpoints)
    results = _results(pytester)
    assert results["header"]["status"] == "passed", results["header"]
    assert results["missing"]["status"] == "error"
    assert results["missing"]["error"] == (
        "{login.user.jwt}: the JSON answer to POST /login has no 'jwt' at user "
        "(there: keys email, token)"
    )


def test_seq_and_uuid_are_new_for_every_request(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    seen = pytester.path / "seen.txt"
    _project(pytester, pg_server_dsn, CREATE, env=f', SHOPAPP_SEEN: "{seen}"')
    results = _results(pytester)
    assert results["create"]["status"] == "passed", results["create"]
    titles = seen.read_text().splitlines()
    # 5 sent one at a time to count statements, 5 warm-up, 40 timed: each accepted (201), none
    # a duplicate.
    assert len(titles) == 50
    assert len(set(titles)) == 50
    seqs = sorted(int(t.split()[1]) for t in titles)
    assert seqs == list(range(seqs[0], seqs[0] + 50))
    assert len({t.split()[2] for t in titles}) == 50


def test_a_query_sees_the_same_rows_whether_a_writing_endpoint_ran_before_it_or_not(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(pytester, pg_server_dsn, CREATE)
    alone = _results(pytester, "-k", "items")["items"]
    after = _results(pytester)
    assert after["create"]["status"] == "passed"
    for metric in ("rows", "buffers"):
        assert after["items"]["metrics"][metric] == alone["metrics"][metric], metric
    assert alone["metrics"]["rows"]["value"] == 2000
    # Without isolation the query would have seen the 50 rows the endpoint added.
    _project(pytester, pg_server_dsn, CREATE, isolate=False)
    assert _results(pytester)["items"]["metrics"]["rows"]["value"] == 2050


def test_a_failing_migration_shows_its_output_and_every_item_errors(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(pytester, pg_server_dsn, ME)
    (pytester.path / "migrate.py").write_text(
        "import sys\nprint('no such revision')\nsys.exit(3)\n"
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*database.setup[[]0[]]: 'python migrate.py' exited with code 3*",
            "*| no such revision*",
        ]
    )
    assert "the database could not be started (the whole error is shown for me)" in (
        result.stdout.str()
    )


def test_the_target_gets_the_launch_environment_not_the_tests(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a conftest.py (or pytest-env) sets for the tests does not reach the target.
    # setenv first, so the conftest's change below is undone after this test too.
    monkeypatch.setenv("SHOPAPP_SEEN", "")
    monkeypatch.delenv("SHOPAPP_SEEN")
    pytester.makeconftest("import os\nos.environ['SHOPAPP_SEEN'] = '/nonexistent/dir/seen.txt'\n")
    _project(pytester, pg_server_dsn, CREATE)
    results = _results(pytester)
    assert results["create"]["status"] == "passed", results["create"]
    assert os.environ["SHOPAPP_SEEN"] == "/nonexistent/dir/seen.txt"  # the tests did see it


def test_an_unknown_placeholder_or_login_without_target_login_is_a_budgets_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makefile(
        ".yaml",
        budgets="""
        version: 1
        target:
          base_url: http://127.0.0.1:9
          headers: {Authorization: "Token {login.user.token}"}
        endpoints:
          a: {request: "GET /x?id={seqq}{dsn}"}
        """,
    )
    result = pytester.runpytest("--perfgate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*target.headers.Authorization: {login.user.token} needs target.login*",
            "*endpoints.a.request: {dsn} cannot be used here*",
        ]
    )
