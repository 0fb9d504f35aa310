"""Under pytest-xdist perfgate keeps its items together, says so when not, and writes one report."""

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
# filterwarnings = error, as many projects (and perfgate itself) run: nothing may crash.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makefile(".yaml", budgets=BUDGETS)
    pytester.makeini(INI)
    return pytester


def test_workers_send_results_to_the_controller(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "--perfgate", "-n", "2", "--dist", "loadgroup", "--perfgate-json=out.json"
    )
    result.assert_outcomes(passed=3)
    assert "noisy" not in result.stdout.str()
    data = json.loads((project.path / "out.json").read_text())
    assert sorted(r["name"] for r in data["results"]) == ["one", "three", "two"]
    assert data["environment"]["python"]


def test_spreading_items_over_workers_is_called_out(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--perfgate", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["perfgate: timings under pytest-xdist are noisy*loadgroup*"])
