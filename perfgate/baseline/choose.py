"""Which stored run a gate run is compared with, and how it was found, in words.

Automatic choice: the merge-base of HEAD with the base branch, then its first-parent ancestors
(at most `max_distance` back) until one has a baseline. First parents only, so a merged feature
branch's own commits (measured on another base) are never picked.

Comparing with yourself: on the base branch HEAD is its own merge-base, and a CI job that saves
a baseline for HEAD (or re-runs) would find HEAD's own record. When the work tree is clean that
record measured this very code, so HEAD is skipped and the search starts at its parent. With
uncommitted changes HEAD's record is a fair baseline for them, so it is kept. An explicit
`--perfgate-compare=REF` is taken at its word, HEAD included.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

import git

from perfgate.baseline.gitcmd import (
    NETWORK_ENV,
    first_parents,
    has_remote,
    head_commit,
    is_shallow,
    open_repo,
    reason,
    resolve,
    run,
    short,
    try_run,
)
from perfgate.baseline.record import BaselineRecord
from perfgate.baseline.store import BaselineStore
from perfgate.exceptions import BaselineError
from perfgate.verdict.model import RESULT_SCHEMA, BaselineInfo, GateReport


def find_baseline(
    repo_path: Path,
    store: BaselineStore,
    compare: str | None,
    env: Mapping[str, str],
    max_distance: int = 50,
    remote: str = "origin",
) -> tuple[BaselineRecord | None, BaselineInfo]:
    """The baseline to compare with (None when there is none: not an error) and how it was found.

    `compare`: None or "auto" (merge-base with the base branch), a ref or sha ("v1.2",
    "HEAD~3"), or a path ending in ".json" (a stored record or a --perfgate-json results file).
    """
    if compare and compare.endswith(".json"):
        return _from_file(compare, repo_path)
    head, _, dirty = head_commit(repo_path)
    with open_repo(repo_path) as repo:
        if compare in (None, "", "auto"):
            start, how, skip_head, base = _automatic(repo, head, dirty, env, remote, max_distance)
        else:
            start = _explicit(repo, compare, remote)
            how, skip_head, base = f"--perfgate-compare={compare}", False, None
        chain = _walk(repo, start, max_distance + 1, remote, _branch_spec(base, remote))
    candidates = [c for c in chain if not (skip_head and c == head)]
    available = store.commits()
    for sha in candidates:
        if sha in available and (record := store.read(sha)) is not None:
            back = chain.index(sha)
            if back:
                how += f", {back} commit{'s' if back != 1 else ''} back"
            if record.dirty:
                how += " (measured with uncommitted changes)"
            info = BaselineInfo(sha, record.commit_date, how, source=store.describe())
            return record, info
    searched = tuple(short(c) for c in candidates)
    return None, BaselineInfo(None, None, how, searched, found=False, source=store.describe())


def _automatic(
    repo: git.Repo,
    head: str,
    dirty: bool,
    env: Mapping[str, str],
    remote: str,
    max_distance: int,
) -> tuple[str, str, bool, str | None]:
    """(where to start walking, how it was found, skip HEAD's own record?, the base branch)."""
    base = _base_ref(repo, env, remote)
    if base is None:
        tried = ", ".join(_fallback_bases(remote))
        how = f"nearest ancestor of HEAD (no base branch found; tried {tried})"
        return head, how, not dirty, None
    merge_base = _merge_base(repo, head, base, remote, max_distance, env)
    if merge_base is None:
        how = f"nearest ancestor of HEAD (HEAD and {base} share no history)"
        return head, how, not dirty, base
    if merge_base == head:
        if dirty:
            return head, f"HEAD ({short(head)}) on {base}, with uncommitted changes", False, base
        how = f"HEAD ({short(head)}) is on {base}; its nearest measured ancestor"
        return head, how, True, base
    return merge_base, f"merge-base of HEAD and {base} ({short(merge_base)})", False, base


def _fallback_bases(remote: str) -> tuple[str, ...]:
    return (f"{remote}/HEAD", "main", "master", f"{remote}/main", f"{remote}/master")


def _base_ref(repo: git.Repo, env: Mapping[str, str], remote: str) -> str | None:
    """GITHUB_BASE_REF's remote branch in a pull request, else the first that exists."""
    if pr_base := env.get("GITHUB_BASE_REF", "").strip():
        name = f"{remote}/{pr_base}"
        if resolve(repo, name) is None and has_remote(repo, remote):
            # A depth-1 pull request checkout has only the merge commit, not the base branch.
            spec = f"+refs/heads/{pr_base}:refs/remotes/{remote}/{pr_base}"
            depth = ["--depth=1"] if is_shallow(repo) else []
            try:
                run(repo, "fetch", "--quiet", "--no-tags", *depth, remote, spec, env=NETWORK_ENV)
            except git.GitCommandError as e:
                raise BaselineError(
                    f"GITHUB_BASE_REF is {pr_base!r} but {name} could not be fetched: {reason(e)}"
                ) from e
        if resolve(repo, name) is None:
            raise BaselineError(f"GITHUB_BASE_REF is {pr_base!r} but there is no {name}")
        return name
    return next((b for b in _fallback_bases(remote) if resolve(repo, b) is not None), None)


def _merge_base(
    repo: git.Repo, head: str, base: str, remote: str, max_distance: int, env: Mapping[str, str]
) -> str | None:
    """The merge-base, deepening a shallow clone until it appears; BaselineError if it cannot."""
    found = try_run(repo, "merge-base", head, base)
    if found is not None or not is_shallow(repo):
        return found
    depth = int(run(repo, "rev-list", "--count", head))
    failure = f"there is no remote {remote!r} to fetch more history from"
    if has_remote(repo, remote):
        step = max(max_distance, 50)
        for how in (f"--deepen={step}", f"--deepen={step * 4}", "--unshallow"):
            failure = _fetch_more(repo, remote, base, how)
            if failure:
                break  # the remote is unreachable: more attempts would fail the same way
            found = try_run(repo, "merge-base", head, base)
            if found is not None or not is_shallow(repo):
                return found
    at_least = _needed_depth(env, max_distance)
    raise BaselineError(
        f"this is a shallow clone ({depth} commit{'s' if depth != 1 else ''} of history) and "
        f"the merge-base of HEAD and {base} is not in it; {failure}. Fetch the history "
        f"perfgate needs: in GitHub Actions set actions/checkout with fetch-depth: 0 (or at "
        f"least {at_least}); elsewhere run `git fetch --unshallow {remote}`"
    )


def _needed_depth(env: Mapping[str, str], max_distance: int) -> str:
    """How deep a clone must be: the pull request's commits, its merge commit, and the walk."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
        return str(int(event["pull_request"]["commits"]) + 2 + max_distance)
    return f"{max_distance + 2} plus the number of commits on this branch"


def _branch_spec(base: str | None, remote: str) -> list[str]:
    """The refspec of a remote base branch, so deepening fetches that branch only."""
    if base is None or not base.startswith(f"{remote}/") or base == f"{remote}/HEAD":
        return []
    branch = base.removeprefix(f"{remote}/")
    return [f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"]


def _fetch_more(repo: git.Repo, remote: str, base: str, how: str) -> str:
    """One `git fetch <how>` of the base branch; what went wrong, or "" when it worked."""
    args = ["fetch", "--quiet", "--no-tags", how, remote, *_branch_spec(base, remote)]
    try:
        run(repo, *args, env=NETWORK_ENV)
    except git.GitCommandError as e:
        return f"`git fetch {how} {remote}` failed ({reason(e)})"
    return ""


def _walk(repo: git.Repo, start: str, count: int, remote: str, spec: list[str]) -> list[str]:
    """`count` first-parent commits from `start`; deepens a shallow clone that cuts them short."""
    chain = first_parents(repo, start, count)
    if len(chain) < count and is_shallow(repo) and has_remote(repo, remote):
        # Best effort: a walk cut short by the clone's depth only finds fewer candidates.
        deepen = f"--deepen={count - len(chain)}"
        try_run(repo, "fetch", "--quiet", "--no-tags", deepen, remote, *spec, env=NETWORK_ENV)
        chain = first_parents(repo, start, count)
    return chain


def _explicit(repo: git.Repo, compare: str, remote: str) -> str:
    """The commit `--perfgate-compare=REF` names, fetching it once if a shallow clone lacks it."""
    sha = resolve(repo, compare)
    if sha is None and has_remote(repo, remote) and not compare.startswith("-"):
        # A shallow or single-branch clone may lack the tag or branch: ask the remote once.
        for args in (["--no-tags", remote, compare], [remote, "tag", compare]):
            if try_run(repo, "fetch", "--quiet", *args, env=NETWORK_ENV) is not None:
                sha = resolve(repo, compare) or resolve(repo, "FETCH_HEAD")
                break
    if sha is None:
        shallow = " (this is a shallow clone: fetch-depth: 0 on actions/checkout fetches it)"
        raise BaselineError(
            f"--perfgate-compare={compare}: no such commit, branch or tag in "
            f"{repo.working_dir}{shallow if is_shallow(repo) else ''}; use 'auto', a ref or "
            "sha, or a path ending in .json"
        )
    return sha


def _from_file(compare: str, repo_path: Path) -> tuple[BaselineRecord, BaselineInfo]:
    """A baseline record file, or a results file written by --perfgate-json."""
    path = Path(compare).expanduser()
    if not path.is_absolute() and not path.exists():
        path = Path(repo_path) / path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BaselineError(f"--perfgate-compare={compare}: no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineError(f"{path}: cannot read the baseline file: {e}") from e
    except json.JSONDecodeError as e:
        raise BaselineError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
    if isinstance(data, dict) and "commit" in data:
        try:
            record = BaselineRecord.from_json(data)
        except BaselineError as e:
            raise BaselineError(f"{path}: not a perfgate baseline record: {e}") from e
    elif isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA and "results" in data:
        record = _record_of_report(path, data)
    else:
        raise BaselineError(
            f"{path}: neither a perfgate baseline record nor a --perfgate-json results file "
            f"(schema {RESULT_SCHEMA})"
        )
    info = BaselineInfo(
        commit=None,
        date=record.commit_date or record.created_at or None,
        how=f"file {compare}",
        source=str(compare),
    )
    return record, info


def _record_of_report(path: Path, data: dict[str, object]) -> BaselineRecord:
    try:
        report = GateReport.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BaselineError(f"{path}: malformed perfgate results file: {e}") from e
    commit = str(report.environment.get("commit", "") or "")
    return BaselineRecord(
        commit=commit,
        commit_date=str(report.environment.get("commit_date", "") or ""),
        created_at=report.created_at,
        perfgate_version=report.perfgate_version,
        environment=dict(report.environment),
        results=report.results,
    )
