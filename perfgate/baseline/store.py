"""Where baselines live: the store Protocol, the directory store, and the store spec."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from perfgate.baseline.gitcmd import short
from perfgate.baseline.gitstore import DEFAULT_REF, GitRefStore
from perfgate.baseline.record import BaselineRecord, check_sha, dumps, is_sha, loads
from perfgate.exceptions import BaselineError


class BaselineStore(Protocol):
    """Keeps one BaselineRecord per commit."""

    def describe(self) -> str:
        """Where the baselines are, in words: 'git ref refs/heads/perfgate-baselines'."""
        ...

    def read(self, commit: str) -> BaselineRecord | None:
        """The record of `commit` (a full sha); None if absent, BaselineError if corrupt."""
        ...

    def write(self, record: BaselineRecord) -> str:
        """Store the record for its commit, replacing an older one; returns where it went."""
        ...

    def commits(self) -> set[str]:
        """Every commit that has a record."""
        ...


class DirStore:
    """`PATH/<sha>.json`, for teams that keep results in a CI cache or artifact."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        """'directory PATH'."""
        return f"directory {self.path}"

    def read(self, commit: str) -> BaselineRecord | None:
        """The record of `commit`; None if absent, BaselineError naming the file if corrupt."""
        file = self.path / f"{check_sha(commit)}.json"
        where = f"{file} (baseline of commit {short(commit)})"
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise BaselineError(f"{where}: cannot read the file: {e}") from e
        return loads(text, where, commit)

    def write(self, record: BaselineRecord) -> str:
        """Write atomically (temp file, then os.replace): readers never see half a file."""
        file = self.path / f"{check_sha(record.commit)}.json"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{file.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                    f.write(dumps(record))
                os.replace(tmp, file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            raise BaselineError(f"{file}: cannot write the baseline: {e}") from e
        return str(file)

    def commits(self) -> set[str]:
        """Commits with a `<sha>.json` file in the directory."""
        if not self.path.is_dir():
            return set()
        return {p.stem for p in self.path.glob("*.json") if is_sha(p.stem)}


def open_store(spec: str, repo_path: Path, remote: str | None = "origin") -> BaselineStore:
    """The store a spec names: 'git', 'git:REF', or 'dir:PATH' (relative to the repository)."""
    kind, sep, arg = spec.strip().partition(":")
    if kind == "git":
        if sep and not arg:
            raise BaselineError(f"baseline store {spec!r}: 'git:' needs a ref name after the colon")
        return GitRefStore(repo_path, arg or DEFAULT_REF, remote)
    if kind == "dir":
        if not arg:
            raise BaselineError(
                f"baseline store {spec!r}: 'dir:' needs a directory after the colon"
            )
        path = Path(arg).expanduser()
        return DirStore(path if path.is_absolute() else Path(repo_path) / path)
    raise BaselineError(
        f"unknown baseline store {spec!r}: expected 'git' (the {DEFAULT_REF} branch), "
        "'git:REF' or 'dir:PATH'"
    )
