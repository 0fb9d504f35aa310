"""Real git repositories for the tests that need one (baselines, interleaving, the CI dry run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

WEBAPP = (Path(__file__).parent / "apps" / "webapp.py").read_text()


def git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    """Run git in ``cwd`` (feeding it ``stdin``); its stdout without the trailing newline."""
    return subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, check=True, capture_output=True, text=True
    ).stdout.strip()


def init_repo(path: Path) -> None:
    """An empty repository on branch main, with an identity to commit as."""
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")


def webapp_source(delay: float) -> str:
    """The test app (tests/apps/webapp.py) with its handler taking ``delay`` seconds."""
    return WEBAPP.replace("DELAY_S = 0.004", f"DELAY_S = {delay}")
