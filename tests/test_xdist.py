"""Under pytest-xdist perfgate keeps its items together, warns, and writes one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()
BUDGETS = """
version: 1
target: {app: "tinyapp:app"}
defaults: {requests: 20, concurrency: 2, warmup: 0}
endpoints:
  one: {request: GET /fast, budget: {p99_ms: 2s}}
  two: {request: GET /slow, budget: {p99_ms: 2s}}
  three: {request: GET /healthz, budget: {p99_ms: 2s}}
"""


def test_workers_send_results_to_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makefile(".yaml", budgets=BUDGETS)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = default\n"
    )
    result = pytester.runpytest_subprocess(
        "--perfgate", "-n", "2", "--dist", "loadgroup", "--perfgate-json=out.json"
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*timings under pytest-xdist are noisy*loadgroup*"])
    data = json.loads((pytester.path / "out.json").read_text())
    assert sorted(r["name"] for r in data["results"]) == ["one", "three", "two"]
    assert data["environment"]["python"]
