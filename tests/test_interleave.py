"""Interleaved A/B: the base commit's server measured beside the branch's, in one run."""

from __future__ import annotations

import json
import sys

import pytest
from gitrepo import git, init_repo, webapp_source

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
