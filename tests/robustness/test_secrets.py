"""A distinct secret planted in every source perfgate knows, grepped for in every output.

Sources: a ``${VAR}`` in ``target.command``, one in ``target.env``, one in a header that is not
called secret, the DSN's password (handed to the app as ``{dsn}``), the token the login
captured, a ``${VAR}`` a setup step seeds into a table that a PostgreSQL error then quotes, the
target's own output when it fails to start, and the credentials of a ``base_url``. The target
(uvicorn, and a command that crashes) echoes each back, so each reaches a verdict's text.

Outputs: pytest's terminal, the JSON results, the markdown report, the GitHub step summary,
the baseline record, and through the CLI the annotations, the comment body posted to a local
recording server, the Slack alert posted to it, and the e-mail text.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from gitrepo import git, init_repo

from perfgate.budgets import load_config
from perfgate.ci.notify import build_alert, email_message
from perfgate.cli import main
from perfgate.exceptions import ConfigError
from perfgate.report import read_json
from perfgate.system.target import free_port

SECRETS = {
    "command": "cmdArgSecret-5f1c9a",
    "target.env": "envVarSecret-8d2e4b",
    "header": "headerSecret-3a7f0c",
    "dsn password": "dsnPassSecret-9b1d6e",
    "login token": "loginTokenSecret-4c8a2f",
    "postgres error": "pgDataSecret-7e3b5d",
    "target output": "stdoutSecret-2f9c1a",
    "base_url": "baseUrlSecret-6a4d8e",
}

SERVE = f'''
"""Echoes what it was given back in error answers, as a careless app does."""
import os, sys, uvicorn

TOKEN = "{SECRETS["login token"]}"
FLAG = sys.argv[sys.argv.index("--flag") + 1]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    headers = {{k.decode(): v.decode() for k, v in scope["headers"]}}
    path = scope["path"]
    status, body = 500, ""
    if path == "/healthz":
        status, body = 200, "ok"
    elif path == "/login":
        status, body = 200, '{{"token": "' + TOKEN + '"}}'
    elif path == "/echo/argv":
        body = "echo: " + FLAG
    elif path == "/echo/env":
        body = "echo: " + os.environ["APP_SECRET"]
    elif path == "/echo/dsn":
        body = "echo: " + os.environ["DATABASE_URL"]
    elif path == "/echo/header":
        body = "echo: " + headers.get("x-tenant", "")
    elif path == "/echo/auth":
        body = "echo: " + headers.get("authorization", "")
    await send({{"type": "http.response.start", "status": status, "headers": []}})
    await send({{"type": "http.response.body", "body": body.encode()}})


port = int(sys.argv[sys.argv.index("--port") + 1])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
'''

SEED = """
import asyncio, os, asyncpg

async def main():
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await conn.execute("CREATE TABLE tokens (secret text)")
    await conn.execute("INSERT INTO tokens VALUES ($1)", os.environ["SEED"])
    await conn.close()

asyncio.run(main())
"""

CRASH = """
import os, sys
print("starting with banner: " + os.environ["BANNER"], flush=True)
sys.exit(1)
"""


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """GitHub's comments API and a Slack webhook, as far as perfgate uses them; records all."""
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            seen.append(("GET", self.path, ""))
            self._answer(200, [])

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(("POST", self.path, self.rfile.read(length).decode()))
            if self.path.startswith("/hook"):
                self._answer(200, "ok")
            else:
                comment = {"id": 1, "html_url": "http://x/1", "user": {"login": "bot"}}
                self._answer(201, comment)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _cli(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(list(args))
    return out.getvalue() + err.getvalue()


def outputs(pytester: pytest.Pytester, result: pytest.RunResult) -> dict[str, str]:
    """Every output of a run and of the CLI commands that read its results."""
    path = pytester.path
    found = {
        "terminal": result.stdout.str() + result.stderr.str(),
        "json": (path / "out.json").read_text(),
        "markdown": (path / "report.md").read_text(),
        "step summary": (path / "summary.md").read_text(),
    }
    for i, record in enumerate(sorted((path / "store").glob("**/*.json"))):
        found[f"baseline record {i}"] = record.read_text()
    with recording_server() as (url, seen):
        found["annotations"] = _cli("annotate", "out.json")
        pr = ("--repo", "o/r", "--pr", "1", "--api-url", url)
        found["comment cli"] = _cli("comment", "out.json", *pr)
        hook = ("--slack-webhook", f"{url}/hook", "--any-branch")
        found["notify cli"] = _cli("notify", "out.json", *hook)
    for i, (method, where, body) in enumerate(seen):
        found[f"request {i}: {method} {where}"] = body
    assert any(where.endswith("/comments") and m == "POST" for m, where, _ in seen), seen
    assert any(where.startswith("/hook") for _, where, _ in seen), seen
    alert = build_alert(read_json(path / "out.json"), {}, None)
    found["e-mail"] = email_message(alert, "perfgate@example.com", ["a@example.com"]).as_string()
    return found


def assert_no_secret(found: dict[str, str]) -> None:
    leaks = [
        f"{source} secret in {where}"
        for where, text in found.items()
        for source, secret in SECRETS.items()
        if secret[:10] in text  # a secret cut short leaks too
    ]
    assert leaks == []


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for source, secret in SECRETS.items():
        monkeypatch.setenv("PG_TEST_" + source.upper().replace(" ", "_").replace(".", "_"), secret)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_notASecretOfThisTest")
    for name in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_REF"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    init_repo(pytester.path)
    return pytester


def _with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-q", "-m", "app")
    return pytester.runpytest(
        "--perfgate",
        "--perfgate-json=out.json",
        "--perfgate-report=report.md",
        "--perfgate-save",
        "--perfgate-store=dir:store",
        "-rA",
    )


def test_no_secret_of_a_running_target_reaches_any_output(
    project: pytest.Pytester, pg_server_dsn: str
) -> None:
    project.makepyfile(serve=SERVE, seed=SEED)
    dsn = _with_password(pg_server_dsn, SECRETS["dsn password"])  # trust auth: any will do
    project.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target:
          command: "python serve.py --port {{port}} --flag ${{PG_TEST_COMMAND}}"
          env: {{APP_SECRET: "${{PG_TEST_TARGET_ENV}}", DATABASE_URL: "{{dsn}}"}}
          headers: {{X-Tenant: "${{PG_TEST_HEADER}}", Authorization: "Bearer {{login.token}}"}}
          login: {{request: POST /login, json: {{user: ci}}}}
        database:
          dsn: "{dsn}"
          setup:
            - run: python seed.py
              env: {{DATABASE_URL: "{{dsn}}", SEED: "${{PG_TEST_POSTGRES_ERROR}}"}}
        defaults: {{requests: 3, concurrency: 1, warmup: 0, runs: 2}}
        endpoints:
          argv: {{request: GET /echo/argv, budget: {{error_rate: 0}}}}
          env: {{request: GET /echo/env, budget: {{error_rate: 0}}}}
          dsn: {{request: GET /echo/dsn, budget: {{error_rate: 0}}}}
          header: {{request: GET /echo/header, budget: {{error_rate: 0}}}}
          auth: {{request: GET /echo/auth, budget: {{error_rate: 0}}}}
        queries:
          quoted: {{sql: "SELECT secret::int FROM tokens"}}
        """,
    )
    result = _run(project)
    result.assert_outcomes(failed=6)
    found = outputs(project, result)
    assert_no_secret(found)
    # Each secret did reach a verdict, masked: the test is not vacuous.
    results = {r["name"]: r for r in json.loads(found["json"])["results"]}
    for name in ("argv", "env", "header"):
        assert results[name]["details"]["error_summary"] == ["HTTP 500 ×3: echo: ***"]
    assert results["auth"]["details"]["error_summary"] == ["HTTP 500 ×3: echo: Bearer ***"]
    (dsn_echo,) = results["dsn"]["details"]["error_summary"]
    assert dsn_echo.startswith("HTTP 500 ×3: echo: postgresql://postgres:***@")
    assert 'invalid input syntax for type integer: "***"' in results["quoted"]["error"]


def test_no_secret_of_a_target_that_fails_to_start_reaches_any_output(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(crash=CRASH)
    project.makefile(
        ".yaml",
        budgets="""
        version: 1
        target:
          command: "python crash.py --port {port}"
          env: {BANNER: "${PG_TEST_TARGET_OUTPUT}"}
        endpoints:
          home: {request: GET /}
        """,
    )
    result = _run(project)
    result.assert_outcomes(failed=1)
    found = outputs(project, result)
    assert_no_secret(found)
    assert "  | starting with banner: ***" in found["terminal"]


def test_no_credential_of_a_base_url_reaches_any_output(project: pytest.Pytester) -> None:
    closed = free_port()  # nothing listens: the target is never ready
    secret = SECRETS["base_url"]
    project.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target: {{base_url: "http://ci-user:{secret}@127.0.0.1:{closed}", ready_timeout: 300ms}}
        endpoints:
          home: {{request: GET /}}
        """,
    )
    result = _run(project)
    result.assert_outcomes(failed=1)
    found = outputs(project, result)
    assert_no_secret(found)
    assert f"target not ready: GET http://ci-user:***@127.0.0.1:{closed}/healthz" in found["json"]


def test_every_var_value_is_a_secret_but_numbers_and_short_ones(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "version: 1\n"
        'target: {command: "serve ${MODULE} --port ${PORT}", ready: "${READY}",\n'
        '         env: {LEVEL: "${LEVEL}", RATIO: "${RATIO}", TOKEN: "${TOKEN:-default-token}"}}\n'
    )
    env = {"MODULE": "shop.app", "PORT": "8000", "READY": "/up", "LEVEL": "debug", "RATIO": "0.25"}
    assert load_config(path, env).secrets == ("shop.app", "debug")  # the default is no secret


def test_a_budgets_file_error_does_not_quote_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text('version: 1\ntarget: {app: "a:b"}\ndefaults: {timeout: "${TIMEOUT}"}\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, {"TIMEOUT": "s3cret-token"})
    assert "defaults.timeout: expected a duration" in str(error.value)
    assert "got '***'" in str(error.value)
    assert "s3cret" not in str(error.value)
    path.write_text('version: 1\ntarget: {base_url: "${URL}"}\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, {"URL": "ftp://user:pw@s3cret-host.example"})
    assert "target.base_url: expected an http:// or https:// URL" in str(error.value)
    assert "s3cret" not in str(error.value)
