"""Target lifecycle: a real command started and stopped, ASGI lifespan, loading an app by name."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from perfgate.exceptions import TargetError
from perfgate.probes.client import make_client
from perfgate.probes.http import drive
from perfgate.probes.requests import RequestSpec
from perfgate.system.target import (
    CommandTarget,
    asgi_lifespan,
    load_app,
    process_group_alive,
)

SERVER = textwrap.dedent(
    """
    import http.server, os, signal, subprocess, sys, time

    port, status = int(sys.argv[1]), int(sys.argv[2])
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--child" in sys.argv:  # a grandchild that must not outlive the target
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid, flush=True)
    print("listening on", port, "env", os.environ.get("GREETING"), flush=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SERVER)
    return path


def _command(script: Path, *args: str, status: int = 200) -> str:
    return " ".join([sys.executable, str(script), "{port}", str(status), *args])


def _gone(pid: int) -> bool:
    """True when neither the process nor anything else in its group is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return not process_group_alive(pid)
    return False


def _target(script: Path, *args: str, status: int = 200, timeout: float = 10) -> CommandTarget:
    return CommandTarget(
        _command(script, *args, status=status),
        env={"GREETING": "hello-{port}"},
        cwd=script.parent,
        ready_path="/health",
        ready_timeout_s=timeout,
    )


def test_a_command_starts_answers_and_leaves_nothing_behind(script: Path) -> None:
    with _target(script, "--child") as target:
        pid = target.pid
        assert pid is not None
        assert httpx.get(f"{target.base_url}/x").text == "ok"
        assert f"env hello-{target.port}" in target.output()
    assert _gone(pid)
    target.stop()  # idempotent


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(script: Path) -> None:
    target = CommandTarget(
        _command(script, "--ignore-term"),
        env={},
        cwd=script.parent,
        ready_path="/",
        ready_timeout_s=10,
        stop_grace_s=0.3,
    )
    target.start()
    pid = target.pid
    assert pid is not None
    started = time.monotonic()
    target.stop()
    assert _gone(pid)
    assert time.monotonic() - started < 3


def test_early_exit_is_a_target_error_with_code_and_output(tmp_path: Path) -> None:
    command = f"{sys.executable} -c \"print('boom: no DATABASE_URL'); raise SystemExit(3)\""
    target = CommandTarget(
        command, env={}, cwd=tmp_path, ready_path="/", ready_timeout_s=10, port=None
    )
    with pytest.raises(TargetError, match=r"exited with code 3") as caught:
        target.start()
    assert "| boom: no DATABASE_URL" in str(caught.value)
    assert target.pid is None


def test_never_ready_is_a_target_error_after_the_timeout(script: Path) -> None:
    target = _target(script, status=503, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"not ready after 0.5s \(last: HTTP 503") as caught:
        target.start()
    assert time.monotonic() - started < 3
    assert "listening on" in str(caught.value)
    assert target.pid is None


def test_a_missing_executable_is_a_target_error(tmp_path: Path) -> None:
    target = CommandTarget(
        "/nonexistent/server --port {port}",
        env={},
        cwd=tmp_path,
        ready_path="/",
        ready_timeout_s=1,
    )
    with pytest.raises(TargetError, match="cannot start target command"):
        target.start()


def test_keyboard_interrupt_inside_the_block_still_stops_it(script: Path) -> None:
    pids: list[int | None] = []

    def interrupted() -> None:
        with _target(script, "--child") as target:
            pids.append(target.pid)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert pids[0] is not None
    assert _gone(pids[0])


@pytest.mark.asyncio
async def test_async_with_and_drive(script: Path) -> None:
    async with _target(script) as target:
        pid = target.pid
        assert pid is not None
        client = make_client(target.base_url, headers={}, timeout_s=5, max_connections=2)
        async with client:
            run = await drive(client, RequestSpec("GET", "/"), requests=6, concurrency=2, warmup=1)
    assert [s.error for s in run.samples] == [None] * 6
    assert _gone(pid)


@pytest.mark.asyncio
async def test_async_never_ready_stops_the_process(script: Path) -> None:
    target = _target(script, status=500, timeout=0.3)
    with pytest.raises(TargetError, match="HTTP 500"):
        async with target:
            pass
    assert target.pid is None


class LifespanApp:
    """An ASGI app that records its lifespan and hands its state to requests."""

    def __init__(self, fail: str | None = None) -> None:
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                event = message["type"].split(".")[1]
                self.events.append(event)
                if self.fail == event:
                    await send({"type": f"lifespan.{event}.failed", "message": "no database"})
                    return
                scope["state"]["pool"] = "ready"
                await send({"type": f"lifespan.{event}.complete"})
                if event == "shutdown":
                    return
        body = str(scope.get("state", {}).get("pool")).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _get(app: Any, path: str = "/") -> str:
    client = make_client("http://app", headers={}, timeout_s=5, max_connections=1, app=app)
    async with client:
        return (await client.get(path)).text


@pytest.mark.asyncio
async def test_asgi_lifespan_runs_startup_and_shutdown_and_shares_state() -> None:
    app = LifespanApp()
    async with asgi_lifespan(app) as served:
        assert app.events == ["startup"]
        assert await _get(served) == "ready"
    assert app.events == ["startup", "shutdown"]


@pytest.mark.asyncio
async def test_an_error_in_the_block_still_shuts_the_app_down() -> None:
    app = LifespanApp(fail="shutdown")
    with pytest.raises(ZeroDivisionError):
        async with asgi_lifespan(app):
            1 / 0  # noqa: B018
    assert app.events == ["startup", "shutdown"]  # its shutdown failure does not mask ours


@pytest.mark.asyncio
async def test_asgi_startup_failure_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="startup failed: no database"):
        async with asgi_lifespan(LifespanApp(fail="startup")):
            pass


@pytest.mark.asyncio
async def test_asgi_startup_exception_is_a_target_error() -> None:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("cannot connect to redis")

    with pytest.raises(TargetError, match="RuntimeError: cannot connect to redis"):
        async with asgi_lifespan(app):
            pass


@pytest.mark.asyncio
async def test_asgi_shutdown_failure_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="shutdown failed: no database"):
        async with asgi_lifespan(LifespanApp(fail="shutdown")):
            pass


@pytest.mark.asyncio
async def test_an_app_without_lifespan_support_is_served_as_is() -> None:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("only http")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    async with asgi_lifespan(app) as served:
        assert await _get(served) == "plain"


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    package = tmp_path / "pgapp_under_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text(
        "class Holder:\n    async def asgi(self, scope, receive, send):\n        pass\n"
        "holder = Holder()\nsettings = {'debug': True}\n"
    )
    (package / "broken.py").write_text("import not_a_module_anywhere\n")
    return tmp_path


def test_load_app_imports_a_dotted_attribute(app_dir: Path) -> None:
    app = load_app("pgapp_under_test.web:holder.asgi", app_dir)
    assert callable(app)
    assert str(app_dir.resolve()) in sys.path


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pgapp_under_test.web", "must look like 'package.module:attribute'"),
        ("pgapp_under_test.broken:app", "ModuleNotFoundError: No module named 'not_a_module"),
        ("pgapp_under_test.nowhere:app", "cannot import 'pgapp_under_test.nowhere'"),
        ("pgapp_under_test.web:holdr", "did you mean 'holder'"),
        ("pgapp_under_test.web:settings", "is a dict, not an ASGI callable"),
    ],
)
def test_load_app_errors_say_what_is_wrong(app_dir: Path, spec: str, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_app(spec, app_dir)
