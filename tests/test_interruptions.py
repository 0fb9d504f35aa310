"""Stopping a run from outside (Ctrl-C, SIGTERM, SIGHUP) leaves no process, database or data
directory behind; a target that cannot start is tried once, and says why at once."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from leftovers import alive, processes_mentioning, scratch_databases, stop_when_started

TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def _budgets(database: str, pidfile: Path) -> str:
    return f"""
version: 1
target:
  command: "{sys.executable} -m uvicorn tinyapp:app --port {{port}} --log-level warning"
  env: {{TINYAPP_PIDFILE: "{pidfile}"}}
database: {{{database}setup: [schema.sql]}}
defaults: {{requests: 100000, concurrency: 1, warmup: 0}}
endpoints:
  slow: GET /slow
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_run_leaves_nothing_on_the_server(
    pytester: pytest.Pytester, pg_server_dsn: str, signum: int
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP)
    (pytester.path / "schema.sql").write_text("CREATE TABLE t (id int);")
    pidfile = pytester.path / "target.pid"
    pytester.makefile(".yaml", budgets=_budgets(f'dsn: "{pg_server_dsn}", ', pidfile))
    before = asyncio.run(scratch_databases(pg_server_dsn))
    tmpdir = pytester.mkdir("tmp")
    code = stop_when_started(pytester.path, pidfile, signum, tmpdir).code
    assert code == pytest.ExitCode.INTERRUPTED
    assert not alive(int(pidfile.read_text())), "the target outlived the run"
    assert asyncio.run(scratch_databases(pg_server_dsn)) == before


def test_a_stopped_run_leaves_no_embedded_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP)
    (pytester.path / "schema.sql").write_text("CREATE TABLE t (id int);")
    pidfile = pytester.path / "target.pid"
    pytester.makefile(".yaml", budgets=_budgets("", pidfile))
    tmpdir = pytester.mkdir("tmp")
    code = stop_when_started(pytester.path, pidfile, signal.SIGTERM, tmpdir).code
    assert code == pytest.ExitCode.INTERRUPTED
    assert not alive(int(pidfile.read_text()))
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("perfgate-pg-")] == []
    assert processes_mentioning(str(tmpdir)) == []


def test_a_ready_path_that_answers_404_fails_at_once_and_only_once(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP)
    starts = pytester.path / "starts.txt"
    # Records each start, then serves tinyapp, which answers 404 at /nowhere.
    (pytester.path / "serve.py").write_text(
        f"import sys, uvicorn\nopen({str(starts)!r}, 'a').write('x')\n"
        "uvicorn.run('tinyapp:app', port=int(sys.argv[1]), log_level='warning')\n"
    )
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target:
          command: "{sys.executable} serve.py {{port}}"
          ready: /nowhere
          ready_timeout: 30s
        endpoints:
          a: GET /fast
          b: GET /fast
          c: GET /fast
        """,
    )
    started = time.monotonic()
    result = pytester.runpytest("--perfgate")
    assert time.monotonic() - started < 15  # not 3 x 30 s of waiting
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        ["*target.ready: GET /nowhere answered HTTP 404 (the server is up, but nothing answers*"]
    )
    assert starts.read_text() == "x"


def test_error_responses_are_summarised_with_what_the_server_said(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {app: "tinyapp:app"}
        defaults: {requests: 20, concurrency: 2, warmup: 0}
        endpoints:
          broken: GET /broken
        """,
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(failed=1)  # every request failed: fails even without an error_rate
    result.stdout.fnmatch_lines(['ERRORS     broken: HTTP 503 ×20: {"error": "down"}'])
