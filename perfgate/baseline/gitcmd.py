"""Thin helpers over git plumbing (through gitpython); none touches the work tree or the index."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import git

from perfgate.exceptions import BaselineError

ZERO_SHA = "0" * 40

# Network commands must fail, not wait for a password nobody will type in CI.
NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}


def open_repo(repo_path: Path) -> git.Repo:
    """The repository containing `repo_path`, or BaselineError saying it is not one."""
    try:
        return git.Repo(repo_path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
        raise BaselineError(
            f"{repo_path} is not inside a git repository: perfgate keeps baselines per commit, "
            "so it needs one (or use a file baseline: --perfgate-compare=PATH.json)"
        ) from e


def run(
    repo: git.Repo,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> str:
    """`git <args>` in the repository; stdout without its trailing newline."""
    command = ["git", *args]
    extra = dict(env or {})
    if stdin is None:
        return repo.git.execute(command, env=extra)
    # gitpython hands istream to Popen, which needs a real file descriptor.
    with tempfile.TemporaryFile() as f:
        f.write(stdin)
        f.seek(0)
        return repo.git.execute(command, env=extra, istream=f)


def try_run(repo: git.Repo, *args: str, env: Mapping[str, str] | None = None) -> str | None:
    """Like run, but None when git exits non-zero."""
    try:
        return run(repo, *args, env=env)
    except git.GitCommandError:
        return None


def stderr_of(error: git.GitCommandError) -> str:
    """git's own words, without gitpython's framing."""
    text = error.stderr if isinstance(error.stderr, str) else str(error.stderr or "")
    text = text.strip()
    if text.startswith("stderr:"):
        text = text[len("stderr:") :].strip()
    return text.strip("'").strip() or str(error)


def reason(error: git.GitCommandError) -> str:
    """The line of git's stderr that says why ('fatal: ...'), for one-line messages."""
    lines = [line.strip() for line in stderr_of(error).splitlines() if line.strip()]
    return next((x for x in lines if x.startswith(("fatal:", "error:"))), lines[0] if lines else "")


def resolve(repo: git.Repo, rev: str) -> str | None:
    """The full sha of a commit-ish, or None when it does not resolve."""
    if rev.startswith("-"):  # never let a user's ref be read as an option
        return None
    return try_run(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant`."""
    return try_run(repo, "merge-base", "--is-ancestor", ancestor, descendant) is not None


def is_shallow(repo: git.Repo) -> bool:
    """Whether this is a shallow clone (CI checkouts usually are)."""
    return run(repo, "rev-parse", "--is-shallow-repository") == "true"


def has_remote(repo: git.Repo, remote: str | None) -> bool:
    """Whether `remote` names a configured remote."""
    return remote is not None and remote in run(repo, "remote").split()


def first_parents(repo: git.Repo, start: str, count: int) -> list[str]:
    """`start` and its first-parent ancestors, nearest first, at most `count` commits."""
    out = run(repo, "rev-list", "--first-parent", f"--max-count={count}", start)
    return out.split()


def commit_date(repo: git.Repo, commit: str) -> str:
    """The committer date of a commit, strict ISO 8601."""
    return run(repo, "show", "-s", "--format=%cI", commit)


def head_commit(repo_path: Path) -> tuple[str, str, bool]:
    """(sha, ISO commit date, dirty) of HEAD; dirty means tracked files have uncommitted changes.

    Untracked files do not count: CI leaves caches and reports beside the code. The status
    runs with GIT_OPTIONAL_LOCKS=0 so it does not even refresh the index.
    """
    repo = open_repo(repo_path)
    with repo:
        sha = resolve(repo, "HEAD")
        if sha is None:
            raise BaselineError(f"{repo.working_dir}: the repository has no commits yet")
        status = run(
            repo,
            "status",
            "--porcelain",
            "--untracked-files=no",
            env={"GIT_OPTIONAL_LOCKS": "0"},
        )
        return sha, commit_date(repo, sha), bool(status.strip())


def short(sha: str) -> str:
    """The 7-character form reports show."""
    return sha[:7]
