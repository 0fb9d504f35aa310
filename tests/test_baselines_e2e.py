"""Baselines as a team uses them: save on main, compare on a branch, in a real git repository."""

from __future__ import annotations

import json

import pytest
from gitrepo import git, init_repo, webapp_source

BUDGETS = """
version: 1
target: {app: "webapp:app"}
defaults: {requests: 200, concurrency: 4, warmup: 5}
endpoints:
  work:
    request: GET /work
    budget: {p99_ms: 2s}
    regression: {metric: p95, threshold: 10%, confidence: 0.99}
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
    return pytester


def _branch(repo: pytest.Pytester, delay: float) -> None:
    git(repo.path, "checkout", "-q", "-b", f"feature-{delay}")
    (repo.path / "webapp.py").write_text(webapp_source(delay))
    git(repo.path, "commit", "-q", "-am", f"delay {delay}")


def test_a_slowdown_on_a_branch_is_a_regression_naming_the_baseline(repo: pytest.Pytester) -> None:
    saved = repo.runpytest("--perfgate", "--perfgate-save")
    saved.assert_outcomes(passed=1)
    base_sha = git(repo.path, "rev-parse", "HEAD")
    saved.stdout.fnmatch_lines([f"*baseline for {base_sha[:10]} saved to*"])
    assert git(repo.path, "status", "--porcelain") == ""

    _branch(repo, 0.012)  # three times slower
    result = repo.runpytest("--perfgate", "--perfgate-compare", "--perfgate-json=out.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*regression in server_p95_ms*", f"*{base_sha[:7]}*"])
    data = json.loads((repo.path / "out.json").read_text())
    assert data["baseline"]["commit"] == base_sha
    assert "merge-base" in data["baseline"]["how"]
    (work,) = data["results"]
    outcomes = {c["metric"]: c["outcome"] for c in work["comparisons"]}
    assert outcomes["server_p95_ms"] == "regression"


def test_an_unchanged_branch_passes(repo: pytest.Pytester) -> None:
    repo.runpytest("--perfgate", "--perfgate-save").assert_outcomes(passed=1)
    git(repo.path, "checkout", "-q", "-b", "docs")
    (repo.path / "NOTES.md").write_text("no code change\n")
    git(repo.path, "add", "NOTES.md")
    git(repo.path, "commit", "-q", "-m", "docs")
    result = repo.runpytest("--perfgate", "--perfgate-compare", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1)
    data = json.loads((repo.path / "out.json").read_text())
    (work,) = data["results"]
    outcome = {c["metric"]: c["outcome"] for c in work["comparisons"]}["server_p95_ms"]
    assert outcome in ("unchanged", "inconclusive", "improvement")


def test_no_baseline_is_not_an_error(repo: pytest.Pytester) -> None:
    base_sha = git(repo.path, "rev-parse", "HEAD")
    _branch(repo, 0.0041)
    result = repo.runpytest("--perfgate", "--perfgate-compare", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1)
    data = json.loads((repo.path / "out.json").read_text())
    assert data["baseline"]["found"] is False
    assert base_sha[:7] in " ".join(data["baseline"]["searched"])
    result.stdout.fnmatch_lines(["*no baseline: searched 1 commit*"])


def test_a_corrupt_baseline_is_named_and_budgets_still_gate(repo: pytest.Pytester) -> None:
    repo.runpytest("--perfgate", "--perfgate-save").assert_outcomes(passed=1)
    sha = git(repo.path, "rev-parse", "HEAD")
    # Corrupt the stored file on the baselines branch with plumbing, as a bad merge might.
    blob = git(repo.path, "hash-object", "-w", "--stdin", stdin="{not json")
    tree = git(repo.path, "mktree", stdin=f"100644 blob {blob}\t{sha}.json\n")
    sub = git(repo.path, "mktree", stdin=f"040000 tree {tree}\t{sha[:2]}\n")
    top = git(repo.path, "mktree", stdin=f"040000 tree {sub}\tbaselines\n")
    commit = git(repo.path, "commit-tree", top, "-m", "corrupt")
    git(repo.path, "update-ref", "refs/heads/perfgate-baselines", commit)
    (repo.path / "budgets.yaml").write_text(BUDGETS.replace("p99_ms: 2s", "p99_ms: 1ms"))
    result = repo.runpytest("--perfgate", "--perfgate-compare=HEAD")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p99_ms * > limit 1.0ms*", f"*baseline not used*{sha[:7]}*"])


QUERY_BUDGETS = """
version: 1
database: {{dsn: "{dsn}", setup: [{setup}]}}
defaults: {{runs: 5}}
queries:
  by-wedding:
    sql: SELECT id, name FROM guests WHERE wedding_id = $1
    params: [42]
"""
SCHEMA = """
CREATE TABLE guests (id int PRIMARY KEY, wedding_id int NOT NULL, name text NOT NULL);
INSERT INTO guests SELECT g, g % 500, 'guest ' || g FROM generate_series(1, 20000) g;
CREATE INDEX guests_wedding_idx ON guests (wedding_id);
"""


def test_a_dropped_index_is_a_plan_regression_with_buffers_before_and_after(
    repo: pytest.Pytester, pg_server_dsn: str
) -> None:
    path = repo.path
    (path / "schema.sql").write_text(SCHEMA)
    (path / "budgets.yaml").write_text(QUERY_BUDGETS.format(dsn=pg_server_dsn, setup="schema.sql"))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "queries")
    repo.runpytest("--perfgate", "--perfgate-save").assert_outcomes(passed=1)

    git(path, "checkout", "-q", "-b", "drop-index")
    (path / "migration.sql").write_text("DROP INDEX guests_wedding_idx;")
    (path / "budgets.yaml").write_text(
        QUERY_BUDGETS.format(dsn=pg_server_dsn, setup="schema.sql, migration.sql")
    )
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "drop the index")
    result = repo.runpytest("--perfgate", "--perfgate-compare", "--perfgate-report=r.md")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*query 'by-wedding'*regressed against the baseline:*",
            "*regression in buffers: buffers 42 -> 128*",
            "*regression in coarse_fingerprint*guests: Bitmap Heap Scan using guests_wedding_idx"
            " -> Seq Scan*",
        ]
    )
    report = (path / "r.md").read_text()
    assert "Seq Scan on guests" in report
    assert "guests&#95;wedding&#95;idx" in report or "guests_wedding_idx" in report
