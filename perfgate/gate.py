"""A gate session: owns the scratch database, the target and the loop, and measures items.

Nothing starts until the first item needs it, and ``close`` undoes whatever was started, in
reverse order, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg

from perfgate import __version__
from perfgate.config import Config, Endpoint, Query
from perfgate.database import PostgresServer, ScratchDatabase, open_server
from perfgate.exceptions import PerfgateError, QueryError, TargetError
from perfgate.loop import LoopThread
from perfgate.metrics import endpoint_checks, endpoint_metrics, error_summary
from perfgate.probes.http import RequestSpec, drive, wait_ready
from perfgate.probes.postgres import measure_query
from perfgate.probes.transport import make_client
from perfgate.querygate import gate_query, query_error_result
from perfgate.redact import redact_text, secret_values
from perfgate.result import ERROR, Result, bounded, decide
from perfgate.target import CommandTarget, asgi_lifespan, load_app

APP_BASE_URL = "http://perfgate.asgi"


@dataclass(slots=True)
class Gate:
    """Lazily started resources for one run; every measurement goes through here."""

    config: Config
    loop: LoopThread = field(default_factory=LoopThread)
    _server: PostgresServer | None = None
    _database: ScratchDatabase | None = None
    _target_ready: bool = False
    _base_url: str | None = None
    _app: Any = None
    _command: CommandTarget | None = None
    _lifespan: contextlib.AsyncExitStack | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _postgres_version: str | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    # -- resources ---------------------------------------------------------------------------

    def database(self) -> ScratchDatabase:
        """The scratch database, created (and set up) on first use."""
        if self._database is None:
            if self._server is None:
                self._server = open_server(self.config.database.dsn)
            self._database = ScratchDatabase.create(self._server, self.config.database.setup)
        return self._database

    def _fill(self, text: str, port: int | None = None) -> str:
        if "{dsn}" in text:
            text = text.replace("{dsn}", self.database().dsn)
        if port is not None:
            text = text.replace("{port}", str(port))
        return text

    def _start_target(self) -> None:
        if self._target_ready:
            return
        target = self.config.target
        if target.kind == "none":
            raise TargetError(
                "budgets file has no target: set target.command, target.app or target.base_url"
            )
        env = {k: self._fill(v) for k, v in target.env.items()}
        if target.kind == "command":
            self._command = CommandTarget(
                self._fill(target.value),
                env=env,
                cwd=self.config.root,
                ready_path=target.ready,
                ready_timeout_s=target.ready_timeout_s,
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
            self._app = self.loop.run(self._lifespan.enter_async_context(asgi_lifespan(app)))
            self._base_url = APP_BASE_URL
        else:
            self._base_url = target.value.rstrip("/")
            self.loop.run(self._wait_ready())
        self._target_ready = True

    async def _wait_ready(self) -> None:
        assert self._base_url is not None
        async with make_client(
            self._base_url,
            headers=self.config.target.headers,
            timeout_s=5.0,
            max_connections=1,
            app=self._app,
        ) as client:
            await wait_ready(client, self.config.target.ready, self.config.target.ready_timeout_s)

    def close(self) -> None:
        """Stop the target, drop the database, stop the loop — each even if another fails."""
        steps: list[Callable[[], None]] = []
        if self._lifespan is not None:
            stack, self._lifespan = self._lifespan, None
            steps.append(lambda: self.loop.run(stack.aclose()))
        if self._command is not None:
            command, self._command = self._command, None
            steps.append(command.stop)
        steps.append(self._restore_env)
        steps.append(self.loop.close)
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
        self._target_ready = False
        if errors:
            raise PerfgateError(f"perfgate could not clean up completely: {errors[0]}")

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    # -- measuring ---------------------------------------------------------------------------

    def secrets(self, extra_headers: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Strings that must never reach a report: credentials, DSN passwords, env values sent."""
        dsns = [d for d in (self.config.database.dsn,) if d]
        headers = {**self.config.target.headers, **dict(extra_headers or {})}
        return secret_values(headers, dsns) + self.config.secrets

    def run_endpoint(self, endpoint: Endpoint, source: str | None = None) -> Result:
        """Measure one endpoint and gate it on its budget; errors become an ERROR result."""
        try:
            self._start_target()
            return self.loop.run(self.endpoint(endpoint, source))
        except PerfgateError as exc:
            return self._error(
                endpoint.name, "endpoint", exc, source, _describe(endpoint), endpoint.headers
            )

    async def endpoint(self, endpoint: Endpoint, source: str | None = None) -> Result:
        """The measurement itself; must run on ``self.loop``."""
        assert self._base_url is not None
        headers = {**self.config.target.headers, **endpoint.headers}
        spec = RequestSpec(
            method=endpoint.method,
            path=endpoint.path,
            json=endpoint.json,
            body=endpoint.body.encode() if endpoint.body is not None else None,
        )
        async with make_client(
            self._base_url,
            headers=headers,
            timeout_s=endpoint.timeout_ms / 1000,
            max_connections=endpoint.concurrency,
            app=self._app,
        ) as client:
            run = await drive(
                client,
                spec,
                requests=endpoint.requests,
                concurrency=endpoint.concurrency,
                warmup=endpoint.warmup,
                expect_status=endpoint.expect_status,
            )
        metrics = endpoint_metrics(run, self.config.defaults.confidence)
        checks = endpoint_checks(metrics, endpoint.budget, self.config.defaults.confidence)
        secrets = self.secrets(endpoint.headers)
        return Result(
            name=endpoint.name,
            kind="endpoint",
            status=decide(checks),
            metrics=metrics,
            checks=checks,
            source=source,
            description=redact_text(_describe(endpoint), secrets),
            details={
                "requests": endpoint.requests,
                "concurrency": endpoint.concurrency,
                "warmup": endpoint.warmup,
                "error_summary": [redact_text(e, secrets) for e in error_summary(run)],
            },
            samples={
                "latency_ms": bounded(
                    [s.latency_ns / 1e6 for s in run.samples if s.status is not None]
                ),
                "server_ms": bounded([s.server_ms for s in run.samples if s.server_ms is not None]),
            },
        )

    def run_query(self, query: Query, source: str | None = None) -> Result:
        """Measure one query on the scratch database and gate it; errors become ERROR results."""
        try:
            dsn = self.database().dsn
            return self.loop.run(self.query(query, dsn, source))
        except PerfgateError as exc:
            return self._error(query.name, "query", exc, source, " ".join(query.sql.split()), {})

    async def query(self, query: Query, dsn: str, source: str | None = None) -> Result:
        """The query measurement itself; must run on ``self.loop``."""
        try:
            conn = await asyncpg.connect(dsn, timeout=15)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise QueryError(f"cannot connect to the scratch database: {exc}") from exc
        try:
            measurement = await measure_query(conn, query)
        except QueryError as exc:
            return query_error_result(query, exc, source)
        finally:
            await conn.close()
        self._postgres_version = measurement.server_version
        return gate_query(query, measurement, self.config.defaults, source=source)

    def _error(
        self,
        name: str,
        kind: str,
        exc: BaseException,
        source: str | None,
        description: str,
        headers: Mapping[str, str],
    ) -> Result:
        return Result(
            name=name,
            kind=kind,
            status=ERROR,
            error=redact_text(str(exc), self.secrets(headers)),
            source=source,
            description=redact_text(description, self.secrets(headers)),
        )

    # -- environment -------------------------------------------------------------------------

    def environment(self) -> dict[str, Any]:
        """What the numbers were measured on (compared with a baseline's)."""
        env: dict[str, Any] = {
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
            env["dataset_size"] = self._database.size_bytes
        if self._postgres_version:
            env["postgres_version"] = self._postgres_version
        return env


def _describe(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def now_iso() -> str:
    """The current UTC time, ISO 8601, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
