"""Interleaved A/B: the base commit's server measured beside the branch's, in one run."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from gitrepo import git, init_repo, webapp_source
from leftovers import processes_mentioning, scratch_databases

BUDGETS = f"""
version: 1
target:
  command: "{sys.executable} -m uvicorn webapp:app --port {{port}} --log-level warning"
  ready: /work
defaults: {{requests: 120, concurrency: 4, warmup: 5}}
endpoints:
  work: {{request: GET /work, budget: {{p99_ms: 2s}}}}
"""


@pytest.fixture
def repo(pytester: pytest.Pytester) -> pytest.Pytester:
    path = pytester.path
    init_repo(path)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (path / "webapp.py").write_text(webapp_source(0.004))
    (path / "budgets.yaml").write_text(BUDGETS)
    (path / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n*.json\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    git(path, "checkout", "-q", "-b", "feature")
    return pytester


def test_a_slower_branch_is_a_regression_against_the_base_measured_alongside(
    repo: pytest.Pytester,
) -> None:
    base = git(repo.path, "rev-parse", "HEAD")
    (repo.path / "webapp.py").write_text(webapp_source(0.012))
    git(repo.path, "commit", "-q", "-am", "three times slower")
    result = repo.runpytest("--perfgate", "--perfgate-interleave=main", "--perfgate-json=out.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*regressed against the baseline*", "*regression in server_p95_ms*"]
    )
    data = json.loads((repo.path / "out.json").read_text())
    assert data["baseline"]["commit"] == base
    assert "alternating blocks" in data["baseline"]["how"]
    assert data["results"][0]["rounds"]["mode"] == "interleaved"
    assert data["results"][0]["rounds"]["blocks"] == 6
    # the base commit's checkout is gone afterwards
    assert git(repo.path, "worktree", "list").count("\n") == 0


def test_an_unchanged_branch_passes(repo: pytest.Pytester) -> None:
    (repo.path / "NOTES.md").write_text("docs only\n")
    git(repo.path, "add", "NOTES.md")
    git(repo.path, "commit", "-q", "-m", "docs")
    result = repo.runpytest("--perfgate", "--perfgate-interleave=main", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1)
    data = json.loads((repo.path / "out.json").read_text())
    outcomes = {c["metric"]: c["outcome"] for c in data["results"][0]["comparisons"]}
    assert outcomes["server_p95_ms"] in ("unchanged", "inconclusive", "improvement")


def test_interleave_needs_a_real_commit_and_no_compare(repo: pytest.Pytester) -> None:
    result = repo.runpytest("--perfgate", "--perfgate-interleave=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfgate-interleave=nope: no such commit*"])
    result = repo.runpytest("--perfgate", "--perfgate-interleave=main", "--perfgate-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_base_side_that_cannot_start_leaves_nothing_and_is_said_once(
    repo: pytest.Pytester, pg_server_dsn: str
) -> None:
    # The base commit's server command names an app that does not exist, so its side cannot
    # start; the
    # branch's three endpoints pass on their budgets, interleaving stops after the first (said
    # once), and nothing of the base side (worktree, server, database) is left behind.
    budgets = BUDGETS.replace("endpoints:", f'database: {{dsn: "{pg_server_dsn}"}}\nendpoints:')
    budgets += "  two: {request: GET /work}\n  three: {request: GET /work}\n"
    (repo.path / "budgets.yaml").write_text(budgets.replace("webapp:app", "webapp:nope"))
    git(repo.path, "commit", "-q", "-am", "a base that cannot start")
    base = git(repo.path, "rev-parse", "HEAD")
    (repo.path / "budgets.yaml").write_text(budgets)
    git(repo.path, "commit", "-q", "-am", "fixed")
    before = asyncio.run(scratch_databases(pg_server_dsn))
    result = repo.runpytest(
        "--perfgate", f"--perfgate-interleave={base}", "--perfgate-json=out.json"
    )
    result.assert_outcomes(passed=3)
    text = result.stdout.str()
    assert text.count("not interleaved:") == 1, text
    assert "exited with code 3 before it was ready" in text
    data = json.loads((repo.path / "out.json").read_text())
    assert data["baseline"]["found"] is False
    assert all(r["comparisons"] == [] for r in data["results"])
    assert git(repo.path, "worktree", "list").count("\n") == 0
    assert asyncio.run(scratch_databases(pg_server_dsn)) == before
    assert not [p for p in processes_mentioning("perfgate-base-") if "uvicorn" in p]


def test_a_base_commit_without_the_budgets_file_is_said(repo: pytest.Pytester) -> None:
    git(repo.path, "mv", "budgets.yaml", "perf.yaml")
    git(repo.path, "commit", "-q", "-m", "renamed")
    first = git(repo.path, "rev-list", "--max-parents=0", "HEAD")
    git(repo.path, "mv", "perf.yaml", "budgets.yaml")
    git(repo.path, "commit", "-q", "-m", "back")
    git(repo.path, "checkout", "-q", first)  # budgets.yaml exists here
    git(repo.path, "checkout", "-q", "feature")
    renamed = git(repo.path, "rev-parse", "HEAD~1")
    result = repo.runpytest("--perfgate", f"--perfgate-interleave={renamed}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"*not interleaved: budgets.yaml does not exist at {renamed[:10]}: nothing to compare*"]
    )
    assert git(repo.path, "worktree", "list").count("\n") == 0
