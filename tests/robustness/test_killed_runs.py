"""Nothing left behind, even by a run that was SIGKILLed: the next run (or `perfgate cleanup`)
removes what it started, says so, and touches nothing that is not perfgate's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import asyncpg
import pytest
from gitrepo import git, init_repo
from leftovers import alive, processes_mentioning, scratch_databases, stop_when_started

from perfgate.cli import main as perfgate_cli
from perfgate.system import ledger

TINYAPP = (Path(__file__).parent.parent / "apps" / "tinyapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notes directory of the test's own (inner runs and subprocesses inherit it)."""
    path = tmp_path / "runtime"
    monkeypatch.setenv("PERFGATE_RUNTIME_DIR", str(path))
    return path


def _budgets(database: str, pidfile: Path) -> str:
    return f"""
version: 1
target:
  command: "{sys.executable} -m uvicorn tinyapp:app --port {{port}} --log-level warning"
  env: {{TINYAPP_PIDFILE: "{pidfile}", DATABASE_URL: "{{dsn}}"}}
database: {{{database}setup: [schema.sql]}}
defaults: {{requests: 100000, concurrency: 1, warmup: 0}}
endpoints:
  slow: GET /slow
"""


def _project(pytester: pytest.Pytester, database: str) -> Path:
    pytester.makeini(INI)
    pytester.makepyfile(tinyapp=TINYAPP)
    (pytester.path / "schema.sql").write_text("CREATE TABLE t (id int);")
    pidfile = pytester.path / "target.pid"
    pytester.makefile(".yaml", budgets=_budgets(database, pidfile))
    return pidfile


def test_the_next_run_removes_a_killed_runs_target_and_database(
    pytester: pytest.Pytester, pg_server_dsn: str, notes: Path
) -> None:
    pidfile = _project(pytester, f'dsn: "{pg_server_dsn}", ')
    before = asyncio.run(scratch_databases(pg_server_dsn))
    stop_when_started(pytester.path, pidfile, signal.SIGKILL, pytester.mkdir("tmp"))
    target = int(pidfile.read_text())
    assert alive(target), "SIGKILL should have left the target running"
    left = asyncio.run(scratch_databases(pg_server_dsn)) - before
    assert len(left) == 2  # the database and its pristine copy

    # The next run, on anything: a budgets file with one quick endpoint.
    pytester.makefile(
        ".yaml",
        budgets='version: 1\ntarget: {app: "tinyapp:app"}\nendpoints: {fast: GET /fast}\n',
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "perfgate: removed the process group * (python*), left by an earlier perfgate run "
            "(pid *) that was killed",
            f"perfgate: removed the scratch database(s) {', '.join(sorted(left))} on "
            "127.0.0.1:*, left by an earlier perfgate run (pid *) that was killed",
        ]
    )
    assert not alive(target)
    assert asyncio.run(scratch_databases(pg_server_dsn)) == before
    assert list(notes.iterdir()) == []


def test_perfgate_cleanup_removes_a_killed_runs_embedded_server(
    pytester: pytest.Pytester, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pidfile = _project(pytester, "")
    tmpdir = pytester.mkdir("tmp")
    stop_when_started(pytester.path, pidfile, signal.SIGKILL, tmpdir)
    (root,) = [p for p in tmpdir.iterdir() if p.name.startswith("perfgate-pg-")]
    assert processes_mentioning(str(root)), "SIGKILL should have left the server running"

    assert perfgate_cli(["cleanup"]) == 0
    out = capsys.readouterr().out
    assert f"perfgate: removed an embedded PostgreSQL at {root} (" in out
    assert "perfgate: removed the process group" in out
    assert processes_mentioning(str(root)) == []
    assert not root.exists()
    assert not alive(int(pidfile.read_text()))

    assert perfgate_cli(["cleanup"]) == 0
    assert "nothing left behind by killed runs" in capsys.readouterr().out


def _dead_owner() -> dict[str, object]:
    """The owner field of a note whose process has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                           capture_output=True, check=True)  # fmt: skip
    return {"pid": int(child.stdout), "started": "gone"}


def _plant(notes: Path, name: str, **data: object) -> Path:
    notes.mkdir(parents=True, exist_ok=True)
    path = notes / name
    path.write_text(json.dumps(data))
    return path


def test_a_live_runs_notes_are_left_alone(notes: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        me = {"pid": os.getpid(), "started": ledger.start_time(os.getpid())}
        started = ledger.start_time(sleeper.pid)
        path = _plant(notes, "process-group-1-x.json", kind="process-group", owner=me,
                      pgid=sleeper.pid, started=started, command="sleep")  # fmt: skip
        assert ledger.sweep() == []
        assert sleeper.poll() is None
        assert path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_reused_process_group_id_is_not_killed(notes: Path) -> None:
    # The note's group id now belongs to a new group: its leader started at another time.
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        _plant(notes, "process-group-1-x.json", kind="process-group", owner=_dead_owner(),
               pgid=sleeper.pid, started="another-boot:1", command="sleep")  # fmt: skip
        assert ledger.sweep() == []
        assert sleeper.poll() is None
        assert list(notes.iterdir()) == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_database_without_perfgates_mark_is_not_dropped(notes: Path, pg_server_dsn: str) -> None:
    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin("CREATE DATABASE perfgate_not_ours"))
    try:
        _plant(notes, "database-1-x.json", kind="database", owner=_dead_owner(),
               server=pg_server_dsn, where="test", names=["perfgate_not_ours"],
               marker="perfgate scratch database of elsewhere")  # fmt: skip
        assert ledger.sweep() == []
        assert "perfgate_not_ours" in asyncio.run(scratch_databases(pg_server_dsn))
    finally:
        asyncio.run(admin("DROP DATABASE IF EXISTS perfgate_not_ours"))


def test_a_killed_runs_worktree_is_removed(notes: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a")
    worktree = tmp_path / "perfgate-base-x"
    git(repo, "worktree", "add", "--detach", str(worktree), "HEAD")
    _plant(notes, "worktree-1-x.json", kind="worktree", owner=_dead_owner(),
           repo=str(repo), path=str(worktree))  # fmt: skip
    (said,) = ledger.sweep()
    assert said.startswith(f"removed the git worktree {worktree}, left by an earlier perfgate run")
    assert not worktree.exists()
    assert git(repo, "worktree", "list").count("\n") == 0


def test_two_runs_sweeping_at_once_remove_each_resource_once(notes: Path) -> None:
    sleepers = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(5)]
    try:
        for i, s in enumerate(sleepers):
            _plant(notes, f"process-group-1-{i}.json", kind="process-group", owner=_dead_owner(),
                   pgid=s.pid, started=ledger.start_time(s.pid), command="sleep")  # fmt: skip
        said: list[str] = []
        threads = [threading.Thread(target=lambda: said.extend(ledger.sweep())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(said) == 5
        assert all(s.wait(timeout=10) is not None for s in sleepers)
    finally:
        for s in sleepers:
            if s.poll() is None:
                s.kill()
                s.wait()
