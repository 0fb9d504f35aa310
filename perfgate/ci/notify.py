"""Alerts when the gate fails on the default branch: a Slack incoming webhook or an email.

Notifications are opt-in and advisory: the CLI turns a failure to deliver into a warning.
A notifier is a small Protocol; every text from the report is escaped for its channel.
"""

from __future__ import annotations

import math
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from perfgate import __version__
from perfgate.exceptions import PerfgateError
from perfgate.redact import clean, redact_text
from perfgate.report.cells import headline_parts, safe_report
from perfgate.report.escape import slack_escape, terminal_text
from perfgate.verdict.model import GateReport
from perfgate.verdict.values import Outcome, Status

WORST_LIMIT = 5
LINE_WIDTH = 200


class NotifyError(PerfgateError):
    """An alert could not be delivered (the message never holds the webhook URL or password)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """What an alert says, channel-independent and not yet escaped."""

    title: str  # "perfgate: the gate failed on octo/shop main"
    headline: str  # "1 failed, 4 passed · 1 regression"
    worst: tuple[str, ...]  # the worst items, one line each
    run_url: str | None = None
    failed: bool = True


class Notifier(Protocol):
    """Somewhere an alert can be sent."""

    def describe(self) -> str:
        """'Slack webhook', 'email to a@example.com': for messages, never holding a secret."""
        ...

    def send(self, alert: Alert) -> None:
        """Deliver the alert or raise NotifyError."""
        ...


def build_alert(report: GateReport, env: Mapping[str, str], run_url: str | None) -> Alert:
    """The alert for a report: verdict, headline counts, the worst items first."""
    report = safe_report(report)
    repo = env.get("GITHUB_REPOSITORY", "")
    branch = env.get("GITHUB_REF_NAME", "") or env.get("GITHUB_REF", "").removeprefix("refs/heads/")
    where = " ".join(x for x in (repo, branch) if x)
    failed = report.status == Status.FAILED
    verdict = "failed" if failed else "passed"
    title = f"perfgate: the gate {verdict}" + (f" on {where}" if where else "")
    items, outcomes = headline_parts(report)
    headline = " · ".join([", ".join(items), *outcomes])
    return Alert(_line(title), _line(headline), worst_lines(report), run_url, failed)


def worst_lines(report: GateReport, limit: int = WORST_LIMIT) -> tuple[str, ...]:
    """Errors, then regressions by size of change, then budget breaches."""
    errors = [f"{r.name}: could not be measured: {r.error}" for r in report.results if r.error]
    regressions: list[tuple[float, str]] = []
    for r in report.results:
        for c in r.comparisons:
            if c.outcome != Outcome.REGRESSION:
                continue
            size = c.change.value if c.change is not None else math.inf
            size = size if math.isfinite(size) else math.inf
            regressions.append((size, f"{r.name}: {c.metric} regressed: {c.reason}"))
    regressions.sort(key=lambda pair: -pair[0])
    breaches = [f"{r.name}: {check.explain()}" for r in report.results for check in r.failed_checks]
    lines = errors + [text for _, text in regressions] + breaches
    return tuple(_line(text) for text in lines[:limit])


def _line(text: str) -> str:
    """One line, clean, secrets masked, at most LINE_WIDTH characters."""
    text = " ".join(redact_text(clean(text)).split())
    return text if len(text) <= LINE_WIDTH else text[: LINE_WIDTH - 1] + "…"


def skip_reason(
    report: GateReport,
    env: Mapping[str, str],
    *,
    only_on_failure: bool,
    default_branch: str | None,
) -> str | None:
    """Why no alert should be sent, or None to send (default_branch None: any branch)."""
    if only_on_failure and report.status != Status.FAILED:
        return "the gate passed (pass --no-only-on-failure to be told anyway)"
    if default_branch is not None:
        ref = env.get("GITHUB_REF", "")
        if ref != f"refs/heads/{default_branch}":
            shown = ref or "GITHUB_REF is not set"
            return f"not on the default branch {default_branch!r} ({shown}; see --any-branch)"
    return None


def slack_payload(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message: plain fallback text plus one mrkdwn section."""
    icon = ":x:" if alert.failed else ":white_check_mark:"
    lines = [f"{icon} *{slack_escape(alert.title)}*", slack_escape(alert.headline)]
    lines += [f"• {slack_escape(line)}" for line in alert.worst]
    if alert.run_url and not set("<>|& ") & set(alert.run_url):
        lines.append(f"<{alert.run_url}|View the workflow run>")
    text = "\n".join(lines)
    return {
        "text": slack_escape(f"{alert.title}: {alert.headline}"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
        "unfurl_links": False,
        "unfurl_media": False,
    }


@dataclass(frozen=True, slots=True)
class SlackWebhook:
    """A Slack incoming webhook (its URL is a secret: it never appears in a message)."""

    url: str
    timeout: float = 10.0

    def describe(self) -> str:
        """A name for messages."""
        return "Slack webhook"

    def send(self, alert: Alert) -> None:
        """POST the payload; Slack answers 200 'ok'."""
        headers = {"User-Agent": f"perfgate/{__version__}"}
        try:
            with httpx.Client(timeout=self.timeout, headers=headers) as client:
                response = client.post(self.url, json=slack_payload(alert))
        except httpx.HTTPError as e:
            why = terminal_text(redact_text(f"{type(e).__name__}: {e}", [self.url]))
            raise NotifyError(f"cannot reach the Slack webhook: {why}") from None
        if not response.is_success:
            said = redact_text(" ".join(clean(response.text).split())[:200], [self.url])
            raise NotifyError(f"the Slack webhook answered {response.status_code}: {said}")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to send mail; read from PERFGATE_SMTP_* so no secret is on a command line."""

    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = ""
    starttls: bool = False
    timeout: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, starttls: bool | None = None) -> SmtpSettings:
        """PERFGATE_SMTP_HOST (required), _PORT, _USER, _PASSWORD, _FROM, _STARTTLS."""
        host = env.get("PERFGATE_SMTP_HOST", "").strip()
        if not host:
            raise NotifyError("set PERFGATE_SMTP_HOST (and _PORT, _USER, _PASSWORD, _FROM)")
        port_text = env.get("PERFGATE_SMTP_PORT", "").strip() or "25"
        if not port_text.isdigit():
            raise NotifyError(f"PERFGATE_SMTP_PORT: expected a port number, got {port_text!r}")
        user = env.get("PERFGATE_SMTP_USER") or None
        if starttls is None:
            starttls = env.get("PERFGATE_SMTP_STARTTLS", "").lower() in ("1", "true", "yes")
        return cls(
            host=host,
            port=int(port_text),
            user=user,
            password=env.get("PERFGATE_SMTP_PASSWORD") or None,
            sender=env.get("PERFGATE_SMTP_FROM") or user or f"perfgate@{host}",
            starttls=starttls,
        )


@dataclass(frozen=True, slots=True)
class EmailNotifier:
    """Plain-text mail over SMTP, with STARTTLS when asked."""

    settings: SmtpSettings
    to: tuple[str, ...]

    def describe(self) -> str:
        """A name for messages."""
        return f"email to {', '.join(self.to)}"

    def send(self, alert: Alert) -> None:
        """Send one message to every recipient."""
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.user and s.password:
                    smtp.login(s.user, s.password)
                smtp.send_message(email_message(alert, s.sender, self.to))
        except (OSError, smtplib.SMTPException, ValueError) as e:
            secrets = [x for x in (s.password,) if x]
            why = terminal_text(redact_text(f"{type(e).__name__}: {e}", secrets))
            raise NotifyError(f"cannot send mail through {s.host}:{s.port}: {why}") from None


def email_message(alert: Alert, sender: str, to: Sequence[str]) -> EmailMessage:
    """The message: the title as subject (one line, so no header injection), a text body."""
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    lines = [alert.title, "", alert.headline]
    if alert.worst:
        lines += ["", "Worst items:", *[f"  - {line}" for line in alert.worst]]
    if alert.run_url:
        lines += ["", f"Workflow run: {alert.run_url}"]
    message.set_content("\n".join(lines) + "\n")
    return message
