"""`pytest --perfgate` inside a real project's pytest configuration, strict settings and all."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()

# What real projects put in their config: strictness, warnings as errors, parallel tests,
# coverage, their own test folder, and environment for the tests (pytest-env).
PYPROJECT = """
[tool.pytest.ini_options]
addopts = "--strict-markers --strict-config -ra -n 2 --cov=tinyapp --cov-report=term"
testpaths = ["tests"]
filterwarnings = ["error"]
asyncio_default_fixture_loop_scope = "function"
env = ["TINYAPP_MODE=test"]
"""

BUDGETS = f"""
version: 1
target:
  command: "{sys.executable} -m uvicorn tinyapp:app --port {{port}} --log-level warning"
defaults: {{requests: 30, concurrency: 2, warmup: 2}}
endpoints:
  fast: {{request: GET /fast, budget: {{p99_ms: 2s, error_rate: 0}}}}
  slow: {{request: GET /slow, budget: {{p99_ms: 2s}}}}
"""

UNIT_TEST = """
import os

import tinyapp

def test_unit():
    assert os.environ["TINYAPP_MODE"] == "test"
    assert callable(tinyapp.app)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makefile(".yaml", budgets=BUDGETS)
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_unit.py").write_text(UNIT_TEST)
    return pytester


def test_the_gate_runs_cleanly_in_a_strict_project(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--perfgate")
    result.assert_outcomes(passed=2, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    for note in (
        "*-n from the project's addopts is off under --perfgate*",
        "*--cov from the project's addopts is off under --perfgate*",
        "*ran the performance gate only: 1 other test(s) deselected*",
    ):
        result.stdout.fnmatch_lines([note])
    assert "created: 2/2 workers" not in text  # no xdist workers
    assert "coverage:" not in text
    assert "tests coverage" not in text
    assert "warning" not in text.lower()


def test_the_projects_own_run_keeps_its_options(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*created: 2/2 workers*", "*coverage: platform*"])


def test_options_typed_on_the_command_line_are_honoured(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--perfgate", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=2)  # the workers deselect the unit test; xdist counts none
    result.stdout.fnmatch_lines(["*created: 2/2 workers*"])
    result.stdout.no_fnmatch_line("*-n from the project's addopts*")


def test_a_budgets_file_collects_under_strict_markers_without_xdist(
    project: pytest.Pytester,
) -> None:
    project.makepyprojecttoml(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers -p no:xdist"\n'
        'filterwarnings = ["error"]\nasyncio_default_fixture_loop_scope = "function"\n'
    )
    result = project.runpytest_subprocess("--perfgate", "budgets.yaml")
    result.assert_outcomes(passed=2)
