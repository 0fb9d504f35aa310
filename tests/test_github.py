"""`perfgate comment` against a real local HTTP server that behaves like GitHub's REST API.

The fake API enforces the bearer token, paginates (per_page, Link header), sends rate-limit
headers, answers 403 for a token without permission and 422 for a body over 65,536 characters,
and serves under /api/v3 as GitHub Enterprise Server does (so GITHUB_API_URL is honoured).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from gitrepo import git, init_repo, webapp_source

from perfgate.ci.github import (
    BODY_LIMIT,
    MARKER,
    GitHubClient,
    GitHubError,
    comment_body,
    fit_body,
    marker,
    run_url,
)
from perfgate.cli import main
from perfgate.plan import Plan, parse_plan
from perfgate.report import write_json
from perfgate.verdict.details import EndpointDetails, QueryDetails
from perfgate.verdict.model import BaselineInfo, GateReport, Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status, check_limit

TOKEN = "ghs_s3cretT0kenValue1234567890"
REPO = "octo-org/shop"
PREFIX = "/api/v3"
BOT = {"login": "github-actions[bot]", "type": "Bot"}


# --- a realistic report ---------------------------------------------------------------------


def ms(value: float, low: float | None = None, high: float | None = None) -> Metric:
    return Metric(value, "ms", low, high, 0.95 if low is not None else None)


def regressed_endpoint(name: str = "clients") -> Verdict:
    p95 = ms(182.4, 171.3, 190.2)
    return Verdict(
        name=name,
        kind=Kind.ENDPOINT,
        status=Status.FAILED,
        metrics={"p50_ms": ms(41.0, 38.2, 44.9), "p95_ms": p95, "p99_ms": ms(212.0, 190, 240)},
        checks=(check_limit("p95_ms", 150, p95), check_limit("p99_ms", 250, ms(212.0))),
        source="budgets.yaml:31",
        description="GET /api/clients?supplier_id=7",
        details=EndpointDetails(requests=300, concurrency=10, warmup=30),
        comparisons=(
            Comparison(
                metric="p95_ms",
                baseline=ms(91.2, 87.0, 95.1),
                current=p95,
                change=Metric(1.0, "ratio", 0.84, 1.12, 0.95),
                threshold=0.10,
                outcome=Outcome.REGRESSION,
                reason="+100.0% [+84.0%, +112.0%] is above the 10% threshold",
            ),
        ),
    )


def wide_plan(scans: int) -> Plan:
    """An Append over ``scans`` index scans: a long plan tree in the report."""
    children = [
        {"Node Type": "Index Scan", "Index Name": "guests_pkey", "Relation Name": f"guests{i}"}
        for i in range(scans)
    ]
    return parse_plan([{"Plan": {"Node Type": "Append", "Plans": children}}])


def passing_query(name: str = "guests-by-wedding", plan: Plan | None = None) -> Verdict:
    execution = ms(0.41, 0.38, 0.45)
    return Verdict(
        name=name,
        kind=Kind.QUERY,
        status=Status.PASSED,
        metrics={"execution_ms": execution, "buffers": Metric(12, "count")},
        checks=(check_limit("execution_ms", 20, execution),),
        source="budgets.yaml:60",
        description="SELECT id, name FROM guests WHERE wedding_id = $1 ORDER BY name, id",
        details=QueryDetails(sql="SELECT ...", plan=plan) if plan else None,
        comparisons=(
            Comparison(
                metric="execution_ms",
                baseline=ms(0.40, 0.37, 0.44),
                current=execution,
                change=Metric(0.02, "ratio", -0.05, 0.08, 0.95),
                threshold=0.10,
                outcome=Outcome.UNCHANGED,
                reason="the interval lies within ±10%",
            ),
        ),
    )


def gate_report(*results: Verdict) -> GateReport:
    return GateReport(
        results=results or (regressed_endpoint(), passing_query()),
        environment={"python": "3.12.3", "postgres_version": "16.4"},
        created_at="2026-03-02T10:15:00Z",
        perfgate_version="0.1.0",
        budgets_file="budgets.yaml",
        baseline=BaselineInfo(
            commit="4f2c9e1" + "0" * 33,
            date="2026-03-01T18:02:11Z",
            how="merge-base of HEAD and origin/main",
        ),
    )


def results_file(tmp_path: Path, report: GateReport | None = None) -> str:
    path = tmp_path / "perfgate-results.json"
    write_json(report or gate_report(), path)
    return str(path)


# --- the fake GitHub API --------------------------------------------------------------------


@dataclass
class FakeGitHub:
    """State of the fake API; tests flip its switches and read what it received."""

    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    heads: dict[int, str] = field(default_factory=dict)
    received: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    deny_writes: bool = False  # a read-only token: 403 on POST and PATCH
    rate_limited: int = 0  # answer this many requests with a primary rate limit first
    retry_after: str | None = None  # rate limit with retry-after instead of x-ratelimit-reset
    foreign_next: bool = False  # a Link rel="next" pointing to another host
    next_id: int = 1000

    def add_comment(self, pr: int, body: str, user: dict[str, str]) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": user,
            "html_url": f"https://github.example/{REPO}/pull/{pr}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def ours(self, pr: int, key: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(pr, []) if c["body"].startswith(marker(key))]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the test's stderr stays clean
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ratelimit-limit", "5000")
        for name, value in (headers or {"x-ratelimit-remaining": "4999"}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake.received.append((method, self.path, dict(self.headers.items())))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"message": "Bad credentials"})
        if fake.rate_limited:
            fake.rate_limited -= 1
            if fake.retry_after is not None:
                return self._send(429, {"message": "slow down"}, {"retry-after": fake.retry_after})
            reset = str(int(time.time()) + 1)
            headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
            return self._send(403, {"message": "API rate limit exceeded"}, headers)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path.removeprefix(PREFIX)
        if method in ("POST", "PATCH") and fake.deny_writes:
            return self._send(403, {"message": "Resource not accessible by integration"})
        body = json.loads(raw)["body"] if raw else None
        if body is not None and len(body) > BODY_LIMIT:
            error = {"code": "custom", "field": "body", "message": "body is too long"}
            return self._send(422, {"message": "Validation Failed", "errors": [error]})
        if m := re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments", path):
            pr = int(m[1])
            if method == "POST":
                return self._send(201, fake.add_comment(pr, body, BOT))
            per_page = min(int(query.get("per_page", ["30"])[0]), 100)
            page = int(query.get("page", ["1"])[0])
            items = fake.comments.get(pr, [])
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {"x-ratelimit-remaining": "4998"}
            if page * per_page < len(items):
                base = "http://evil.example" if fake.foreign_next else fake.url
                headers["Link"] = (
                    f'<{base}{url.path}?per_page={per_page}&page={page + 1}>; rel="next"'
                )
            return self._send(200, chunk, headers)
        if (m := re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", path)) and method == "PATCH":
            for comments in fake.comments.values():
                for comment in comments:
                    if comment["id"] == int(m[1]):
                        comment["body"] = body
                        return self._send(200, comment)
        m = re.fullmatch(rf"/repos/{REPO}/pulls/(\d+)", path)
        if m and method == "GET" and int(m[1]) in fake.heads:
            return self._send(200, {"number": int(m[1]), "head": {"sha": fake.heads[int(m[1])]}})
        return self._send(404, {"message": "Not Found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeGitHub()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("GITHUB_API_URL", fake.url + PREFIX)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_RUN_ID", "987654")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def comment(results: str, *extra: str) -> int:
    return main(["comment", results, "--repo", REPO, "--pr", "7", *extra])


# --- tests ----------------------------------------------------------------------------------


def test_comment_is_created_then_updated_in_place(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(105):  # more than one page (per_page=100) of other people's comments first
        github.add_comment(7, f"LGTM {i}", {"login": f"dev{i}", "type": "User"})
    results = results_file(tmp_path)

    assert comment(results) == 0
    assert "perfgate comment: created https://github.example/" in capsys.readouterr().out
    assert comment(results) == 0
    assert "perfgate comment: updated https://github.example/" in capsys.readouterr().out

    ours = github.ours(7)
    assert len(ours) == 1
    assert len(github.comments[7]) == 106
    body = ours[0]["body"]
    assert body.startswith(MARKER + "\n")
    assert "🔴 regression" in body
    assert "+100.0% [+84.0%, +112.0%]" in body
    assert (
        "[Workflow run with the full report](https://github.example/octo-org/shop/actions/runs/987654)"
        in body
    )
    paths = [path for _, path, _ in github.received]
    assert any("page=2" in p for p in paths)  # followed the Link header to page 2
    assert all(p.startswith(PREFIX + "/repos/") for p in paths)  # GITHUB_API_URL honoured
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, _, h in github.received)


def test_keys_give_each_gate_its_own_comment(github: FakeGitHub, tmp_path: Path) -> None:
    results = results_file(tmp_path)
    assert comment(results, "--key", "api") == 0
    assert comment(results, "--key", "db") == 0
    assert comment(results, "--key", "api") == 0
    assert len(github.ours(7, "api")) == 1
    assert len(github.ours(7, "db")) == 1
    assert github.ours(7) == []  # the plain marker is a different comment


def test_a_comment_that_only_quotes_the_marker_is_left_alone(
    github: FakeGitHub, tmp_path: Path
) -> None:
    quoted = github.add_comment(
        7, f"why does it say\n{MARKER}\n?", {"login": "dev", "type": "User"}
    )
    assert comment(results_file(tmp_path)) == 0
    assert quoted["body"].startswith("why does it say")
    assert len(github.ours(7)) == 1


def test_token_without_permission_names_it_and_never_shows_the_token(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.deny_writes = True
    assert comment(results_file(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert "403" in err
    assert "Resource not accessible by integration" in err
    assert "`pull-requests: write`" in err
    assert "`issues: write`" in err
    assert TOKEN not in out + err


def test_a_rejected_token_says_so(
    github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrongWrongWrong")
    assert comment(results_file(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "GitHub rejected the token (401 (Bad credentials))" in err
    assert "ghs_wrongWrongWrong" not in err


def test_a_malformed_token_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_abc\ndef123")
    assert comment(results_file(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "GITHUB_TOKEN contains spaces or control characters" in err
    assert "ghs_abc" not in err


def test_missing_token_explains_how_to_pass_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert comment(results_file(tmp_path)) == 1
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().err


def test_unreachable_api_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    results = results_file(tmp_path)
    assert comment(results, "--api-url", "http://127.0.0.1:9/api/v3") == 1
    err = capsys.readouterr().err
    assert "cannot reach the GitHub API at http://127.0.0.1:9" in err
    assert TOKEN not in err


def test_an_oversized_report_is_cut_with_a_note_and_accepted(
    github: FakeGitHub, tmp_path: Path
) -> None:
    plan = wide_plan(60)
    results = [regressed_endpoint(f"endpoint-{i:03d}") for i in range(150)]
    results += [passing_query(f"query-{i:03d}", plan) for i in range(40)]
    report = gate_report(*results)
    assert len(comment_body(report, limit=10**9)) > 2 * BODY_LIMIT

    assert comment(results_file(tmp_path, report)) == 0
    (posted,) = github.ours(7)
    body = posted["body"]
    assert len(body) <= BODY_LIMIT
    assert "cut to fit GitHub's 65,536-character comment limit" in body
    assert "[the workflow run](https://github.example/octo-org/shop/actions/runs/987654)" in body
    assert body.count("```") % 2 == 0  # no code block left open


def test_fit_body_collapses_details_before_cutting() -> None:
    inside = "\n".join(f"row {i}" for i in range(200))
    text = (
        f"{MARKER}\n## head\n\n<details open><summary>Plan</summary>\n\n"
        f"```\n{inside}\n```\n\n</details>\n\ntail\n"
    )
    fitted = fit_body(text, 300, "https://github.example/run/1")
    assert len(fitted) <= 300
    assert "<details><summary>Plan</summary>" in fitted
    assert "Left out to fit GitHub's comment limit" in fitted
    assert "row 1" not in fitted
    assert fitted.rstrip().endswith("tail")


def test_fit_body_cut_closes_an_open_code_block() -> None:
    text = "## head\n\n```sql\n" + "\n".join(f"SELECT {i};" for i in range(500)) + "\n```\n"
    fitted = fit_body(text, 1000)
    assert len(fitted) <= 1000
    assert fitted.count("```") == 2  # the opening fence (```sql) and the one added to close it
    assert "cut to fit" in fitted


def test_primary_rate_limit_waits_for_the_reset_and_retries(github: FakeGitHub) -> None:
    github.rate_limited = 1
    waits: list[float] = []
    with GitHubClient(TOKEN, github.url + PREFIX, max_wait=30, sleep=waits.append) as client:
        created = client.create_comment(REPO, 7, "hello")
    assert created.body == "hello"
    assert len(waits) == 1
    assert 0 < waits[0] <= 3


def test_retry_after_is_honoured(github: FakeGitHub) -> None:
    github.rate_limited, github.retry_after = 2, "2"
    waits: list[float] = []
    with GitHubClient(TOKEN, github.url + PREFIX, max_wait=30, sleep=waits.append) as client:
        client.create_comment(REPO, 7, "hello")
    assert waits == [2.0, 2.0]


def test_rate_limit_longer_than_max_wait_fails_with_a_clear_message(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.rate_limited, github.retry_after = 1, "600"
    assert comment(results_file(tmp_path), "--max-wait", "5") == 1
    err = capsys.readouterr().err
    assert "GitHub's rate limit stopped the request" in err
    assert "retry in 600s" in err
    assert "waits at most 5s (--max-wait)" in err


def test_a_pagination_link_to_another_host_is_not_followed(github: FakeGitHub) -> None:
    for i in range(101):
        github.add_comment(7, f"comment {i}", {"login": "dev", "type": "User"})
    github.foreign_next = True
    with GitHubClient(TOKEN, github.url + PREFIX) as client, pytest.raises(GitHubError) as info:
        list(client.comments(REPO, 7))
    assert "refusing a pagination link to another host (http://evil.example)" in str(info.value)
    assert len(github.received) == 1


def test_head_sha_mismatch_refuses_to_comment(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.heads[7] = "a" * 40
    results = results_file(tmp_path)
    assert comment(results, "--head-sha", "b" * 40) == 0
    assert "skipped: octo-org/shop#7 is at aaaaaaaaaaaa, not at bbbbbbbbbbbb" in (
        capsys.readouterr().err
    )
    assert github.ours(7) == []
    assert comment(results, "--head-sha", "a" * 40) == 0
    assert len(github.ours(7)) == 1


def test_user_text_cannot_inject_markup_or_mentions(github: FakeGitHub, tmp_path: Path) -> None:
    evil = replace(
        regressed_endpoint(),
        name="@everyone <img src=x onerror=alert(1)> [click](https://evil.example)",
        error=None,
    )
    assert comment(results_file(tmp_path, gate_report(evil))) == 0
    (posted,) = github.ours(7)
    body = posted["body"]
    assert "@everyone" not in body
    assert "<img" not in body
    assert "[click](https://evil.example)" not in body


def test_dry_run_prints_the_body_and_posts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert main(["comment", results_file(tmp_path), "--dry-run", "--key", "api"]) == 0
    assert capsys.readouterr().out.startswith("<!-- perfgate-report:api -->\n## ❌ perfgate:")


def test_bad_key_and_repo_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = results_file(tmp_path)
    assert main(["comment", results, "--repo", "nope", "--pr", "1"]) == 1
    assert "expected OWNER/NAME" in capsys.readouterr().err
    assert main(["comment", results, "--key", "a -->x", "--dry-run"]) == 1
    assert "use letters, digits" in capsys.readouterr().err


def test_run_url_comes_from_the_environment() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://ghe.example.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "42",
    }
    assert run_url(env) == "https://ghe.example.com/o/r/actions/runs/42"
    assert run_url({**env, "GITHUB_RUN_ID": "42) [x](http://e"}) is None
    assert run_url({}) is None


TINY_BUDGETS = """
version: 1
target:
  app: "tinyapp:app"
defaults: {requests: 40, concurrency: 4, warmup: 5}
endpoints:
  slow:
    request: GET /slow
    budget: {p50_ms: 5}
"""


def test_full_dry_run_a_real_gate_then_comment_twice(
    github: FakeGitHub,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    tinyapp = Path(__file__).parent / "apps" / "tinyapp.py"
    pytester.makepyfile(tinyapp=tinyapp.read_text())
    pytester.makefile(".yaml", budgets=TINY_BUDGETS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    gate = pytester.runpytest("--perfgate", "--perfgate-json=perfgate/results.json")
    gate.assert_outcomes(failed=1)
    results = str(pytester.path / "perfgate" / "results.json")
    capsys.readouterr()

    assert comment(results) == 0
    assert comment(results) == 0
    (posted,) = github.ours(7)
    assert len(github.comments[7]) == 1
    assert "**slow**" in posted["body"]
    assert "p50_ms" in posted["body"]
    assert "❌ **fail**" in posted["body"]


SAVE_COMPARE_BUDGETS = """
version: 1
target: {app: "webapp:app"}
defaults: {requests: 200, concurrency: 4, warmup: 5}
endpoints:
  work: {request: GET /work, budget: {p99_ms: 2s}}
"""


def test_ci_dry_run_save_compare_then_one_comment_with_the_regression(
    github: FakeGitHub,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's dry run: baseline on main, slowed branch compared, commented on twice."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = pytester.path

    init_repo(path)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (path / "webapp.py").write_text(webapp_source(0.004))
    (path / "budgets.yaml").write_text(SAVE_COMPARE_BUDGETS)
    (path / ".gitignore").write_text("__pycache__/\n.pytest_cache/\nperfgate/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    pytester.runpytest("--perfgate", "--perfgate-save").assert_outcomes(passed=1)

    git(path, "checkout", "-q", "-b", "slow")
    (path / "webapp.py").write_text(webapp_source(0.012))
    git(path, "commit", "-q", "-am", "three times slower")
    gate = pytester.runpytest(
        "--perfgate", "--perfgate-compare", "--perfgate-json=perfgate/results.json"
    )
    gate.assert_outcomes(failed=1)
    results = str(path / "perfgate" / "results.json")
    capsys.readouterr()

    assert comment(results) == 0
    assert comment(results) == 0
    assert len(github.comments[7]) == 1
    (posted,) = github.ours(7)
    assert "regression" in posted["body"]
    assert "server&#95;p95&#95;ms" in posted["body"] or "server_p95_ms" in posted["body"]
