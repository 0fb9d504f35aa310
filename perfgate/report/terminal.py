"""The ``perfgate`` section of pytest's terminal summary: one table per kind, then what failed.

Every line is safe to print to a terminal or a CI log: the report's texts are cleaned first
(``safe_report``), and no line can start a workflow command (``escape.inert_line``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from os import PathLike

from perfgate.redact import clean
from perfgate.report.cells import (
    ERROR_VERDICT,
    FAIL,
    MARGINAL,
    WARN,
    compact,
    headline_parts,
    limit_text,
    safe_report,
    short_name,
    short_sha,
    verdict,
)
from perfgate.report.escape import inert_line, terminal_text
from perfgate.verdict.details import EndpointDetails, QueryDetails
from perfgate.verdict.model import BaselineInfo, GateReport, Verdict
from perfgate.verdict.values import Check, Outcome

# (metric, with interval): what each kind's table shows, in column order.
ENDPOINT_COLUMNS = (
    ("p50_ms", False),
    ("p95_ms", True),
    ("p99_ms", True),
    ("error_rate", False),
    ("queries_per_request", False),
)
_OPTIONAL = frozenset({"queries_per_request"})
QUERY_COLUMNS = (("execution_ms", True), ("buffers", False), ("rows", False))
_GAP = "  "
_MIN_NAME = 12
_LABEL = len("REGRESSION")


def render_terminal(
    report: GateReport,
    width: int = 100,
    written: Sequence[str | PathLike[str]] = (),
    notes: Sequence[str] = (),
) -> list[str]:
    """Lines for pytest's ``perfgate`` summary section, each at most ``width`` columns.

    ``written`` lists the report files this run wrote, shown last so they are easy to find;
    ``notes`` (what the run has to say about its resources) follow, as ``perfgate: NOTE``.
    """
    report = safe_report(report)
    lines: list[str] = []
    for kind, columns in (("endpoint", ENDPOINT_COLUMNS), ("query", QUERY_COLUMNS)):
        results = [r for r in report.results if r.kind == kind]
        # A column only some runs have (statements per request) only when one result has it.
        shown = tuple(
            (m, iv)
            for m, iv in columns
            if m not in _OPTIONAL or any(m in r.metrics for r in results)
        )
        if results:
            if lines:
                lines.append("")
            lines += _table(kind, shown, results, width)
    if not report.results:
        lines.append("no endpoints or queries were gated")
    problems = _problem_lines(report, width)
    if problems:
        lines += ["", *problems]
    lines.append("")
    if report.baseline is not None:
        lines += _wrap(_baseline_line(report.baseline), width, "  ")
    lines += _wrap(headline(report), width, "  ")
    if written:
        paths = (" ".join(clean(str(p)).split()) for p in written)
        lines += _wrap("reports: " + ", ".join(paths), width, "  ")
    lines = [inert_line(part) for line in lines for part in line.split("\n")]
    for note in notes:
        lines += terminal_text(f"perfgate: {note}").split("\n")
    return lines


def headline(report: GateReport) -> str:
    """'perfgate: 1 failed, 4 passed · 1 regression · 2 inconclusive'."""
    items, outcomes = headline_parts(report)
    return "perfgate: " + " · ".join([", ".join(items), *outcomes])


def _table(
    title: str, columns: tuple[tuple[str, bool], ...], results: list[Verdict], width: int
) -> list[str]:
    # Narrow terminals lose the intervals first, then metric columns from the right, so the
    # names stay readable.
    layouts = [(columns, True)] + [(columns[:n], False) for n in range(len(columns), -1, -1)]
    for shown, with_intervals in layouts:
        header = [title, *(short_name(m) for m, _ in shown), "budget", "verdict"]
        rows = [
            [
                " ".join(r.name.split()),
                *(compact(r.metrics.get(m), iv and with_intervals) for m, iv in shown),
                _budget(r),
                verdict(r),
            ]
            for r in results
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        rest = sum(widths[1:]) + len(_GAP) * (len(widths) - 1)
        if rest + min(widths[0], _MIN_NAME) <= width:
            break
    widths[0] = max(min(widths[0], width - rest), 1)
    out = [_row(header, widths)]
    out.append(_row(["-" * w for w in widths], widths))
    out += [_row(row, widths) for row in rows]
    return [line.rstrip()[:width] for line in out]


def _row(cells: list[str], widths: list[int]) -> str:
    name = _truncate(cells[0], widths[0]).ljust(widths[0])
    # Numbers right-aligned so digits line up; the two text columns at the end left-aligned.
    middle = [c.rjust(w) for c, w in zip(cells[1:-2], widths[1:-2], strict=True)]
    tail = [c.ljust(w) for c, w in zip(cells[-2:], widths[-2:], strict=True)]
    return _GAP.join([name, *middle, *tail])


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _budget(result: Verdict) -> str:
    """The check a reader most needs: the first failing, else marginal, else the first."""
    if not result.checks:
        return "-"
    ranked = sorted(result.checks, key=lambda c: (c.passed, not c.marginal))
    text = _check_text(ranked[0])
    if len(result.checks) > 1:
        text += f" (+{len(result.checks) - 1})"
    return text


def _check_text(check: Check) -> str:
    return f"{short_name(check.metric)} {limit_text(check, ascii_only=True)}"


def _problem_lines(report: GateReport, width: int) -> list[str]:
    lines: list[str] = []
    for r in report.results:
        label = verdict(r)
        if label == ERROR_VERDICT:
            # Its first line: the whole of it (a target's output, say) is in the failure above.
            first, _, more = (r.error or "could not be measured").strip().partition("\n")
            lines += _problem(label, r.name, first + (" (more above)" if more else ""), width)
            continue
        if label in (FAIL, WARN):
            for check in r.failed_checks:
                lines += _problem(label, r.name, check.explain(), width)
            for reason in r.failures:
                lines += _problem(label, r.name, reason, width)
        elif label == MARGINAL:
            for check in (c for c in r.checks if c.marginal):
                lines += _problem(label, r.name, check.explain(), width)
        for c in r.comparisons:
            if c.outcome == Outcome.REGRESSION:
                lines += _problem("REGRESSION", f"{r.name} {c.metric}", c.reason, width)
        if isinstance(r.details, EndpointDetails):
            for seen in r.details.error_summary:
                lines += _problem("ERRORS", r.name, seen, width)
        if isinstance(r.details, (EndpointDetails, QueryDetails)):
            for finding in r.details.findings:
                if finding.severity != "warning":
                    continue
                if finding.rule == "n-plus-one":
                    lines += _problem("N+1", r.name, finding.message.removeprefix("N+1: "), width)
                else:
                    lines += _problem("PLAN", r.name, f"{finding.rule}: {finding.message}", width)
    return lines


def _problem(label: str, name: str, text: str, width: int) -> list[str]:
    return _wrap(f"{label:<{_LABEL}} {name}: {text}", width, " " * (_LABEL + 1))


def _baseline_line(baseline: BaselineInfo) -> str:
    if not baseline.found:
        searched = len(baseline.searched)
        what = f"searched {searched} commit{'s' if searched != 1 else ''}"
        return f"no baseline: {what} ({baseline.how}); budgets only"
    when = f" {baseline.date[:10]}" if baseline.date else ""
    sha = short_sha(baseline.commit) or (baseline.source or "file")
    return f"baseline: {sha}{when}, {baseline.how}"


def _wrap(text: str, width: int, indent: str) -> list[str]:
    # textwrap turns newlines into spaces and keeps runs of spaces, so label padding survives.
    return textwrap.wrap(text, width=width, subsequent_indent=indent, break_on_hyphens=False) or [
        ""
    ]
