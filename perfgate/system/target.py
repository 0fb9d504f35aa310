"""The system under test: a command perfgate starts and stops, or an ASGI app run in-process."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import difflib
import importlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any

from perfgate.exceptions import TargetError
from perfgate.probes.http import ready_verdict
from perfgate.probes.transport import ASGIApp
from perfgate.system.launch import (
    OutputTail,
    process_group_alive,
    program_environment,
    split_command,
    start,
    stop_group,
)

__all__ = [
    "CommandTarget",
    "asgi_lifespan",
    "free_port",
    "load_app",
    "process_group_alive",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CommandTarget:
    """A server started from a shell-like command line, in its own process group.

    ``start()`` / ``stop()`` for synchronous callers (or ``with``), ``async with`` for async
    ones. ``{port}`` in the command and in ``env`` values becomes the port (also exported as
    ``PORT``). The server gets ``base_env`` (default: this process's environment) prepared by
    ``launch.program_environment``, plus ``env``. ``stop()`` is idempotent and always leaves
    no process of the group behind.
    """

    def __init__(
        self,
        command: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        ready_path: str,
        ready_timeout_s: float,
        port: int | None = None,
        stop_grace_s: float = 5.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.command = command.replace("{port}", str(self.port))
        try:
            self._argv = split_command(self.command)
        except ValueError as exc:
            raise TargetError(f"target.command {command!r} cannot be split: {exc}") from None
        extra = {key: value.replace("{port}", str(self.port)) for key, value in env.items()}
        self._env = program_environment(
            os.environ if base_env is None else base_env, {"PORT": str(self.port), **extra}
        )
        self._cwd = cwd
        self._ready_path = ready_path if ready_path.startswith("/") else f"/{ready_path}"
        self._ready_timeout_s = ready_timeout_s
        self._stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None
        self._output: OutputTail | None = None

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id), or None before start."""
        return self._process.pid if self._process is not None else None

    def output(self) -> str:
        """The last lines the command wrote to stdout and stderr."""
        return self._output.text() if self._output is not None else ""

    def start(self) -> None:
        """Start the command and wait until ``GET ready_path`` answers 2xx."""
        self._launch()
        try:
            deadline = time.monotonic() + self._ready_timeout_s
            delay = 0.02
            while True:
                ready, last = self._check(deadline)
                if ready:
                    return
                if time.monotonic() >= deadline:
                    self._fail(f"not ready after {self._ready_timeout_s:g}s (last: {last})")
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.25)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period, reap the process."""
        process = self._process
        if process is None:
            return
        atexit.unregister(self.stop)
        stop_group(process, self._stop_grace_s)
        if self._output is not None:
            self._output.join()
        self._process = None

    def __enter__(self) -> CommandTarget:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> CommandTarget:
        self._launch()
        try:
            deadline = time.monotonic() + self._ready_timeout_s
            delay = 0.02
            while True:
                ready, last = await asyncio.to_thread(self._check, deadline)
                if ready:
                    return self
                if time.monotonic() >= deadline:
                    self._fail(f"not ready after {self._ready_timeout_s:g}s (last: {last})")
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.25)
        except BaseException:
            self.stop()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _launch(self) -> None:
        if self._process is not None:
            raise TargetError(f"target already started: {self.command}")
        try:
            process = start(self._argv, env=self._env, cwd=self._cwd)
        except OSError as exc:
            hint = ""
            if isinstance(exc, FileNotFoundError):
                hint = f" (looked on PATH: {self._env.get('PATH', '')})"
            raise TargetError(f"cannot start target command {self.command!r}: {exc}{hint}") from exc
        self._process = process
        atexit.register(self.stop)
        assert process.stdout is not None
        self._output = OutputTail(process.stdout)

    def _check(self, deadline: float) -> tuple[bool, str]:
        """One readiness probe, bounded by ``deadline``; TargetError once it cannot succeed."""
        process = self._process
        if process is None or process.poll() is not None:
            code = None if process is None else process.returncode
            if self._output is not None:
                self._output.join()  # so the output is complete in the message
            self._fail(f"exited with code {code} before it was ready")
        try:
            status = _status_of_get("127.0.0.1", self.port, self._ready_path, deadline)
        except OSError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        try:
            ready = ready_verdict(status, f"GET {self._ready_path}")
        except TargetError as exc:
            self._fail(str(exc))
        return ready, f"HTTP {status} from GET {self._ready_path}"

    def _fail(self, what: str) -> None:
        shown = self._output.shown() if self._output is not None else "  (no output)"
        shown = shown.replace("\r", "\n  | ")  # a progress bar's CR starts a line, in a log too
        raise TargetError(f"target command {self.command!r}: {what}\nlast output:\n{shown}")


def _status_of_get(host: str, port: int, path: str, deadline: float) -> int:
    """The status of ``GET path``, reading no longer than ``deadline`` whatever the server does.

    A server that answers a byte at a time cannot hold the probe past the deadline, as it can
    with per-read timeouts. A probe always gets at least 50 ms, so the last one before the
    deadline still says what the server answers.
    """
    deadline = max(deadline, time.monotonic() + 0.05)
    remaining = deadline - time.monotonic()
    with socket.create_connection((host, port), timeout=min(remaining, 1.0)) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n" not in head and len(head) < 1024:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the status line did not arrive in time")
            sock.settimeout(min(remaining, 1.0))
            chunk = sock.recv(256)
            if not chunk:
                break
            head += chunk
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {head[:60]!r}")
    return int(parts[1])


@contextlib.asynccontextmanager
async def asgi_lifespan(app: ASGIApp, *, timeout_s: float = 30.0) -> AsyncIterator[ASGIApp]:
    """Run the ASGI lifespan protocol around the block; yield the app to send requests to.

    The yielded app hands each request a copy of the lifespan state, as servers do. An app
    that does not speak lifespan (it raises or returns before taking the startup message) is
    used as is; one that fails startup, or does not complete startup or shutdown within
    ``timeout_s`` (``target.ready_timeout``), raises TargetError.

    Not the ``asgi-lifespan`` package: its ``LifespanManager`` (2.1) gives every request the
    same state dict, so concurrent requests of a load test would see each other's
    ``request.state``, and it waits out its startup timeout when an app returns without
    speaking lifespan, where servers (uvicorn) carry on at once.
    """
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    received = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal received
        received += 1
        return await inbox.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        await replies.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}

    async def run() -> None:
        await app(scope, receive, send)

    task = loop.create_task(run())

    async def step(event: str) -> bool:
        """Send ``lifespan.<event>``: True once completed, False if the app has no lifespan."""
        await inbox.put({"type": f"lifespan.{event}"})
        reply = loop.create_task(replies.get())
        try:
            done, _ = await asyncio.wait(
                {reply, task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            reply.cancel()
            raise
        if reply in done:
            message = reply.result()
            if message["type"] == f"lifespan.{event}.complete":
                return True
            raise TargetError(f"ASGI app {event} failed: {message.get('message', '')}".rstrip())
        reply.cancel()
        if not done:
            raise TargetError(
                f"ASGI app did not complete {event} within {timeout_s:g}s (target.ready_timeout)"
            )
        error = task.exception()
        if error is None or (event == "startup" and received == 0):
            return False  # no lifespan support: it returned, or raised before reading the event
        raise TargetError(f"ASGI app {event} failed: {type(error).__name__}: {error}")

    try:
        supported = await step("startup")
    except BaseException:
        await _cancel(task)
        raise

    async def served(request_scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if supported and request_scope["type"] in ("http", "websocket"):
            request_scope = {**request_scope, "state": dict(state)}
        await app(request_scope, receive, send)

    failed = False
    try:
        yield served
    except BaseException:
        failed = True
        raise
    finally:
        try:
            if supported and not task.done():
                await step("shutdown")
        except TargetError:
            if not failed:
                raise  # a failure in the block matters more than one in shutdown
        finally:
            await _cancel(task)


_CANCEL_GRACE_S = 1.0  # how long a cancelled lifespan task gets to end


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel the lifespan task; one that ignores cancellation is not waited for past a grace."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so that asyncio does not log it


def load_app(spec: str, cwd: Path) -> ASGIApp:
    """Import ``"package.module:attr"`` (``attr`` may be dotted), with ``cwd`` on ``sys.path``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"app must look like 'package.module:attribute', got {spec!r}")
    root = str(cwd.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise TargetError(
            f"cannot import {module_name!r} for app {spec!r} (from {root}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for name in attr.split("."):
        if not hasattr(target, name):
            close = difflib.get_close_matches(
                name, [n for n in dir(target) if not n.startswith("_")]
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TargetError(f"app {spec!r}: {target!r} has no attribute {name!r}{hint}")
        target = getattr(target, name)
    if not callable(target):
        raise TargetError(f"app {spec!r} is a {type(target).__name__}, not an ASGI callable")
    app: ASGIApp = target
    return app
