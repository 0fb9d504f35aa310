"""The resources of one run: the scratch database, the target and its login, the event loop.

Nothing starts until the first item needs it, and ``close`` undoes whatever was started, in
reverse order, also after a failure or Ctrl-C. A resource that failed to start is not tried
again for every item: its error is the error of each item that needs it. Between items the
database is restored when an item wrote to it (``begin_item``, ``watching_writes``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from perfgate import __version__
from perfgate.budgets.model import Config, Endpoint, Login
from perfgate.budgets.placeholders import DSN, fill, names
from perfgate.exceptions import DatabaseError, PerfgateError, TargetError
from perfgate.probes.client import make_client
from perfgate.probes.http import wait_ready
from perfgate.probes.requests import RequestSpec, RequestValues
from perfgate.probes.transport import ASGIApp
from perfgate.redact import redact_text, secret_values
from perfgate.system.database import PostgresServer, ScratchDatabase, dsn_values, open_server
from perfgate.system.login import LoginAnswer, log_in
from perfgate.system.loop import LoopThread
from perfgate.system.target import CommandTarget, asgi_lifespan, load_app

__all__ = ["APP_BASE_URL", "System"]

APP_BASE_URL = "http://perfgate.asgi"
Json = object  # a value decoded from JSON (the budgets file's json: bodies)


@dataclass(slots=True)
class System:
    """What one run starts, owns and stops; ``environ`` is pytest's launch environment."""

    config: Config
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    loop: LoopThread = field(default_factory=LoopThread)
    values: RequestValues = field(default_factory=RequestValues)  # {seq} over the whole run
    _server: PostgresServer | None = None
    _database: ScratchDatabase | None = None
    # resource -> why it did not start, and the item whose error showed that in full (None:
    # not shown yet)
    _failed: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _target_ready: bool = False
    _base_url: str | None = None
    _app: ASGIApp | None = None
    _command: CommandTarget | None = None
    _lifespan: contextlib.AsyncExitStack | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _login: LoginAnswer | None = None
    _handed: set[str] = field(default_factory=set)  # login values sent: secrets
    _dirty: bool = False  # an endpoint wrote to the database since it was last restored
    statements_unavailable: str = ""  # why pg_stat_statements cannot be read (said once)

    # -- the database ------------------------------------------------------------------------

    @property
    def isolating(self) -> bool:
        """Whether each item starts from the database as setup left it (a target uses it)."""
        return self.config.database.isolate and self.config.target.kind in ("command", "app")

    @property
    def attributing(self) -> bool:
        """Whether endpoints' statements can be read: the target uses the scratch database."""
        return (
            self.config.database.enabled
            and self.config.target.kind in ("command", "app")
            and any(e.db_probes > 0 for e in self.config.endpoints)
        )

    def database(self, item: str = "the first item") -> ScratchDatabase:
        """The scratch database, created (and set up) on first use (for ``item``)."""
        self._not_failed("database", item)
        if self._database is None:
            try:
                if self._server is None:
                    self._server = open_server(self.config.database.dsn)
                database = ScratchDatabase.create(
                    self._server, self.config.database.setup, environ=self.environ
                )
                try:
                    if self.attributing:
                        # Before the pristine copy, so every restore has it too.
                        self.statements_unavailable = database.enable_statements()
                    if self.isolating:
                        database.keep_pristine()
                except BaseException:  # a failure, or a stop: nothing of it stays
                    database.drop()
                    raise
            except PerfgateError as exc:
                self._failed["database"] = (str(exc), item)
                raise
            self._database = database
        return self._database

    def _not_failed(self, resource: str, item: str) -> None:
        """Raise the error of a resource that did not start: in full once, then shortly."""
        if resource not in self._failed:
            return
        kind = DatabaseError if resource == "database" else TargetError
        message, shown = self._failed[resource]
        if shown is None:
            self._failed[resource] = (message, item)
            raise kind(message)
        first = message.strip().split("\n", 1)[0]
        raise kind(
            f"the {resource} could not be started (the whole error is shown for {shown}): {first}"
        )

    def begin_item(self) -> None:
        """Start an item from the database as setup left it, if an earlier item wrote to it."""
        if not self._dirty or self._database is None:
            return
        try:
            self.stop_target()  # its connections end with the database
            self._database.restore()
        except PerfgateError as exc:
            # Every later item that needs the database reports this, none measures stale data.
            why = f"restoring the database for the next item failed: {exc}"
            self._failed["database"] = self._failed["target"] = (why, None)
        self._dirty = False

    @contextlib.contextmanager
    def watching_writes(self) -> Iterator[None]:
        """Note whether the block wrote to the database (so the next item gets it restored)."""
        if not self.isolating or self._database is None:
            yield
            return
        database = self._database
        mark = database.write_mark()
        try:
            yield
        finally:
            self._dirty = self._dirty or database.write_mark() != mark

    # -- the target --------------------------------------------------------------------------

    def _fill(self, text: str, item: str) -> str:
        if any(name in DSN for name in names(text)):
            text = fill(text, dsn_values(self.database(item).dsn))
        return text

    def start_target(self, item: str = "the first item") -> None:
        """Start the target (and log in) unless it runs; TargetError once and for all if not."""
        if self._target_ready:
            return
        self._not_failed("target", item)
        try:
            self._launch_target(item)
            if self.config.target.login is not None:
                self._login = self.loop.run(self._log_in(self.config.target.login))
        except PerfgateError as exc:
            if not isinstance(exc, DatabaseError):
                self._failed["target"] = (redact_text(str(exc), self.secrets()), item)
            self.stop_target()
            raise
        self._target_ready = True

    def _launch_target(self, item: str) -> None:
        target = self.config.target
        if target.kind == "none":
            raise TargetError(
                "budgets file has no target: set target.command, target.app or target.base_url"
            )
        env = {k: self._fill(v, item) for k, v in target.env.items()}
        if target.kind == "command":
            self._command = CommandTarget(
                self._fill(target.value, item),
                env=env,
                cwd=self.config.root,
                ready_path=target.ready,
                ready_timeout_s=target.ready_timeout_s,
                base_env=self.environ,
            )
            self._command.start()
            self._base_url = self._command.base_url
        elif target.kind == "app":
            # An in-process app reads its settings from os.environ; restored in close().
            for key, value in env.items():
                self._saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
            app = load_app(target.value, self.config.root)
            self._lifespan = contextlib.AsyncExitStack()
            # The yielded app carries the lifespan's startup state into every request.
            lifespan = asgi_lifespan(app, timeout_s=target.ready_timeout_s)
            self._app = self.loop.run(self._lifespan.enter_async_context(lifespan))
            self._base_url = APP_BASE_URL
        else:
            self._base_url = target.value.rstrip("/")
            self.loop.run(self._wait_ready())

    def client(self, timeout_s: float, connections: int) -> httpx.AsyncClient:
        """A client for the running target (use it on ``loop``)."""
        if self._base_url is None:
            raise TargetError("the target is not started")
        return make_client(
            self._base_url,
            headers={},
            timeout_s=timeout_s,
            max_connections=connections,
            app=self._app,
        )

    async def _wait_ready(self) -> None:
        async with self.client(5.0, 1) as client:
            await wait_ready(client, self.config.target.ready, self.config.target.ready_timeout_s)

    async def _log_in(self, login: Login) -> LoginAnswer:
        # Headers that do not depend on the login itself go with it (an API key, say).
        headers = {k: v for k, v in self.config.target.headers.items() if "{login." not in v}
        async with self.client(10.0, 1) as client:
            limit = self.config.defaults.max_response_bytes
            return await log_in(client, login, headers, self.values, limit)

    def request_for(self, endpoint: Endpoint) -> RequestSpec:
        """What to send: the target's and the endpoint's headers, login values filled in."""
        headers = {**self.config.target.headers, **endpoint.headers}
        texts = [endpoint.path, *headers.values(), endpoint.body or "", _json_text(endpoint.json)]
        wanted = {n for t in texts for n in names(t) if n.startswith("login.")}
        if wanted and self._login is None:
            raise TargetError("{login...} is used, but there is no login answer")
        values = {n: self._login.value(n) for n in sorted(wanted)} if self._login else {}
        self._handed.update(values.values())
        return RequestSpec(
            method=endpoint.method,
            path=fill(endpoint.path, values),
            headers=tuple((k, fill(v, values)) for k, v in headers.items()),
            json=_fill_json(endpoint.json, values),
            body=fill(endpoint.body, values).encode() if endpoint.body is not None else None,
        )

    def stop_target(self) -> None:
        """Stop what ``start_target`` started (a base_url target is only forgotten)."""
        errors: list[BaseException] = []
        if self._lifespan is not None:
            stack, self._lifespan = self._lifespan, None
            try:
                self.loop.run(stack.aclose())
            except Exception as exc:
                errors.append(exc)
        if self._command is not None:
            command, self._command = self._command, None
            command.stop()
        self._target_ready = False
        self._login = None
        if errors:
            raise TargetError(f"the target did not stop cleanly: {errors[0]}")

    # -- the run as a whole ------------------------------------------------------------------

    def secrets(self, extra_headers: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Strings that must never reach a report, from every source the run knows: the
        budgets file's ``${VAR}`` values, secret headers (the target's, every endpoint's,
        ``extra_headers``), DSN and ``base_url`` credentials, the login values sent."""
        config = self.config
        urls = [d for d in (config.database.dsn,) if d]
        if self._server is not None:
            urls.append(self._server.dsn)
        if config.target.kind == "base_url":
            urls.append(config.target.value)
        every = [config.target.headers, *(e.headers for e in config.endpoints), extra_headers or {}]
        if config.target.login is not None:
            every.append(config.target.login.headers)
        found = list(secret_values({}, urls))
        for headers in every:
            # A header filled from the login is a template here; its values are in _handed.
            found += secret_values({k: v for k, v in headers.items() if "{login." not in v})
        return (*found, *config.secrets, *sorted(self._handed))

    def notes(self) -> list[str]:
        """What the summary should say about the run's resources."""
        if self._database is None:
            return []
        out = [f"database: {self._database.describe()}", *self._database.notes]
        if self.statements_unavailable:
            out.append(f"statements per request were not read: {self.statements_unavailable}")
        if self._database.restores:
            db = self._database
            out.append(
                f"isolation: the database was restored {db.restores} time(s) after an item wrote "
                f"to it ({db.restore_seconds:.2f}s, plus restarting the target)"
            )
        return out

    def environment(self) -> dict[str, object]:
        """What the numbers were measured on (compared with a baseline's)."""
        env: dict[str, object] = {
            "perfgate": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count() or 0,
            "target": self.config.target.kind,
        }
        if self._server is not None:
            env["database"] = self._server.kind
        if self._database is not None:
            env["dataset_size"] = self._database.size_bytes  # shown, not compared
            env["table_rows"] = dict(self._database.table_rows)
        return env

    def close(self) -> None:
        """Stop the target, drop the database, stop the loop — each even if another fails."""
        steps: list[Callable[[], None]] = [self.stop_target, self._restore_env, self.loop.close]
        if self._database is not None:
            db, self._database = self._database, None
            steps.append(db.drop)
        if self._server is not None:
            server, self._server = self._server, None
            steps.append(server.close)
        errors: list[BaseException] = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep tearing down; report the first problem after
                errors.append(exc)
        if errors:
            raise PerfgateError(f"perfgate could not clean up completely: {errors[0]}")

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()


def _json_text(value: Json) -> str:
    return "" if value is None else json.dumps(value, default=str)


def _fill_json(value: Json, values: Mapping[str, str]) -> Json:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items()}
    return value


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
