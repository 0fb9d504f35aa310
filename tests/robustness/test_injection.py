"""Hostile text in every field of a results file, in every output channel.

The fuzz puts one payload (HTML, mentions, links, table syntax, workflow commands after CR and
LF, ANSI and OSC sequences, Slack's control sequences) into each string of a results file that
fills every field of the schema, one field at a time, reads it back as ``perfgate report`` does,
and renders every channel: the markdown report and PR comment, the annotations, the Slack and
e-mail alerts, and the terminal. A field whose value the reader refuses (an enum) is an error,
never rendered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import jsonschema
import markdown_it
import pytest
from escaping_helpers import (
    BENIGN,
    HOSTILE,
    SCHEMA,
    annotation_problems,
    full_report,
    log_problems,
    mail_problems,
    markdown_problems,
    markdown_shape,
    markdown_tokens,
    replaced,
    slack_problems,
    string_places,
    uncovered_schema_strings,
)

from perfgate.ci.annotate import Annotation, collect_annotations, render_annotations
from perfgate.ci.github import GitHubClient, GitHubError, comment_body
from perfgate.ci.notify import NotifyError, SlackWebhook, build_alert, email_message, slack_payload
from perfgate.exceptions import PerfgateError
from perfgate.redact import Redactor, clean
from perfgate.report import read_json, render_markdown, render_terminal
from perfgate.report.escape import (
    escape_data,
    escape_property,
    fence,
    md,
    slack_escape,
    terminal_text,
)
from perfgate.verdict.model import GateReport
from perfgate.verdict.values import Outcome

DATA = full_report().to_json()
PLACES = list(string_places(DATA))


def test_the_sample_fills_every_string_field_of_the_schema() -> None:
    wrapper = {k: v for k, v in SCHEMA.items() if k != "oneOf"} | {"$ref": "#/$defs/results_file"}
    jsonschema.Draft202012Validator(wrapper).validate(DATA)
    assert uncovered_schema_strings(DATA) == set()
    assert len(PLACES) > 150


def _read(data: object, tmp_path: Path) -> GateReport | PerfgateError:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    try:
        return read_json(path)
    except PerfgateError as exc:
        return exc


def _channels(report: GateReport) -> dict[str, str]:
    alert = build_alert(report, {}, None)
    mail = email_message(alert, "perfgate@example.com", ["oncall@example.com"])
    return {
        "markdown": render_markdown(report),
        "comment": comment_body(report),
        "annotations": render_annotations(report),
        "slack": json.dumps(slack_payload(alert)),
        "subject": str(mail["Subject"]),
        "mail": mail.get_content(),
        "terminal": "\n".join(render_terminal(report)),
    }


SAMPLE_SHAPE = markdown_shape(markdown_tokens(comment_body(full_report())))


def problems(report: GateReport, benign: Callable[[], GateReport]) -> list[str]:
    out = _channels(report)
    found = []
    # The comment is the markdown report with a marker and a footer: one parse checks both.
    assert out["markdown"].rstrip() in out["comment"]
    tokens = markdown_tokens(out["comment"])
    found += [f"markdown: {p}" for p in markdown_problems(out["comment"], tokens)]
    shape = markdown_shape(tokens)
    if shape != SAMPLE_SHAPE and shape != markdown_shape(
        markdown_tokens(comment_body(benign()))
    ):  # a field that shapes the document (a finding's severity) is compared like for like
        found.append("markdown: the payload changed the document's structure")
    expected = len(collect_annotations(report))
    found += [f"annotations: {p}" for p in annotation_problems(out["annotations"], expected)]
    found += [f"slack: {p}" for p in slack_problems(json.loads(out["slack"]))]
    found += [f"mail: {p}" for p in mail_problems(out["subject"], out["mail"])]
    found += [f"terminal: {p}" for p in log_problems(out["terminal"])]
    return found


@pytest.mark.parametrize(("path", "is_key"), PLACES, ids=[repr(p) for p, _ in PLACES])
def test_hostile_text_in_any_field_is_inert_everywhere(
    path: tuple[str | int, ...], is_key: bool, tmp_path: Path
) -> None:
    report = _read(replaced(DATA, path, is_key, HOSTILE), tmp_path)
    if isinstance(report, PerfgateError):
        # An enum the reader does not know, a plan path that is no path: an error that names
        # the file and the field, never rendered.
        assert log_problems(str(report)) == []
        assert "results.json: not a perfgate results file: " in str(report)
        return

    def benign() -> GateReport:
        safe = _read(replaced(DATA, path, is_key, BENIGN), tmp_path)
        assert isinstance(safe, GateReport)
        return safe

    assert problems(report, benign) == []


# --- enums are rendered through their Enum --------------------------------------------------


@pytest.mark.parametrize("field", ["outcome", "status", "kind"])
def test_a_renderer_refuses_a_value_that_is_no_member(field: str) -> None:
    """Even when a verdict is built in code, not read from a file: an error, not the text."""
    report = full_report()
    endpoint = report.results[0]
    if field == "outcome":
        bad = replace(endpoint.comparisons[0], outcome=cast(Outcome, HOSTILE))
        endpoint = replace(endpoint, comparisons=(bad,))
    else:
        endpoint = replace(endpoint, **{field: HOSTILE})
    report = replace(report, results=(endpoint, *report.results[1:]))
    renderers = [
        render_markdown,
        render_terminal,
        render_annotations,
        lambda r: build_alert(r, {}, None),
    ]
    for render in renderers:
        with pytest.raises(PerfgateError, match="cannot render the report: results\\[0\\]"):
            render(report)


# --- the escapers, one per channel ----------------------------------------------------------


def test_clean_removes_escape_sequences_and_controls_and_keeps_the_lines() -> None:
    assert clean("\x1b[1;31mred\x1b[0m \x1b]8;;https://e.x\x07link\x1b]8;;\x1b\\") == "red link"
    assert clean("a\rb\r\nc\x0bd\u2028e") == "a\nb\nc\nd\ne"
    assert clean("tab\tNUL\x00BEL\x07DEL\x7f C1\x9b2J \u202eabc") == "tab\tNULBELDEL C1 abc"
    assert clean("unterminated \x1b]0;title") == "unterminated "
    assert clean("plain: stays as it is") == "plain: stays as it is"


def test_terminal_text_lets_no_line_start_a_workflow_command() -> None:
    text = terminal_text("ok\r::error::a\n  ::add-mask::b\n\t::stop-commands::c\n##[error]d e::f")
    assert text.split("\n") == [
        "ok",
        ":\u200b:error::a",
        "  :\u200b:add-mask::b",
        "\t:\u200b:stop-commands::c",
        "#\u200b#[error]d e::f",
    ]
    assert terminal_text("postgresql://app:hunter2@db/app") == "postgresql://app:***@db/app"


def test_workflow_commands_are_escaped_as_actions_core_does() -> None:
    # @actions/core command.ts: escapeData (%, CR, LF) and escapeProperty (also ':' and ',')
    assert escape_data("50%\r\n::x") == "50%25%0D%0A::x"
    assert escape_property("a:b,c%\r\n") == "a%3Ab%2Cc%25%0D%0A"
    annotation = Annotation("error", "t:\x1b[31m", "m\x1b]0;x\x07\r::error::y", "b,y.yaml", 2)
    assert annotation.command() == "::error file=b%2Cy.yaml,line=2,title=t%3A::m%0A::error::y"


def test_slack_text_has_no_control_sequences_mentions_or_links() -> None:
    assert slack_escape("<!channel> <@U1> <http://e.x|x> & \x1b[31m") == (
        "&lt;!channel&gt; &lt;@U1&gt; &lt;http:\u200b//e.x|x&gt; &amp; "
    )
    assert slack_escape("see www.e.x") == "see www\u200b.e.x"


def test_markdown_defeats_links_and_mentions_after_entities_are_decoded() -> None:
    html = markdown_it.MarkdownIt("commonmark").render(md(HOSTILE))
    assert "<a " not in html
    assert "<img" not in html
    decoded = html.replace("&amp;", "&")
    for link in ("http://", "www.", "@everyone", "me@evil"):
        assert link not in decoded
    lines = fence("x\n::error::y\r```").split("\n")
    assert lines == ["````text", "x", ":\u200b:error::y", "```", "````"]


def test_notes_reach_the_terminal_clean_and_inert() -> None:
    lines = render_terminal(full_report(), notes=["cleanup: \x1b[2Jgone\r::error::x\nnext line"])
    assert lines[-3:] == ["perfgate: cleanup: gone", ":\u200b:error::x", "next line"]
    assert log_problems("\n".join(lines)) == []


def test_a_redacted_verdict_explains_itself_inertly() -> None:
    hostile = replace(full_report().results[1], error=HOSTILE)
    message = terminal_text(Redactor().scrub(hostile).explain())
    assert log_problems(message) == []
    assert ":\u200b:error::cr" in message  # still there to read, only inert


# --- what pytest prints, end to end ---------------------------------------------------------

CRASHING_TARGET = r"""
import sys
sys.stdout.write("starting\r::error::from-target\n\x1b[31mred\x1b[0m \x1b]8;;http://e.x\x07x\n")
sys.stdout.write("  ::add-mask::from-target\n##[error]legacy\n")
sys.exit(3)
"""
HOSTILE_SQL = {
    # PostgreSQL's error echoes the name, newlines included
    "bad-relation.sql": 'SELECT * FROM "nope\r::error::from-postgres\n::add-mask::pg"',
    # the plan's Filter quotes the literal, newline and escape sequence included
    "seq-scan.sql": "SELECT * FROM guests WHERE name = E'x\\n::error::from-plan\\x1b[31m'",
}


def test_target_output_postgres_errors_and_plans_reach_the_log_inert(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(crash=CRASHING_TARGET)
    for name, sql in HOSTILE_SQL.items():
        (pytester.path / name).write_text(sql)
    (pytester.path / "schema.sql").write_text(
        "CREATE TABLE guests (id int PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO guests SELECT g, 'guest ' || g FROM generate_series(1, 2000) g;"
    )
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target: {{command: "python crash.py --port {{port}}", ready_timeout: 5s}}
        database: {{dsn: "{pg_server_dsn}", setup: [schema.sql]}}
        defaults: {{requests: 5, concurrency: 1, warmup: 0, runs: 2, seq_scan_min_pages: 1}}
        endpoints:
          home: {{request: GET /}}
        queries:
          bad-relation: {{sql_file: bad-relation.sql}}
          seq-scan: {{sql_file: seq-scan.sql, budget: {{no_seq_scan: true}}}}
        """,
    )
    result = pytester.runpytest("--perfgate", "--perfgate-report=report.md", "-rA")
    result.assert_outcomes(failed=3)
    out = result.stdout.str() + result.stderr.str()
    assert log_problems(out) == []
    # Still there to read, only inert: the target's lines are quoted after "  | ", and its CR
    # began a line of its own.
    assert "  | starting\n  | ::error::from-target\n  | red x\n" in out
    for seen in ("from-postgres", "from-plan"):
        assert f":\u200b:error::{seen}" in out
    report = (pytester.path / "report.md").read_text()
    assert markdown_problems(report) == []


HOSTILE_ANSWER = {"message": "\x1b]8;;http://e.x\x07gone\x1b]8;;\x07\r\n::error::from-api"}


class _Hostile(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        data = json.dumps(HOSTILE_ANSWER).encode()
        self.send_response(404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_what_a_remote_api_answers_reaches_the_log_inert(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with GitHubClient("ghs_token", url) as client, pytest.raises(GitHubError) as github:
            client.head_sha("o/r", 1)
        with pytest.raises(NotifyError) as slack:
            SlackWebhook(f"{url}/hook").send(build_alert(full_report(), {}, None))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    for error in (github.value, slack.value):
        assert "gone" in str(error)
        assert log_problems(str(error)) == []
