"""GitHub workflow commands for a gate run: one annotation per item that needs a look.

Each annotation points at the budgets.yaml line that defines the item (``Result.source``), so
the pull request's "Files changed" tab shows it on that line. Everything inside a command is
escaped the way the Actions runner unescapes it (actions/toolkit ``command.ts``), so text from
the target or the budgets file cannot end the command early or start another one; control
characters and escape sequences are removed first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfgate.redact import clean, redact_text
from perfgate.report.cells import safe_report
from perfgate.report.escape import escape_data, escape_property
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Outcome, Status

ERROR_LEVEL, WARNING_LEVEL = "error", "warning"
MESSAGE_LIMIT = 4000  # GitHub shows long annotations cut anyway; keep the log readable

_SOURCE = re.compile(r"^(?P<file>.+?):(?P<line>[0-9]+)$")


@dataclass(frozen=True, slots=True)
class Annotation:
    """One ``::error`` or ``::warning`` line."""

    level: str  # ERROR_LEVEL | WARNING_LEVEL
    title: str
    message: str
    file: str | None = None
    line: int | None = None

    def command(self) -> str:
        """The workflow command, e.g. '::error file=budgets.yaml,line=14,title=...::message'."""
        props = []
        if self.file:
            props.append(f"file={escape_property(clean(self.file))}")
            if self.line is not None:
                props.append(f"line={self.line}")
        props.append(f"title={escape_property(clean(self.title))}")
        message = clean(self.message)
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 1] + "…"
        return f"::{self.level} {','.join(props)}::{escape_data(message)}"


def parse_source(source: str | None) -> tuple[str | None, int | None]:
    """'budgets.yaml:14' -> ('budgets.yaml', 14); a test node id -> (its file, None)."""
    if not source:
        return None, None
    match = _SOURCE.match(source)
    if match:
        return match["file"], int(match["line"])
    path = source.split("::", 1)[0]
    return (path, None) if path.endswith(".py") else (None, None)


def collect_annotations(report: GateReport) -> list[Annotation]:
    """Errors for failed and unmeasurable items; warnings for warn-only, marginal, inconclusive."""
    out = []
    for result in safe_report(report).results:
        annotation = annotate(result)
        if annotation is not None:
            out.append(annotation)
    return out


def annotate(result: Verdict) -> Annotation | None:
    """The annotation one result deserves, or None when it passed cleanly."""
    file, line = parse_source(result.source)
    what = f"{result.kind} {result.name}"
    if result.status == Status.ERROR:
        title, level = f"perfgate: {what} could not be measured", ERROR_LEVEL
        message = result.explain()
    elif result.status in (Status.FAILED, Status.WARNED):
        regressed = any(c.outcome == Outcome.REGRESSION for c in result.comparisons)
        over = bool(result.failed_checks or result.failures)
        problem = "over budget" if over or not regressed else "slower than the baseline"
        if result.status == Status.WARNED:
            title, level = f"perfgate: {what} {problem} (warn-only)", WARNING_LEVEL
        else:
            title, level = f"perfgate: {what} {problem}", ERROR_LEVEL
        message = result.explain()
    else:
        lines = [c.explain() for c in result.checks if c.marginal]
        lines += [
            f"{c.metric}: inconclusive against the baseline: {c.reason}"
            for c in result.comparisons
            if c.outcome == Outcome.INCONCLUSIVE
        ]
        lines += [
            f"{c.metric}: slower than the baseline: {c.reason}"
            for c in result.comparisons
            if c.outcome == Outcome.REGRESSION
        ]
        if not lines:
            return None
        title, level = f"perfgate: {what} needs a second look", WARNING_LEVEL
        message = "\n".join(lines)
    return Annotation(level, redact_text(title), redact_text(message), file, line)


def render_annotations(report: GateReport) -> str:
    """All annotations of a report, one command per line ('' when everything passed)."""
    return "".join(a.command() + "\n" for a in collect_annotations(report))
