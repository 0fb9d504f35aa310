"""Nothing left behind when a run is stopped, whatever it was doing: SIGINT (Ctrl-C) and SIGTERM
(`timeout`, `docker stop`, a cancelled CI job) during database setup, while the target starts,
while an endpoint is measured, while a query runs, and while the base commit's side of an
interleaved run is set up. Each case checks processes, scratch databases, the embedded server's
directory and the git worktree."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from gitrepo import git, init_repo
from leftovers import databases_of, processes_mentioning, queries_mentioning, stop_when_started

TINYAPP = (Path(__file__).parent.parent / "apps" / "tinyapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
UVICORN = f"{sys.executable} -m uvicorn tinyapp:app --port {{port}} --log-level warning"


SLEEPER = """import sys, time
open(sys.argv[1], "w").close()
time.sleep(120)
"""
TOUCH = 'import sys\nopen(sys.argv[1], "w").close()\n'

PHASES: dict[str, str] = {
    # phase -> budgets.yaml; {sleeper} says it started (the marker file), then sleeps
    "database setup": """
version: 1
target: {{app: "tinyapp:app"}}
database: {{{dsn}setup: [{{run: "{sleeper}"}}]}}
endpoints: {{fast: GET /fast}}
queries: {{one: {{sql: "SELECT 1"}}}}
""",
    "target start": """
version: 1
target:
  command: "{sleeper}"
  ready_timeout: 120s
database: {{{dsn}setup: [schema.sql]}}
queries: {{one: {{sql: "SELECT 1"}}}}
endpoints: {{fast: GET /fast}}
""",
    "measuring an endpoint": """
version: 1
target:
  command: "{uvicorn}"
  env: {{TINYAPP_PIDFILE: "{marker}", DATABASE_URL: "{{dsn}}"}}
database: {{{dsn}setup: [schema.sql]}}
defaults: {{requests: 100000, concurrency: 1, warmup: 0}}
endpoints: {{slow: GET /slow}}
""",
    "running a query": """
version: 1
database: {{{dsn}setup: [schema.sql, {{run: "{touch}"}}]}}
queries:
  sleepy: {{sql: "SELECT pg_sleep(120) /* {tag} */", runs: 1, statement_timeout: 120s}}
""",
}


def _left_in(tmpdir: Path) -> list[str]:
    """perfgate's temporary directories (servers, worktrees) and notes of what it holds; the
    notes directory itself stays (it is where a later run looks), empty."""
    notes = tmpdir / f"perfgate-{os.getuid()}"
    left = [p.name for p in tmpdir.iterdir() if p.name.startswith("perfgate-") and p != notes]
    return left + ([p.name for p in notes.iterdir()] if notes.is_dir() else [])


# SIGTERM in every phase on both servers; Ctrl-C where it lands in other code (a setup
# command's wait, an awaited query): elsewhere both take the same path.
CASES = [
    *((server, "SIGTERM", phase) for server in ("real", "embedded") for phase in PHASES),
    ("real", "SIGINT", "database setup"),
    ("real", "SIGINT", "running a query"),
]


@pytest.mark.parametrize(("server", "signame", "phase"), CASES)
def test_a_run_stopped_in_any_phase_leaves_nothing(
    pytester: pytest.Pytester, pg_server_dsn: str, server: str, signame: str, phase: str
) -> None:
    signum = signal.Signals[signame]
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP, sleeper=SLEEPER, touch=TOUCH)
    (pytester.path / "schema.sql").write_text("CREATE TABLE t (id int);")
    marker = pytester.path / "started"
    tag = f"perfgate-phase-{os.getpid()}-{abs(hash((phase, signum, server)))}"
    budgets = PHASES[phase].format(
        dsn=f'dsn: "{pg_server_dsn}", ' if server == "real" else "",
        sleeper=f"{sys.executable} sleeper.py {marker} {tag}",
        touch=f"{sys.executable} touch.py {marker}",
        uvicorn=UVICORN,
        marker=marker,
        tag=tag,
    )
    pytester.makefile(".yaml", budgets=budgets)
    tmpdir = pytester.mkdir("tmp")
    code, pid, out = stop_when_started(pytester.path, marker, signum, tmpdir)
    assert code == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out
    assert processes_mentioning(tag) == []
    assert processes_mentioning(str(tmpdir)) == []  # the embedded server and what it started
    assert _left_in(tmpdir) == []
    assert asyncio.run(databases_of(pg_server_dsn, pid)) == set()
    assert asyncio.run(queries_mentioning(pg_server_dsn, tag)) == []


def test_a_run_stopped_while_the_base_side_is_set_up_removes_the_worktree(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    """--perfgate-interleave: SIGTERM while the base commit's database setup runs."""
    path = pytester.path
    init_repo(path)
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP, sleeper=SLEEPER)
    marker = path / "base-started"
    tag = f"perfgate-base-{os.getpid()}"
    sleeper = f'{{run: "{sys.executable} sleeper.py {marker} {tag}"}}'
    budgets = f"""
version: 1
target: {{command: "{UVICORN}", env: {{DATABASE_URL: "{{dsn}}"}}}}
database:
  dsn: "{pg_server_dsn}"
  setup: [{sleeper}]
endpoints: {{fast: GET /fast}}
"""
    (path / "budgets.yaml").write_text(budgets)
    (path / ".gitignore").write_text("__pycache__/\nbase-started\ntmp/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    base = git(path, "rev-parse", "HEAD")
    # The branch's own setup is quick; only the base side sleeps.
    (path / "budgets.yaml").write_text(budgets.replace(f"setup: [{sleeper}]", "setup: []"))
    git(path, "commit", "-q", "-am", "branch")
    tmpdir = pytester.mkdir("tmp")
    interleave = f"--perfgate-interleave={base}"
    code, pid, out = stop_when_started(path, marker, signal.SIGTERM, tmpdir, [interleave])
    assert code == pytest.ExitCode.INTERRUPTED, out
    assert processes_mentioning(tag) == []
    assert _left_in(tmpdir) == []
    assert git(path, "worktree", "list").count("\n") == 0
    assert asyncio.run(databases_of(pg_server_dsn, pid)) == set()
