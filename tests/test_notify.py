"""`perfgate notify` against a real local webhook receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from perfgate.ci.notify import Alert, slack_escape, slack_payload
from perfgate.cli import main
from perfgate.report import write_json
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status, check_limit

EVIL = "<!channel> <http://evil.example|click me> & <@U123>"
HOOK_PATH = "/services/T000/B000/s3cretHookPath"


def report(*, failed: bool = True, name: str = "clients") -> GateReport:
    p95 = Metric(182.4, "ms", 171.3, 190.2, 0.95)
    result = Verdict(
        name=name,
        kind=Kind.ENDPOINT,
        status=Status.FAILED if failed else Status.PASSED,
        metrics={"p95_ms": p95},
        checks=(check_limit("p95_ms", 150 if failed else 500, p95),),
        source="budgets.yaml:31",
        description="GET /api/clients?supplier_id=7",
        comparisons=(
            Comparison(
                metric="p95_ms",
                baseline=Metric(91.2, "ms"),
                current=p95,
                change=Metric(1.0, "ratio", 0.84, 1.12, 0.95),
                threshold=0.10,
                outcome=Outcome.REGRESSION,
                reason="+100.0% [+84.0%, +112.0%] is above the 10% threshold",
            ),
        )
        if failed
        else (),
    )
    return GateReport((result,), {}, "2026-03-02T10:15:00Z", "0.1.0", "budgets.yaml")


def results_file(tmp_path: Path, gate: GateReport | None = None) -> str:
    path = tmp_path / "results.json"
    write_json(gate or report(), path)
    return str(path)


@pytest.fixture(autouse=True)
def on_main(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PERFGATE_SLACK_WEBHOOK", "PERFGATE_DEFAULT_BRANCH", "PERFGATE_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo-org/shop")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")


@dataclass
class Receiver:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


class _Hook(BaseHTTPRequestHandler):
    server: _HookServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.receiver.posts.append(json.loads(self.rfile.read(length)))
        answer = b"ok" if self.server.receiver.status == 200 else b"invalid_payload"
        self.send_response(self.server.receiver.status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class _HookServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    server = _HookServer(("127.0.0.1", 0), _Hook)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Mailbox]:
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("PERFGATE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PERFGATE_SMTP_PORT", str(port))
    monkeypatch.setenv("PERFGATE_SMTP_FROM", "perfgate@ci.example")
    try:
        yield mailbox
    finally:
        controller.stop()


def test_slack_alert_arrives_with_verdict_worst_item_and_run_link(
    webhook: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify", results_file(tmp_path), "--slack-webhook", webhook.url]) == 0
    (payload,) = webhook.posts
    text = payload["blocks"][0]["text"]["text"]
    assert ":x: *perfgate: the gate failed on octo-org/shop main*" in text
    assert "1 failed · 1 regression" in text
    assert "• clients: p95_ms regressed: +100.0% [+84.0%, +112.0%]" in text
    assert "<https://github.example/octo-org/shop/actions/runs/4242|View the workflow run>" in text
    assert payload["unfurl_links"] is False
    out, err = capsys.readouterr()
    assert "sent to Slack webhook" in out
    assert HOOK_PATH not in out + err


def test_slack_cannot_be_made_to_mention_or_link(webhook: Receiver, tmp_path: Path) -> None:
    gate = report(name=EVIL)
    assert main(["notify", results_file(tmp_path, gate), "--slack-webhook", webhook.url]) == 0
    (payload,) = webhook.posts
    sent = payload["text"] + payload["blocks"][0]["text"]["text"]
    # the zero-width space stops Slack from linking the bare URL
    assert "&lt;!channel&gt; &lt;http:\u200b//evil.example|click me&gt; &amp; &lt;@U123&gt;" in sent
    assert "<!channel>" not in sent
    assert "<http://evil" not in sent
    assert "<@U123>" not in sent


def test_slack_escape_follows_slacks_rules() -> None:
    assert slack_escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    alert = Alert("t", "h", (), run_url="https://x.example/run|<!here>")
    assert "<!here>" not in json.dumps(slack_payload(alert))


def test_webhook_down_is_a_warning_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}{HOOK_PATH}"
    assert main(["notify", results_file(tmp_path), "--slack-webhook", url]) == 0
    err = capsys.readouterr().err
    assert "perfgate notify: warning: Slack webhook: cannot reach the Slack webhook" in err
    assert HOOK_PATH not in err
    assert main(["notify", results_file(tmp_path), "--slack-webhook", url, "--strict"]) == 1


def test_webhook_error_answer_is_a_warning(
    webhook: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook.status = 400
    assert main(["notify", results_file(tmp_path), "--slack-webhook", webhook.url]) == 0
    assert "the Slack webhook answered 400: invalid_payload" in capsys.readouterr().err


def test_webhook_from_the_environment(
    webhook: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFGATE_SLACK_WEBHOOK", webhook.url)
    assert main(["notify", results_file(tmp_path)]) == 0
    assert len(webhook.posts) == 1


def test_nothing_is_sent_when_the_gate_passed(
    webhook: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = results_file(tmp_path, report(failed=False))
    assert main(["notify", results, "--slack-webhook", webhook.url]) == 0
    assert "nothing sent: the gate passed" in capsys.readouterr().err
    assert webhook.posts == []
    assert main(["notify", results, "--slack-webhook", webhook.url, "--no-only-on-failure"]) == 0
    assert ":white_check_mark:" in webhook.posts[0]["blocks"][0]["text"]["text"]


def test_nothing_is_sent_off_the_default_branch(
    webhook: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    results = results_file(tmp_path)
    assert main(["notify", results, "--slack-webhook", webhook.url]) == 0
    assert "not on the default branch 'main' (refs/pull/7/merge" in capsys.readouterr().err
    assert webhook.posts == []
    monkeypatch.setenv("GITHUB_REF", "refs/heads/trunk")
    assert (
        main(["notify", results, "--slack-webhook", webhook.url, "--default-branch", "trunk"]) == 0
    )
    monkeypatch.setenv("GITHUB_REF", "refs/heads/feature")
    assert main(["notify", results, "--slack-webhook", webhook.url, "--any-branch"]) == 0
    assert len(webhook.posts) == 2


def test_no_channel_configured_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify", results_file(tmp_path)]) == 0
    assert "nothing sent" in capsys.readouterr().err


def test_missing_results_never_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.json")
    assert main(["notify", missing, "--slack-webhook", "http://127.0.0.1:9/x"]) == 0
    assert "warning: nothing sent" in capsys.readouterr().err


def test_email_arrives_with_subject_and_body(
    smtp: _Mailbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["notify", results_file(tmp_path), "--email", "oncall@shop.example"]
    assert main([*args, "--email", "lead@shop.example"]) == 0
    assert "sent to email to oncall@shop.example, lead@shop.example" in capsys.readouterr().out
    ((sender, recipients, message),) = smtp.messages
    assert sender == "perfgate@ci.example"
    assert recipients == ["oncall@shop.example", "lead@shop.example"]
    assert message["Subject"] == "perfgate: the gate failed on octo-org/shop main"
    body = message.get_payload(decode=True).decode()
    assert "1 failed · 1 regression" in body
    assert "  - clients: p95_ms regressed: +100.0%" in body
    assert "Workflow run: https://github.example/octo-org/shop/actions/runs/4242" in body


def test_a_name_cannot_inject_mail_headers(smtp: _Mailbox, tmp_path: Path) -> None:
    gate = report(name="x\r\nBcc: victim@evil.example\r\n")
    assert main(["notify", results_file(tmp_path, gate), "--email", "oncall@shop.example"]) == 0
    ((_, recipients, message),) = smtp.messages
    assert recipients == ["oncall@shop.example"]
    assert message["Bcc"] is None


def test_email_without_smtp_host_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERFGATE_SMTP_HOST", raising=False)
    assert main(["notify", results_file(tmp_path), "--email", "a@b.example"]) == 0
    assert "warning: email not sent: set PERFGATE_SMTP_HOST" in capsys.readouterr().err


def test_smtp_down_is_a_warning_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFGATE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PERFGATE_SMTP_PORT", str(_free_port()))
    monkeypatch.setenv("PERFGATE_SMTP_USER", "ci")
    monkeypatch.setenv("PERFGATE_SMTP_PASSWORD", "hunter2hunter2")
    assert main(["notify", results_file(tmp_path), "--email", "a@b.example"]) == 0
    err = capsys.readouterr().err
    assert "warning: email to a@b.example: cannot send mail through 127.0.0.1:" in err
    assert "hunter2" not in err
