"""The default store: an orphan branch in the project's own repository.

Why a branch (refs/heads/perfgate-baselines) and not refs/notes: a branch is browsable on GitHub
(one readable JSON file per commit, `baselines/<sha[:2]>/<sha>.json`), survives `git clone
--mirror` and ordinary fetch/push refspecs, can be protected like any branch, and needs no
notes-merge strategy: concurrent writers touch different files, so a union of trees is always a
correct merge. Notes attach to commits too, but GitHub does not show them, most clones never fetch
them, and `git notes merge` conflicts on exactly the case perfgate has (many CI jobs at once).

Nothing here touches the user's work tree or index: blobs go in with `hash-object`, trees are
built in a throwaway index (GIT_INDEX_FILE), commits with `commit-tree`, and the ref moves with
`update-ref <ref> <new> <old>`, a compare-and-swap; a writer that loses a race rebuilds on the
winner's commit, so no result is lost.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from pathlib import Path

import git

from perfgate.baseline.gitcmd import (
    NETWORK_ENV,
    ZERO_SHA,
    has_remote,
    is_ancestor,
    open_repo,
    resolve,
    run,
    short,
    stderr_of,
    try_run,
)
from perfgate.baseline.record import BaselineRecord, check_sha, created_at_key, dumps, is_sha, loads
from perfgate.exceptions import BaselineError

DEFAULT_REF = "perfgate-baselines"
BASELINES_DIR = "baselines"
_LOCAL_ATTEMPTS = 30  # local CAS retries: cheap, and losing one means another writer progressed
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "perfgate",
    "GIT_AUTHOR_EMAIL": "perfgate@localhost",
    "GIT_COMMITTER_NAME": "perfgate",
    "GIT_COMMITTER_EMAIL": "perfgate@localhost",
}
_RETRYABLE_PUSH = (
    "non-fast-forward",
    "fetch first",
    "[rejected]",
    "failed to update ref",
    "cannot lock ref",
    "failed to lock",
    "stale info",
)
README = """# perfgate baselines

Written by perfgate, a CI performance gate: one JSON file per measured commit, at
`baselines/<first two hex digits of the sha>/<sha>.json`. Each holds the results of one run,
their raw samples (bounded), and the environment they were measured in.

This branch has no common history with the code; do not merge it.
"""


def record_path(commit: str) -> str:
    """Where a commit's record lives in the baselines tree."""
    return f"{BASELINES_DIR}/{commit[:2]}/{commit}.json"


def full_ref(ref: str) -> str:
    """'perfgate-baselines' -> 'refs/heads/perfgate-baselines'; 'refs/...' stays as given."""
    ref = ref.strip()
    bad = set(" ~^:?*[\\") & set(ref)
    if not ref or bad or ".." in ref or ref.endswith(("/", ".lock")) or ref.startswith("-"):
        raise BaselineError(f"{ref!r} is not a valid git ref name for the baseline store")
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


class GitRefStore:
    """Baselines as files on a dedicated ref of the repository at `repo_path`."""

    __slots__ = (
        "_checked_local",
        "_identity",
        "_repo",
        "attempts",
        "push_deadline_s",
        "ref",
        "remote",
        "repo_path",
    )

    def __init__(
        self,
        repo_path: Path,
        ref: str = DEFAULT_REF,
        remote: str | None = "origin",
        *,
        attempts: int = 40,
        push_deadline_s: float = 180.0,
    ) -> None:
        self.repo_path = Path(repo_path)
        self.ref = full_ref(ref)
        self.remote = remote
        # A push against a moving remote is tried again, at most this often and this long: each
        # round someone wins, so N writers at once need at most N rounds.
        self.attempts = attempts
        self.push_deadline_s = push_deadline_s
        self._repo: git.Repo | None = None
        self._checked_local = False
        self._identity: dict[str, str] = {}

    def describe(self) -> str:
        """'git ref refs/heads/perfgate-baselines'."""
        return f"git ref {self.ref}"

    @property
    def tracking_ref(self) -> str:
        """Where the remote's copy of the ref is fetched to."""
        name = self.ref.removeprefix("refs/heads/").removeprefix("refs/")
        return f"refs/remotes/{self.remote}/{name}"

    # -- reading ---------------------------------------------------------------------------

    def read(self, commit: str) -> BaselineRecord | None:
        """The record of `commit`, None if there is none; BaselineError if it is corrupt."""
        check_sha(commit)
        repo = self._open()
        self._ensure_local()
        path = record_path(commit)
        where = f"{self.ref}:{path} (baseline of commit {short(commit)})"
        blob = try_run(repo, "rev-parse", "--verify", "--quiet", f"{self.ref}:{path}")
        if blob is None:
            return None
        try:
            text = run(repo, "cat-file", "blob", blob)
        except (git.GitCommandError, UnicodeDecodeError) as e:
            raise BaselineError(f"{where}: cannot read the stored file: {e}") from e
        return loads(text, where, commit)

    def commits(self) -> set[str]:
        """Every commit with a stored baseline."""
        repo = self._open()
        self._ensure_local()
        if resolve(repo, self.ref) is None:
            return set()
        names = run(repo, "ls-tree", "-r", "--name-only", self.ref, "--", BASELINES_DIR)
        stems = (Path(line).stem for line in names.splitlines() if line.endswith(".json"))
        return {s for s in stems if is_sha(s)}

    # -- writing ---------------------------------------------------------------------------

    def write(self, record: BaselineRecord) -> str:
        """Add (or replace) the record of its commit; returns 'ref:path'."""
        commit = check_sha(record.commit)
        repo = self._open()
        # Offline is fine for writing: a later push merges with whatever the remote has.
        with contextlib.suppress(BaselineError):
            self._ensure_local()
        blob = run(repo, "hash-object", "-w", "--stdin", stdin=dumps(record).encode())
        path = record_path(commit)
        for _ in range(_LOCAL_ATTEMPTS):
            old = resolve(repo, self.ref)
            entries = {path: blob}
            if old is None:
                entries["README.md"] = run(
                    repo, "hash-object", "-w", "--stdin", stdin=README.encode()
                )
            tree = self._tree(old, entries)
            if old is not None and tree == run(repo, "rev-parse", f"{old}^{{tree}}"):
                return f"{self.ref}:{path}"  # the identical record is already stored
            dirty = " (uncommitted changes)" if record.dirty else ""
            message = f"perfgate baseline for {short(commit)}{dirty}"
            new = self._commit(tree, [old] if old else [], message)
            if self._swap(old, new, message):
                return f"{self.ref}:{path}"
            _pause(0)
        raise BaselineError(f"could not update {self.ref}: other writers kept moving it")

    # -- publishing ------------------------------------------------------------------------

    def fetch(self) -> str | None:
        """Fetch the remote's ref and merge it into the local one; the local sha after."""
        repo = self._open()
        remote_sha = self._fetch_remote()
        if remote_sha is not None:
            return self._integrate(remote_sha)
        return resolve(repo, self.ref)

    def push(self) -> str:
        """Publish the ref to the remote, merging with what others pushed meanwhile.

        A rejected push (someone else pushed first) fetches their commit, merges the two trees
        (union of files; for the same commit's file the newer created_at wins), re-commits on
        top and tries again, with jitter, up to `attempts` times.
        """
        repo = self._open()
        remote = self.remote
        if remote is None or not has_remote(repo, remote):
            raise BaselineError(
                f"cannot push baselines: {self.repo_path} has no git remote {remote!r}"
            )
        if resolve(repo, self.ref) is None:
            return f"nothing to push: {self.ref} does not exist yet"
        last = ""
        deadline = time.monotonic() + self.push_deadline_s
        attempt = 0
        while True:
            try:
                run(repo, "push", "--quiet", remote, f"{self.ref}:{self.ref}", env=NETWORK_ENV)
                return f"pushed {self.ref} to {remote} ({short(resolve(repo, self.ref) or '')})"
            except git.GitCommandError as e:
                last = stderr_of(e)
                if not any(word in last for word in _RETRYABLE_PUSH):
                    raise BaselineError(_push_failure(self.ref, remote, last)) from e
            attempt += 1
            if attempt >= self.attempts or time.monotonic() >= deadline:
                raise BaselineError(
                    f"gave up pushing {self.ref} to {remote} after {attempt} attempts in "
                    f"{self.push_deadline_s - (deadline - time.monotonic()):.0f} s: the remote "
                    f"kept moving ({last}); the record is saved locally, push it with "
                    f"`git push {remote} {self.ref}`"
                )
            remote_sha = self._fetch_remote()
            if remote_sha is not None:
                self._integrate(remote_sha)
            _pause(attempt)

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> git.Repo:
        if self._repo is None:
            self._repo = open_repo(self.repo_path)
        return self._repo

    def _ensure_local(self) -> None:
        # A fresh CI clone has only the code branch: bring the baselines over once.
        if self._checked_local:
            return
        self._checked_local = True
        if resolve(self._open(), self.ref) is None:
            self.fetch()

    def _fetch_remote(self) -> str | None:
        repo = self._open()
        remote = self.remote
        if remote is None or not has_remote(repo, remote):
            return None
        spec = f"+{self.ref}:{self.tracking_ref}"
        try:
            run(repo, "fetch", "--quiet", "--no-tags", remote, spec, env=NETWORK_ENV)
        except git.GitCommandError as e:
            err = stderr_of(e)
            if "couldn't find remote ref" in err:
                return None  # nobody has pushed baselines yet
            raise BaselineError(f"could not fetch {self.ref} from {remote}: {err}") from e
        return resolve(repo, self.tracking_ref)

    def _integrate(self, remote_sha: str) -> str:
        """Make the local ref contain `remote_sha`: create, fast-forward, or merge."""
        repo = self._open()
        for _ in range(_LOCAL_ATTEMPTS):
            local = resolve(repo, self.ref)
            if local is None:
                new = remote_sha
            elif local == remote_sha or is_ancestor(repo, remote_sha, local):
                return local
            elif is_ancestor(repo, local, remote_sha):
                new = remote_sha
            else:
                new = self._merge(local, remote_sha)
            if self._swap(local, new, f"perfgate: baselines from {self.remote}"):
                return new
            _pause(0)
        raise BaselineError(f"could not update {self.ref}: other writers kept moving it")

    def _merge(self, local: str, remote: str) -> str:
        """A merge commit whose tree is the union of both; on the remote's commit first."""
        repo = self._open()
        mine, theirs = _files(repo, local), _files(repo, remote)
        changes: dict[str, str] = {}
        for path, blob in mine.items():
            other = theirs.get(path)
            if other is None or (other != blob and _newer(repo, blob, other)):
                changes[path] = blob
        tree = self._tree(remote, changes)
        message = f"perfgate: merge baselines from {self.remote}"
        return self._commit(tree, [remote, local], message)

    def _tree(self, base: str | None, entries: dict[str, str]) -> str:
        """The tree of `base` with `entries` (path -> blob) added, built in a throwaway index."""
        repo = self._open()
        with tempfile.TemporaryDirectory(prefix="perfgate-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if base is not None:
                run(repo, "read-tree", base, env=env)
            if entries:
                info = "".join(f"100644 {blob}\t{path}\n" for path, blob in entries.items())
                run(repo, "update-index", "--add", "--index-info", env=env, stdin=info.encode())
            return run(repo, "write-tree", env=env)

    def _commit(self, tree: str, parents: list[str], message: str) -> str:
        repo = self._open()
        args = ["commit-tree", tree, *(a for p in parents for a in ("-p", p)), "-m", message]
        try:
            return run(repo, *args, env=self._identity)
        except git.GitCommandError as e:
            # CI runners often have no user.name/email; the store must still work there.
            if self._identity:
                raise BaselineError(f"could not commit to {self.ref}: {stderr_of(e)}") from e
            self._identity = dict(_FALLBACK_IDENTITY)
            return run(repo, *args, env=self._identity)

    def _swap(self, old: str | None, new: str, message: str) -> bool:
        """Move the ref from `old` to `new` only if it is still at `old`."""
        try:
            run(self._open(), "update-ref", "-m", message, self.ref, new, old or ZERO_SHA)
        except git.GitCommandError:
            return False
        return True


def _files(repo: git.Repo, commit: str) -> dict[str, str]:
    """path -> blob sha of every file in a commit's tree."""
    out: dict[str, str] = {}
    for entry in run(repo, "ls-tree", "-r", "-z", commit).split("\0"):
        if entry:
            meta, _, path = entry.partition("\t")
            out[path] = meta.split()[2]
    return out


def _newer(repo: git.Repo, blob: str, other: str) -> bool:
    """Whether record `blob` was measured after record `other` (ties keep `other`)."""
    mine = created_at_key(run(repo, "cat-file", "blob", blob))
    theirs = created_at_key(run(repo, "cat-file", "blob", other))
    if mine is None:
        return False
    if theirs is None:
        return True
    try:
        return mine > theirs
    except TypeError:  # one naive, one aware: compare as written
        return mine.isoformat() > theirs.isoformat()


def _pause(attempt: int) -> None:
    # Exponential backoff capped at 2 s, with full jitter, so writers that collided spread out
    # instead of colliding again in lockstep.
    time.sleep(random.uniform(0.01, min(2.0, 0.05 * 2 ** min(attempt, 6))))


def _push_failure(ref: str, remote: str, err: str) -> str:
    hint = ""
    if any(w in err for w in ("403", "ermission", "denied", "not allowed")):
        hint = (
            " (the CI token needs write access: in GitHub Actions give the job "
            "`permissions: contents: write`)"
        )
    return f"could not push {ref} to {remote}: {err}{hint}"
