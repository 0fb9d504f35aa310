"""What a run may leave behind, looked for: processes, scratch databases; and a gate run
stopped from outside, as CI stops one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import asyncpg


class Stopped(NamedTuple):
    """How a gate run that was sent a signal ended."""

    code: int
    pid: int
    output: str


def stop_when_started(
    path: Path, marker: Path, signum: int, tmpdir: Path, args: Sequence[str] = ()
) -> Stopped:
    """Run ``pytest --perfgate`` in ``path`` (TMPDIR=tmpdir), wait until ``marker`` exists (the
    phase to stop in has begun), send ``signum``; bounded: 60 s to start, 60 s to end."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTEST_ADDOPTS": "-p no:randomly"}
    log = tmpdir / "out.txt"
    argv = [sys.executable, "-m", "pytest", "--perfgate", "-p", "no:cacheprovider", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), log.read_text()
        time.sleep(0.5)  # into the phase
        process.send_signal(signum)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Stopped(code, process.pid, log.read_text())


async def queries_mentioning(dsn: str, text: str) -> list[str]:
    """The statements other sessions are running that contain ``text``."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT query FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{text}%",
        )
    finally:
        await conn.close()
    return [r["query"] for r in rows]


def alive(pid: int) -> bool:
    """Whether the process still runs (a zombie, dead and waiting to be reaped, does not: an
    orphan's zombie stays until init reaps it, which in a container may be never)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


async def scratch_databases(dsn: str) -> set[str]:
    """The perfgate_* databases on the server."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'perfgate_%'")
    finally:
        await conn.close()
    return {r["datname"] for r in rows}


async def databases_of(dsn: str, pid: int) -> set[str]:
    """The scratch databases that the perfgate process ``pid`` created and that still exist
    (found by the comment perfgate puts on each; other runs on the same server don't count)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1",
            f"perfgate scratch database of % pid {pid} (%",
        )
    finally:
        await conn.close()
    return {r["datname"] for r in rows}


def processes_mentioning(text: str) -> list[str]:
    """The command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found
