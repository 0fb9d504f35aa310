"""The second example, Conduit (FastAPI, SQLAlchemy, alembic), gated in its own pytest setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONDUIT = Path(__file__).parent.parent / "examples" / "conduit"


@pytest.fixture(scope="module")
def gated(pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One `pytest --perfgate` run in the app's directory, with the app's own configuration."""
    out = tmp_path_factory.mktemp("conduit") / "results.json"
    env = {**os.environ, "PERFGATE_DSN": pg_server_dsn}
    env.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(
        # -p no:asyncio: this suite's environment has pytest-asyncio, which the app does not
        # use and whose configuration warning its filterwarnings=error would turn into an
        # error. The app's own environment (the README's commands, CI) needs no such option.
        [
            sys.executable,
            "-m",
            "pytest",
            "--perfgate",
            f"--perfgate-json={out}",
            "-p",
            "no:asyncio",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ],
        cwd=CONDUIT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), completed.stdout + completed.stderr
    data: dict[str, object] = json.loads(out.read_text())
    data["stdout"] = completed.stdout
    return data


def _result(gated: dict[str, object], name: str) -> dict[str, object]:
    results = gated["results"]
    assert isinstance(results, list)
    return next(r for r in results if r["name"] == name)


def test_every_endpoint_is_answered_after_login_migrations_and_seed(
    gated: dict[str, object],
) -> None:
    for name in ("articles", "article", "comments", "tags", "current-user"):
        result = _result(gated, name)
        assert result["status"] in ("passed", "failed"), result
        assert result["metrics"]["errors"]["value"] == 0, result  # type: ignore[index]


def test_writing_endpoints_create_unique_articles_and_comments(gated: dict[str, object]) -> None:
    for name in ("create-article", "add-comment"):
        result = _result(gated, name)
        assert result["metrics"]["errors"]["value"] == 0, result  # type: ignore[index]


def test_the_apps_named_queries_are_gated_from_its_own_file(gated: dict[str, object]) -> None:
    tags = _result(gated, "popular-tags")
    assert tags["metrics"]["rows"]["value"] == 20  # type: ignore[index]
    counts = _result(gated, "comment-counts")
    assert counts["metrics"]["rows"]["value"] == 10  # type: ignore[index]
    findings = counts["details"]["findings"]  # type: ignore[index]
    assert {f["rule"] for f in findings} >= {"seq-scan-filter"}  # no index on article_id


def test_the_apps_own_options_are_switched_off_and_said(gated: dict[str, object]) -> None:
    stdout = str(gated["stdout"])
    assert "-n from the project's addopts is off under --perfgate" in stdout
    assert "--cov from the project's addopts is off under --perfgate" in stdout
    assert "3 other test(s) deselected" in stdout
    assert "Traceback" not in stdout
