"""What a run may leave behind, looked for: processes, scratch databases."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg


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
