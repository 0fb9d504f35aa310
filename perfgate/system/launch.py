"""How perfgate starts other programs: target servers and database setup commands.

A program started from ``.venv/bin/pytest`` must find the executables of the same environment
(``uvicorn``, ``alembic``, ``python``) even when the venv is not activated, as tox and nox
arrange: the interpreter's scripts directory goes first on PATH. The program gets the
environment pytest was started with (not what pytest-env or a conftest.py set for the tests),
without coverage's subprocess hooks (a server measured under a tracer is several times slower),
plus what the budgets file sets. Each program runs in its own process group, so stopping it
reaches its children too.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import subprocess
import sysconfig
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from perfgate.exceptions import PerfgateError
from perfgate.system import ledger

__all__ = [
    "OutputTail",
    "process_group_alive",
    "program_environment",
    "run_to_completion",
    "scripts_directories",
    "split_command",
    "start",
    "stop_group",
]

_OUTPUT_LINES = 200  # kept for error messages
SHOWN_LINES = 40  # of those, put in a message

# Variables through which coverage.py and pytest-cov start measuring in child processes.
_COVERAGE_PREFIXES = ("COV_CORE_", "COVERAGE_PROCESS_")


def split_command(command: str) -> list[str]:
    """A command line split as a POSIX shell would (no shell runs it); ValueError if malformed."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("the command is empty")
    return argv


def scripts_directories() -> list[str]:
    """Where this interpreter's environment installs executables (the venv's ``bin`` first)."""
    found = [sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):
        user = sysconfig.get_path("scripts", f"{os.name}_user")
        if user and Path(user).is_dir():
            found.append(user)
    return [d for d in dict.fromkeys(found) if d]


def program_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` without coverage hooks, the interpreter's scripts first on PATH, then ``extra``.

    A PATH set in ``extra`` is taken as written.
    """
    env = {k: v for k, v in base.items() if not k.startswith(_COVERAGE_PREFIXES)}
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    first = scripts_directories()
    env["PATH"] = os.pathsep.join([*first, *(p for p in path if p not in first)])
    env.update(extra)
    return env


class OutputTail:
    """The last lines a program wrote to stdout and stderr, read on a background thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._reader = threading.Thread(target=self._collect, args=(stream,), daemon=True)
        self._reader.start()

    def _collect(self, stream: IO[bytes]) -> None:
        # Runs until every holder of the pipe is gone; the stream is closed here.
        with stream, contextlib.suppress(OSError, ValueError):
            for raw in stream:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def join(self, timeout: float = 5.0) -> None:
        """Wait (briefly) until the program's output is complete."""
        self._reader.join(timeout=timeout)

    def text(self) -> str:
        """All lines kept."""
        return "\n".join(self._lines)

    def shown(self) -> str:
        """The last lines, indented for a message."""
        lines = list(self._lines)[-SHOWN_LINES:]
        return "\n".join(f"  | {line}" for line in lines) if lines else "  (no output)"


def start(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a process group of its own, stdout and stderr on one pipe; noted in
    the ledger until ``stop_group`` (so a later run stops it if this one is killed)."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stopping it reaches its children
    )
    name = Path(argv[0]).name if argv else "?"
    ledger.note(
        "process-group", str(process.pid), pgid=process.pid,
        started=ledger.start_time(process.pid), command=name,
    )  # fmt: skip
    return process


def run_to_completion(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout_s: float, what: str
) -> str:
    """Run a program to its end; a failure, a timeout or Ctrl-C stops its whole group.

    Returns its output; raises PerfgateError naming ``what`` with the last lines of output.
    """
    try:
        process = start(argv, env=env, cwd=cwd)
    except OSError as exc:
        raise PerfgateError(f"{what}: cannot start {shlex.join(argv)!r}: {exc}") from exc
    assert process.stdout is not None
    tail = OutputTail(process.stdout)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(process)
        tail.join()
        raise PerfgateError(
            f"{what}: {shlex.join(argv)!r} did not finish within {timeout_s:g}s\n"
            f"last output:\n{tail.shown()}"
        ) from None
    finally:
        if process.returncode is None:  # interrupted: leave nothing running
            stop_group(process)
    tail.join()
    # Children it left behind (a daemon it started) are stopped too.
    stop_group(process)
    if code != 0:
        raise PerfgateError(
            f"{what}: {shlex.join(argv)!r} exited with code {code}\nlast output:\n{tail.shown()}"
        )
    return tail.text()


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after the grace period, reap the leader."""
    deadline = time.monotonic() + grace_s
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # Children may outlive the leader: give them the rest of the grace, then SIGKILL.
    _wait_group_gone(process.pid, deadline)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    _wait_group_gone(process.pid, time.monotonic() + 2.0)
    ledger.forget("process-group", str(process.pid))


def process_group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting to be reaped don't count)."""
    return next(ledger.group_members(pgid), None) is not None


def _wait_group_gone(pgid: int, deadline: float) -> None:
    # Orphaned zombies are reaped by init, which in a container may never happen: ignore them.
    while process_group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
