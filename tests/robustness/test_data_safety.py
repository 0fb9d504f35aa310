"""Nothing lost: a baseline comes only from a complete run, and every failure to keep one fails
the run.

Each case is one a tester saw lose a team's baseline or pass silently: Ctrl-C and SIGTERM during
``--perfgate-save``, an item that crashed, a partial selection over a complete record, an
unwritable report or store, a bad store spec, and many CI jobs pushing at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gitrepo import git, init_repo, webapp_source

from perfgate.baseline import BaselineRecord, GitRefStore
from perfgate.ci.notify import build_alert, skip_reason
from perfgate.report import read_json

BUDGETS = """
version: 1
target: {app: "webapp:app"}
defaults: {requests: 30, concurrency: 2, warmup: 2}
endpoints:
  a: GET /a
  b: GET /b
  c: GET /c
  d: GET /d
"""
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture
def repo(pytester: pytest.Pytester) -> pytest.Pytester:
    path = pytester.path
    init_repo(path)
    pytester.makeini(INI)
    (path / "webapp.py").write_text(webapp_source(0.001))
    (path / "budgets.yaml").write_text(BUDGETS)
    (path / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n*.json\n*.md\nconftest.py\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    return pytester


def stored(repo: pytest.Pytester) -> BaselineRecord | None:
    """HEAD's record in the default store."""
    return GitRefStore(repo.path).read(git(repo.path, "rev-parse", "HEAD"))


def names(record: BaselineRecord | None) -> list[str]:
    assert record is not None
    return sorted(r.name for r in record.results)


def save_complete(repo: pytest.Pytester) -> BaselineRecord:
    repo.runpytest("--perfgate", "--perfgate-save").assert_outcomes(passed=4)
    record = stored(repo)
    assert names(record) == ["a", "b", "c", "d"]
    assert record is not None
    return record


def interrupt_at(repo: pytest.Pytester, item: str) -> None:
    """A conftest.py that presses Ctrl-C as ``item`` starts (in-process, deterministic)."""
    repo.makeconftest(
        f"def pytest_runtest_setup(item):\n"
        f"    if item.name == {item!r}:\n"
        f"        raise KeyboardInterrupt\n"
    )


def test_ctrl_c_during_save_keeps_the_complete_baseline(repo: pytest.Pytester) -> None:
    before = save_complete(repo)
    interrupt_at(repo, "c")
    result = repo.runpytest(
        "--perfgate", "--perfgate-save", "--perfgate-json=out.json", no_reraise_ctrlc=True
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*INCOMPLETE (interrupted (Ctrl-C): 2 of 4 items measured)*",
            "*FAILED: baseline not saved: the run is incomplete*",
        ]
    )
    assert stored(repo) == before
    report = read_json(repo.path / "out.json")
    assert skip_reason(report, {}, only_on_failure=True, default_branch=None) is None
    assert "INCOMPLETE" in build_alert(report, {}, None).headline
    data = json.loads((repo.path / "out.json").read_text())
    assert data["status"] == "failed"
    assert data["completion"] == {
        "complete": False,
        "expected": 4,
        "measured": 2,
        "stopped": "interrupted (Ctrl-C)",
        "missing": ["c", "d"],
        "deselected": 0,
    }


def test_ctrl_c_before_anything_is_measured_saves_nothing(repo: pytest.Pytester) -> None:
    interrupt_at(repo, "a")
    result = repo.runpytest(
        "--perfgate", "--perfgate-save", "--perfgate-report=r.md", no_reraise_ctrlc=True
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert stored(repo) is None
    markdown = (repo.path / "r.md").read_text()
    assert "INCOMPLETE (interrupted (Ctrl-C): 0 of 4 items measured)" in markdown
    assert "✅" not in markdown.splitlines()[0] + markdown.splitlines()[1]


def test_sigterm_during_save_keeps_the_baseline_and_says_incomplete(repo: pytest.Pytester) -> None:
    before = save_complete(repo)
    started = repo.path / "b-started"
    # Slow "b" down so the signal lands while it is being measured.
    (repo.path / "budgets.yaml").write_text(
        BUDGETS.replace("b: GET /b", "b: {request: GET /work, requests: 100000, concurrency: 1}")
    )
    (repo.path / "webapp.py").write_text(webapp_source(0.002))
    repo.makeconftest(
        f"def pytest_runtest_setup(item):\n"
        f"    if item.name == 'b':\n"
        f"        open({str(started)!r}, 'w').close()\n"
    )
    env = {**os.environ, "PYTEST_ADDOPTS": "-p no:randomly"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--perfgate", "--perfgate-save", "--perfgate-json=o.json"],
        cwd=repo.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert started.exists(), "item b never started"
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED
    assert "INCOMPLETE (stopped by SIGTERM: 1 of 4 items measured)" in out
    assert "baseline not saved: the run is incomplete" in out
    assert stored(repo) == before
    completion = json.loads((repo.path / "o.json").read_text())["completion"]
    assert (completion["complete"], completion["stopped"]) == (False, "stopped by SIGTERM")


def test_exitfirst_stops_the_run_early_and_saves_nothing(repo: pytest.Pytester) -> None:
    (repo.path / "budgets.yaml").write_text(
        BUDGETS.replace("b: GET /b", "b: {request: GET /b, budget: {p50_ms: 0.001ms}}")
    )
    result = repo.runpytest("--perfgate", "--perfgate-save", "-x")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*INCOMPLETE (stopped early: stopping after 1 failures: 2 of 4 items measured)*"]
    )
    assert stored(repo) is None


def test_a_crashing_item_is_an_error_in_every_report_and_says_whose_bug(
    repo: pytest.Pytester,
) -> None:
    # A bug inside perfgate, planted: the verdict for "b" raises.
    repo.makeconftest(
        "import perfgate.gate as gate\n"
        "real = gate.endpoint_verdict\n"
        "def broken(endpoint, *args, **kwargs):\n"
        "    if endpoint.name == 'b':\n"
        "        raise ZeroDivisionError('planted')\n"
        "    return real(endpoint, *args, **kwargs)\n"
        "gate.endpoint_verdict = broken\n"
        "def pytest_unconfigure():\n"
        "    gate.endpoint_verdict = real\n"
    )
    result = repo.runpytest("--perfgate", "--perfgate-json=out.json", "--perfgate-report=r.md")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ZeroDivisionError: planted*",
            "*perfgate's own error, a bug in perfgate (not in your app or budgets file);"
            " please report it*",
        ]
    )
    data = json.loads((repo.path / "out.json").read_text())
    assert data["status"] == "failed"
    (b,) = [r for r in data["results"] if r["name"] == "b"]
    assert b["status"] == "error"
    assert "a bug in perfgate" in b["error"]
    assert "ZeroDivisionError: planted" in b["error"]
    assert (repo.path / "r.md").read_text().startswith("## ❌ perfgate: 1 error, 3 passed")
    # The alert goes out (it stayed silent when the item was missing from the results).
    report = read_json(repo.path / "out.json")
    assert skip_reason(report, {}, only_on_failure=True, default_branch=None) is None
    alert = build_alert(report, {}, None)
    assert alert.failed
    assert any("b: could not be measured: perfgate's own error" in line for line in alert.worst)


def test_a_partial_selection_does_not_replace_a_complete_record(repo: pytest.Pytester) -> None:
    before = save_complete(repo)
    result = repo.runpytest("--perfgate", "--perfgate-save", "budgets.yaml::a", "budgets.yaml::b")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*FAILED: baseline not saved to git ref refs/heads/perfgate-baselines: this run "
            "measured 2 item(s) and left 2 unselected*also has results for 'c', 'd'*"
        ]
    )
    assert stored(repo) == before


def test_a_partial_selection_is_saved_when_it_replaces_nothing(repo: pytest.Pytester) -> None:
    result = repo.runpytest("--perfgate", "--perfgate-save", "budgets.yaml::a", "budgets.yaml::b")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    assert names(stored(repo)) == ["a", "b"]
    # The whole file later replaces it, with nothing lost.
    save_complete(repo)


def test_replacing_a_record_with_fewer_items_says_what_it_drops(repo: pytest.Pytester) -> None:
    save_complete(repo)
    (repo.path / "budgets.yaml").write_text(BUDGETS.replace("  d: GET /d\n", ""))
    result = repo.runpytest("--perfgate", "--perfgate-save")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*replaced a record that also had results for 'd'*"])
    assert names(stored(repo)) == ["a", "b", "c"]


def test_a_baseline_that_cannot_be_stored_fails_the_run(repo: pytest.Pytester) -> None:
    # Another process holds the ref's lock: every compare-and-swap fails.
    lock = repo.path / ".git" / "refs" / "heads" / "perfgate-baselines.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    result = repo.runpytest("--perfgate", "--perfgate-save")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*FAILED: baseline not saved to git ref refs/heads/perfgate-baselines: could not update*"]
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gti", "unknown baseline store 'gti': expected 'git'*"),
        ("dir:", "*'dir:' needs a directory after the colon*"),
        ("git:bad..ref", "'bad..ref' is not a valid git ref name*"),
        ("dir:webapp.py/store", "*webapp.py is not a directory"),
    ],
)
def test_a_store_that_cannot_work_is_a_usage_error_before_measuring(
    repo: pytest.Pytester, spec: str, expected: str
) -> None:
    result = repo.runpytest("--perfgate", "--perfgate-save", f"--perfgate-store={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--perfgate-store={spec}: {expected}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_report_that_cannot_be_written_fails_the_run_and_the_baseline_is_still_saved(
    repo: pytest.Pytester,
) -> None:
    repo.makeini(INI + "filterwarnings = error\n")
    # The path was fine when the run began (a flag naming a bad path is a usage error); then
    # something took its directory's place, as a full or read-only disk would.
    repo.makeconftest("def pytest_collection_finish(session):\n    open('gone', 'w').close()\n")
    result = repo.runpytest(
        "--perfgate", "--perfgate-save", "--perfgate-json=gone/out.json", "--perfgate-report=r.md"
    )
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED: could not write the JSON results to */gone/out.json:*"])
    assert (repo.path / "r.md").exists()
    assert names(stored(repo)) == ["a", "b", "c", "d"]


def test_twenty_concurrent_pushers_lose_nothing(tmp_path: Path) -> None:
    """20 CI jobs, each with its own clone and commit, push baselines to one remote at once."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    seed.mkdir()
    init_repo(seed)
    (seed / "app.py").write_text("x = 0\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "remote", "add", "origin", str(origin))
    git(seed, "push", "-q", "origin", "main")
    jobs = []
    for i in range(20):
        clone = tmp_path / f"job{i}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        init_repo_identity(clone)
        (clone / "app.py").write_text(f"x = {i + 1}\n")
        git(clone, "commit", "-q", "-am", f"job {i}")
        jobs.append(clone)
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []
    shas: list[str] = []

    def job(clone: Path) -> None:
        sha = git(clone, "rev-parse", "HEAD")
        shas.append(sha)
        store = GitRefStore(clone)
        record = BaselineRecord(
            commit=sha,
            commit_date="2026-12-01T00:00:00+00:00",
            created_at="2026-12-01T00:00:00+00:00",
            perfgate_version="test",
        )
        store.write(record)
        barrier.wait(timeout=60)
        try:
            store.push()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(clone,)) for clone in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    listed = git(origin, "ls-tree", "-r", "--name-only", "perfgate-baselines", "baselines")
    assert sorted(Path(line).stem for line in listed.splitlines()) == sorted(shas)


def init_repo_identity(path: Path) -> None:
    git(path, "config", "user.email", "ci@example.com")
    git(path, "config", "user.name", "CI")
