"""The ``perfgate`` command: helpers for CI steps around the pytest plugin.

Every command but check-budgets reads the JSON file that ``pytest --perfgate-json`` wrote.
In a workflow that file may come from an untrusted pull request, so nothing from it is echoed
to the log unescaped, and the comment is rendered from the data, never copied from markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from perfgate import __version__, schemas
from perfgate.budgets import load_config
from perfgate.ci.annotate import render_annotations
from perfgate.ci.github import (
    DEFAULT_API_URL,
    GitHubClient,
    check_repo,
    comment_body,
    run_url,
    safe_url,
    upsert_comment,
)
from perfgate.ci.notify import (
    EmailNotifier,
    Notifier,
    NotifyError,
    SlackWebhook,
    SmtpSettings,
    build_alert,
    skip_reason,
)
from perfgate.exceptions import ConfigError, PerfgateError
from perfgate.report import append_step_summary, render_markdown
from perfgate.system import ledger
from perfgate.verdict.model import GateReport, without_nan

MAX_RESULTS_BYTES = 128 * 1024 * 1024  # a results file from a PR artifact is untrusted input
FORMATS = ("markdown", "github", "json")
MAX_WAIT_S = 3600.0  # the longest --max-wait for a rate limit


def _check_budgets(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            config = load_config(Path(name))
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        print(
            f"{name}: ok ({len(config.endpoints)} endpoints, {len(config.queries)} queries, "
            f"target: {config.target.kind})"
        )
    return status


class ResultsFileError(PerfgateError):
    """The results file named on the command line is missing, unreadable or not valid.

    ``readable`` tells a file that is there but wrong (exit 2) from one that is not there.
    """

    def __init__(self, message: str, *, readable: bool = True) -> None:
        super().__init__(message)
        self.readable = readable


def load_report(path: Path) -> GateReport:
    """Read a results file (or a baseline record), checked against its JSON Schema first.

    The file may be an untrusted pull request's artifact: what the schema refuses never reaches
    a renderer, and the message escapes whatever it quotes from the file.
    """
    try:
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise ResultsFileError(
                f"{path}: {size:,} bytes is too large for a perfgate results file "
                f"(limit {MAX_RESULTS_BYTES:,})"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsFileError(
            f"{path}: cannot read the perfgate results file: {exc.strerror or exc}",
            readable=False,
        ) from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ResultsFileError(f"{path}: not UTF-8 text (byte {exc.start:,})") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise ResultsFileError(f"{path}: not a perfgate results file: nested too deeply") from None
    try:
        schemas.check(data)
        return GateReport.from_json(data)
    except (schemas.SchemaError, ValueError, KeyError) as exc:
        raise ResultsFileError(f"{path}: {exc}") from None


def normalised_json(report: GateReport) -> str:
    """The report as perfgate writes it today: known fields only, NaN as null."""
    return json.dumps(without_nan(report.to_json()), indent=2, allow_nan=False) + "\n"


def _report(args: argparse.Namespace) -> int:
    report = load_report(Path(args.results))
    if args.format == "json":
        text = normalised_json(report)
    elif args.format == "markdown":
        text = render_markdown(report)
    else:  # github: annotations on stdout, the markdown into the job summary
        text = render_annotations(report)
        markdown = render_markdown(report)
        if append_step_summary(markdown, os.environ) is None:
            text += markdown
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise PerfgateError(f"-o {args.output}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


def _annotate(args: argparse.Namespace) -> int:
    sys.stdout.write(render_annotations(load_report(Path(args.results))))
    return 0


def _comment(args: argparse.Namespace) -> int:
    report = load_report(Path(args.results))
    link = safe_url(args.run_url) if args.run_url else run_url(os.environ)
    body = comment_body(report, key=args.key, link=link)
    if args.dry_run:
        sys.stdout.write(body)
        return 0
    repo = check_repo(args.repo or os.environ.get("GITHUB_REPOSITORY", ""))
    if args.pr is None or args.pr <= 0:
        raise PerfgateError("--pr: give the pull request number (a positive integer)")
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise PerfgateError(
            "GITHUB_TOKEN is not set; in a workflow step add "
            "`env: {GITHUB_TOKEN: ${{ github.token }}}`"
        )
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    with GitHubClient(token, api_url, max_wait=args.max_wait) as client:
        if args.head_sha:
            head = client.head_sha(repo, args.pr)
            if head.lower() != args.head_sha.lower():
                # A newer push (its own run will comment) or an artifact naming another PR.
                print(
                    f"perfgate comment: skipped: {repo}#{args.pr} is at "
                    f"{head[:12] or 'an unknown commit'}, not at {args.head_sha[:12]}: it was "
                    "pushed to since, or the results name another pull request",
                    file=sys.stderr,
                )
                return 0
        action, comment = upsert_comment(
            client, repo, args.pr, body, key=args.key, author=args.author
        )
    print(f"perfgate comment: {action} {comment.url or f'comment {comment.id}'}")
    return 0


def _notify(args: argparse.Namespace) -> int:
    env: Mapping[str, str] = os.environ
    try:
        report = load_report(Path(args.results))
    except ResultsFileError as e:
        if e.readable:
            raise  # there but not a results file: an error, as for every command
        # e.g. the gate crashed before writing it: still never block
        print(f"perfgate notify: warning: nothing sent: {e}", file=sys.stderr)
        return 1 if args.strict else 0
    webhook = args.slack_webhook or env.get("PERFGATE_SLACK_WEBHOOK", "")
    if not webhook and not args.email:
        print("perfgate notify: no --slack-webhook or --email given; nothing sent", file=sys.stderr)
        return 0
    branch = None if args.any_branch else args.default_branch
    reason = skip_reason(report, env, only_on_failure=args.only_on_failure, default_branch=branch)
    if reason:
        print(f"perfgate notify: nothing sent: {reason}", file=sys.stderr)
        return 0
    link = safe_url(args.run_url) if args.run_url else run_url(env)
    alert = build_alert(report, env, link)
    notifiers: list[Notifier] = []
    failures = 0
    if webhook:
        notifiers.append(SlackWebhook(webhook))
    if args.email:
        try:
            settings = SmtpSettings.from_env(env, starttls=args.smtp_starttls)
            notifiers.append(EmailNotifier(settings, tuple(args.email)))
        except NotifyError as e:
            print(f"perfgate notify: warning: email not sent: {e}", file=sys.stderr)
            failures += 1
    for notifier in notifiers:
        try:
            notifier.send(alert)
        except NotifyError as e:
            print(f"perfgate notify: warning: {notifier.describe()}: {e}", file=sys.stderr)
            failures += 1
        else:
            print(f"perfgate notify: sent to {notifier.describe()}")
    return 1 if failures and args.strict else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so the help text can be tested)."""
    parser = argparse.ArgumentParser(
        prog="perfgate",
        description="perfgate: a CI performance gate. Measuring happens in `pytest --perfgate`; "
        "these commands help around it.",
    )
    parser.add_argument("--version", action="version", version=f"perfgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check-budgets", help="validate budgets files; exit 1 listing every problem"
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="budgets.yaml files to check")
    check.set_defaults(func=_check_budgets)
    _add_report(sub)
    _add_annotate(sub)
    _add_comment(sub)
    _add_notify(sub)
    _add_cleanup(sub)
    return parser


def _add_cleanup(sub: Any) -> None:
    p = sub.add_parser(
        "cleanup",
        help="remove what killed perfgate runs left behind (servers, databases, processes)",
        description="Every perfgate run notes what it starts; a run that was killed (SIGKILL, "
        "OOM) leaves its notes. This removes what they name: process groups, embedded "
        "PostgreSQL servers, scratch databases, git worktrees. `pytest --perfgate` does the "
        "same when it starts.",
    )
    p.add_argument(
        "--dsn",
        action="append",
        default=[],
        help="a DSN with the password for a server whose databases were left (repeatable; "
        "default: $PERFGATE_DSN)",
    )
    p.set_defaults(func=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    dsns = [*args.dsn, *([os.environ["PERFGATE_DSN"]] if os.environ.get("PERFGATE_DSN") else [])]
    said = ledger.sweep(dsns)
    for line in said:
        print(f"perfgate: {line}")
    if not said:
        print(f"perfgate: nothing left behind by killed runs (notes in {ledger.notes_dir()})")
    return 1 if any(line.startswith("could not") for line in said) else 0


def _results_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS", help="results JSON from --perfgate-json")


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="re-render a results file as markdown, GitHub or JSON")
    _results_arg(p)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="markdown",
        help="markdown (default); github: workflow annotations on stdout and the markdown "
        "appended to $GITHUB_STEP_SUMMARY (printed when it is unset); json: normalised JSON",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=_report)


def _add_annotate(sub: Any) -> None:
    p = sub.add_parser(
        "annotate",
        help="print GitHub workflow commands (::error/::warning) at the budgets.yaml lines",
    )
    _results_arg(p)
    p.set_defaults(func=_annotate)


def _add_comment(sub: Any) -> None:
    p = sub.add_parser(
        "comment",
        help="create or update the pull request comment (token from GITHUB_TOKEN)",
        description="Create perfgate's comment on a pull request, or update it in place: it is "
        "found by a hidden marker, so each pull request has one (per --key).",
    )
    _results_arg(p)
    p.add_argument("--repo", metavar="OWNER/NAME", help="default: $GITHUB_REPOSITORY")
    p.add_argument("--pr", type=int, metavar="N", help="pull request number")
    p.add_argument("--key", help="tell several gates' comments on one pull request apart")
    p.add_argument(
        "--head-sha",
        metavar="SHA",
        help="refuse to comment unless the pull request's head is this commit (pass "
        "github.event.workflow_run.head_sha when the PR number comes from an artifact)",
    )
    p.add_argument("--author", metavar="LOGIN", help="only update a comment by this user")
    p.add_argument("--run-url", metavar="URL", help="link for the full report (default: this run)")
    p.add_argument("--api-url", metavar="URL", help="default: $GITHUB_API_URL or api.github.com")
    p.add_argument(
        "--max-wait",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="longest wait for a rate limit to reset before giving up (default: 60)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the comment body; post nothing")
    p.set_defaults(func=_comment)


def _seconds(text: str) -> float:
    """A wait in seconds: 0 to an hour (NaN or inf would wait out any rate limit)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_WAIT_S:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_WAIT_S:g}, got {text!r}")
    return value


def _add_notify(sub: Any) -> None:
    p = sub.add_parser(
        "notify",
        help="alert Slack or email when the gate failed on the default branch (never fails)",
    )
    _results_arg(p)
    p.add_argument(
        "--slack-webhook", metavar="URL", help="incoming webhook (default: $PERFGATE_SLACK_WEBHOOK)"
    )
    p.add_argument(
        "--email",
        action="append",
        metavar="TO",
        help="recipient (repeatable); SMTP from $PERFGATE_SMTP_HOST/PORT/USER/PASSWORD/FROM",
    )
    p.add_argument(
        "--smtp-starttls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="upgrade the SMTP connection with STARTTLS (default: $PERFGATE_SMTP_STARTTLS)",
    )
    p.add_argument(
        "--only-on-failure",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send only when the gate failed (default: on)",
    )
    p.add_argument(
        "--default-branch",
        default=os.environ.get("PERFGATE_DEFAULT_BRANCH") or "main",
        metavar="NAME",
        help="send only when GITHUB_REF is refs/heads/NAME (default: $PERFGATE_DEFAULT_BRANCH "
        "or main)",
    )
    p.add_argument("--any-branch", action="store_true", help="send on any branch")
    p.add_argument("--run-url", metavar="URL", help="link in the alert (default: this run)")
    p.add_argument("--strict", action="store_true", help="exit 1 when an alert is not delivered")
    p.set_defaults(func=_notify)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except ResultsFileError as exc:
        print(f"perfgate {args.command}: {exc}", file=sys.stderr)
        return 2
    except PerfgateError as exc:
        print(f"perfgate {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
