"""What perfgate started, written down, so a later run removes what a killed run left behind.

Ctrl-C, SIGTERM and SIGHUP clean up as they go (plugin/signals.py); SIGKILL, an OOM kill or a
lost container cannot. So each resource a run creates is noted in a small file of its own, and
the note is removed when the resource is: a target's or setup command's process group, an
embedded PostgreSQL server, a scratch database on a real server, the base commit's git
worktree. A note holds its owner (pid, and that process's start time, so a reused pid is not
mistaken for it) and what is needed to remove the resource; never a password.

``sweep`` (at the start of every ``--perfgate`` run, and ``perfgate cleanup``) finds notes
whose owner is gone, removes what they name and says so. A note is claimed by renaming it, so
two runs sweeping at once never both act on one. Removal is checked first: a process group
only if its leader is the process noted (or it has lost its leader, and Linux never reuses a
group id while the group has members), a server only if its pid file names a postgres of that
data directory, a database only if it still carries perfgate's comment.

The notes live in ``$PERFGATE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/perfgate``, else
``<temp dir>/perfgate-<uid>``, a directory only the user can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Owner",
    "database_marker",
    "forget",
    "group_members",
    "note",
    "notes_dir",
    "start_time",
    "sweep",
]

_SUFFIX = ".json"
_ORDER = ("process-group-", "worktree-", "database-", "embedded-")
_CLAIMED = ".sweeping"


@dataclass(frozen=True, slots=True)
class Owner:
    """A process, told apart from a later one that got the same pid."""

    pid: int
    started: str | None  # boot id and start time in clock ticks (Linux); None elsewhere

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), start_time(os.getpid()))

    def alive(self) -> bool:
        """Whether this very process still runs."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process with that pid: compare start times
        return self.started is None or start_time(self.pid) == self.started


def notes_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where notes are kept (made, mode 0700, on first use)."""
    chosen = environ.get("PERFGATE_RUNTIME_DIR")
    if chosen:
        return Path(chosen)
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / "perfgate"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"perfgate-{uid}"


def note(kind: str, key: str, **fields: object) -> None:
    """Write down a resource this process now holds (best effort: a read-only disk must not
    stop the run, it only loses the safety net)."""
    owner = Owner.current()
    data = {"kind": kind, "owner": {"pid": owner.pid, "started": owner.started}, **fields}
    directory = notes_dir()
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / _name(kind, owner.pid, key)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".note-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)


def forget(kind: str, key: str) -> None:
    """The resource is gone: remove its note."""
    with contextlib.suppress(OSError):
        (notes_dir() / _name(kind, os.getpid(), key)).unlink(missing_ok=True)


def database_marker(owner: Owner | None = None) -> str:
    """The comment perfgate puts on its scratch databases: whose they are."""
    owner = owner or Owner.current()
    return f"perfgate scratch database of {socket.gethostname()} pid {owner.pid} ({owner.started})"


def sweep(dsns: Iterable[str] = ()) -> list[str]:
    """Remove what runs that are gone left behind; one sentence per resource, for the summary.

    ``dsns`` are connection strings that may carry the password a noted server needs (the
    notes never hold one); a database on a server none of them reaches is reported, not
    dropped.
    """
    directory = notes_dir()
    try:
        names = [p.name for p in directory.iterdir() if p.name.endswith(_SUFFIX)]
    except OSError:
        return []
    # Processes first (a target may hold connections), servers last (databases on them go too).
    names.sort(
        key=lambda name: (next((i for i, k in enumerate(_ORDER) if name.startswith(k)), 9), name)
    )
    said: list[str] = []
    for name in names:
        said.extend(_sweep_one(directory / name, tuple(dsns)))
    return said


def _sweep_one(path: Path, dsns: tuple[str, ...]) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        owner = Owner(int(data["owner"]["pid"]), data["owner"].get("started"))
        kind = str(data["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()  # unreadable: nothing can be done with it
        return []
    if owner.alive():
        return []
    claimed = path.with_name(path.name + f"{_CLAIMED}-{os.getpid()}")
    try:
        os.rename(path, claimed)  # another run sweeping at the same time gets an error here
    except OSError:
        return []
    remove = _REMOVERS.get(kind)
    try:
        said = remove(data, dsns) if remove is not None else None
    except Exception as exc:  # keep the note for the next sweep, and say why
        with contextlib.suppress(OSError):
            os.rename(claimed, path)
        return [f"could not remove a {kind} left by perfgate pid {owner.pid}: {exc}"]
    with contextlib.suppress(OSError):
        claimed.unlink()
    if said is None:
        return []
    return [f"removed {said}, left by an earlier perfgate run (pid {owner.pid}) that was killed"]


# -- what each kind of note names, and how it is removed ------------------------------------


def _process_group(data: Mapping[str, Any], dsns: tuple[str, ...]) -> str | None:
    pgid, started = int(data["pgid"]), data.get("started")
    members = list(group_members(pgid))
    if not members:
        return None
    leader_start = start_time(pgid)
    if pgid in members and started is not None and leader_start != started:
        return None  # a new group that was given the same id
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)
        _wait(lambda: not any(True for _ in group_members(pgid)), 3.0)
    return f"the process group {pgid} ({data.get('command', '?')})"


def _embedded(data: Mapping[str, Any], dsns: tuple[str, ...]) -> str | None:
    root = Path(str(data["root"]))
    if not root.exists():
        return None
    data_dir = root / "data"
    size = _size(root)
    pid = _postmaster(data_dir)
    if pid is not None:
        for signum in (signal.SIGQUIT, signal.SIGKILL):  # SIGQUIT: PostgreSQL's immediate stop
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
            if _wait(lambda: not _is_postgres_of(pid, data_dir), 5.0):
                break
    shutil.rmtree(root, ignore_errors=True)
    return f"an embedded PostgreSQL at {root} ({size / 2**20:.0f} MB)"


def _database(data: Mapping[str, Any], dsns: tuple[str, ...]) -> str | None:
    from perfgate.system.database import drop_marked  # asyncpg is imported only when needed

    server, names = str(data["server"]), [str(n) for n in data["names"]]
    dropped = drop_marked(server, names, str(data["marker"]), dsns)
    if not dropped:
        return None
    return f"the scratch database(s) {', '.join(dropped)} on {data.get('where', server)}"


def _worktree(data: Mapping[str, Any], dsns: tuple[str, ...]) -> str | None:
    repo, path = str(data["repo"]), Path(str(data["path"]))
    if not path.exists():
        return None
    for args in (["worktree", "remove", "--force", str(path)], ["worktree", "prune"]):
        subprocess.run(["git", "-C", repo, *args], capture_output=True, timeout=60, check=False)
    shutil.rmtree(path, ignore_errors=True)
    return f"the git worktree {path}"


_REMOVERS: dict[str, Callable[[Mapping[str, Any], tuple[str, ...]], str | None]] = {
    "process-group": _process_group,
    "embedded": _embedded,
    "database": _database,
    "worktree": _worktree,
}


# -- processes ----------------------------------------------------------------------------------


def start_time(pid: int) -> str | None:
    """The process's boot id and start time, or None (not Linux, or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # "pid (comm) state ppid ... starttime" (field 22); comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def group_members(pgid: int) -> Iterator[int]:
    """The live processes of a process group (zombies waiting to be reaped don't count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return
    proc = Path("/proc")
    if not proc.is_dir():
        yield pgid  # no way to look closer: the group exists
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            yield int(entry.name)


def _postmaster(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _is_postgres_of(pid, data_dir) else None


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live postgres serving ``data_dir`` (not a pid reused since)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if state[state.rfind(")") + 2 :].startswith("Z"):
        return False
    return bool(argv) and argv[0].endswith(b"postgres") and str(data_dir).encode() in argv


def _wait(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _size(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, file)).st_size
    return total


def _name(kind: str, pid: int, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[-80:]
    return f"{kind}-{pid}-{safe}{_SUFFIX}"
