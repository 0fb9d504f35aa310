"""The markdown report for a pull request comment or a GitHub step summary.

The words live in ``templates/report.md.j2``. Every string that came from a user (names,
descriptions, SQL, error text, plan labels, environment values) goes through the one ``md``
filter, or through ``fence`` when it is shown as a code block (both in ``escape.py``).
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import jinja2

from perfgate.exceptions import PerfgateError
from perfgate.plan import render_tree
from perfgate.report.cells import (
    ERROR_VERDICT,
    FAIL,
    MARGINAL,
    PASS,
    WARN,
    attention,
    change_text,
    check_for,
    environment_rows,
    headline_parts,
    interval_text,
    limit_text,
    safe_report,
    short_sha,
    threshold_text,
    verdict,
)
from perfgate.report.escape import clip, fence, md
from perfgate.verdict.database import DatabaseDetails, typical
from perfgate.verdict.details import EndpointDetails, QueryDetails
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Comparison, Metric, Outcome, Status, format_value

# GitHub refuses a step summary over 1 MiB (per step); stay under it with room for the note.
STEP_SUMMARY_LIMIT = 1024 * 1024 - 4096

_FENCE_LINE = re.compile(r"^(`{3,})(.*)$")

_VERDICTS = {
    PASS: "✅ pass",
    MARGINAL: "⚠️ marginal",
    FAIL: "❌ **fail**",
    WARN: "⚠️ warn",
    ERROR_VERDICT: "💥 error",
}
_ICONS = {PASS: "✅", MARGINAL: "⚠️", FAIL: "❌", WARN: "⚠️", ERROR_VERDICT: "💥"}
_OUTCOMES = {
    Outcome.REGRESSION: "🔴 regression",
    Outcome.IMPROVEMENT: "🟢 improvement",
    Outcome.UNCHANGED: "⚪ unchanged",
    Outcome.INCONCLUSIVE: "🟡 inconclusive",
}
_SEVERITY_ICONS = {"error": "❌", "warning": "⚠️"}


def render_markdown(report: GateReport) -> str:
    """The whole report as GitHub-flavoured markdown."""
    report = safe_report(report)
    template = _environment().get_template("report.md.j2")
    return _tidy(template.render(report=report, **_context(report)))


def _tidy(text: str) -> str:
    """Collapse the blank lines conditional sections leave, except inside code blocks."""
    out: list[str] = []
    fence_bar = ""
    for line in text.strip("\n").split("\n"):
        bar = _FENCE_LINE.match(line)
        if fence_bar:
            if bar and bar[1] and len(bar[1]) >= len(fence_bar) and not bar[2].strip():
                fence_bar = ""
        elif bar:
            fence_bar = bar[1]
        elif not line.strip() and out and not out[-1].strip():
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def append_step_summary(markdown: str, env: Mapping[str, str] = os.environ) -> Path | None:
    """Append to the file ``GITHUB_STEP_SUMMARY`` names (never overwrite); None if unset."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    try:
        used = path.stat().st_size if path.exists() else 0
        text = _fit(markdown.rstrip("\n") + "\n\n", STEP_SUMMARY_LIMIT - used)
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise PerfgateError(f"cannot append to GITHUB_STEP_SUMMARY {path}: {e.strerror}") from e
    return path


def _fit(text: str, budget: int) -> str:
    """Cut at a line boundary to fit ``budget`` bytes, saying so, rather than lose it all."""
    if len(text.encode()) <= budget:
        return text
    note = "\n_perfgate: report truncated to fit the step summary; see the JSON report._\n\n"
    room = max(budget - len(note.encode()), 0)
    cut = text.encode()[:room].decode(errors="ignore")
    return cut[: cut.rfind("\n") + 1] + note


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("perfgate", "report/templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # markdown, not HTML: escaping is the md filter's job
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, fence=fence, clip=clip, sha=short_sha, num=_num)
    env.tests.update(
        endpoint_details=lambda d: isinstance(d, EndpointDetails),
        query_details=lambda d: isinstance(d, QueryDetails),
    )
    env.globals.update(
        metric=metric_cell,
        verdict_cell=lambda r: _VERDICTS[verdict(r)],
        item_icon=lambda r: _ICONS[verdict(r)],
        severity_icon=lambda s: _SEVERITY_ICONS.get(str(s), "ℹ️"),
        outcome=lambda c: _OUTCOMES[c.outcome],  # checked by safe_report
        change=change_text,
        threshold=threshold_text,
        compared=compared_cell,
        by_cache=queries_by_cache,
        share=lambda s, db: f"{s.load_ms / db.load_ms:.0%}" if db.load_ms > 0 else "—",
        ms=lambda v: "—" if math.isnan(v) else format_value(v, "ms"),
        tree=render_tree,
        per_request=lambda total, db: f"{total / db.load_requests:,.1f}",
    )
    return env


def queries_by_cache(db: DatabaseDetails) -> str:
    """'61 queries on MISS, 1 on HIT', or '43 queries' when no cache state tells them apart;
    each the most common count of its probes, '(46 in 1 of 5 requests)' where some differed."""

    def count(values: tuple[int, ...], noun: str) -> str:
        usual = typical(values)
        odd = [v for v in values if v != usual]
        text = f"{usual:,}{noun}"
        if odd:
            seen = ", ".join(f"{v:,}" for v in sorted(set(odd)))
            text += f" ({seen} in {len(odd)} of {len(values)} requests)"
        return text

    ranked = sorted(db.by_cache().items(), key=lambda kv: (-typical(kv[1]), kv[0]))
    parts = []
    for i, (cache, values) in enumerate(ranked):
        noun = "" if i else (" query" if typical(values) == 1 else " queries")
        where = f" on {cache or 'no x-cache'}" if len(ranked) > 1 else ""
        parts.append(count(values, noun) + where)
    return ", ".join(parts)


def _context(report: GateReport) -> dict[str, object]:
    items, outcomes = headline_parts(report)
    counts = report.counts()
    if report.status == Status.FAILED:
        icon = "❌"
    elif counts["warned"] or counts[Outcome.REGRESSION]:
        icon = "⚠️"
    else:
        icon = "✅"
    needs_look = [r for r in report.results if attention(r)]
    return {
        "headline_icon": icon,
        "headline": md(" · ".join([", ".join(items), *outcomes])),
        "endpoints": [r for r in report.results if r.kind == "endpoint"],
        "counted": any("queries_per_request" in r.metrics for r in report.results),
        "queries": [r for r in report.results if r.kind == "query"],
        "attention": needs_look,
        "passing": [
            r
            for r in report.results
            if r not in needs_look
            and (
                r.comparisons
                or (isinstance(r.details, (QueryDetails, EndpointDetails)) and r.details.findings)
                or _has_statements(r)
            )
        ],
        "confidence": _confidence(report),
        "marginal": any(verdict(r) == MARGINAL for r in report.results),
        "environment": environment_rows(report.environment),
    }


def _has_statements(r: Verdict) -> bool:
    # Counted statements; not a "were not read" note (the run says that once).
    return (
        isinstance(r.details, EndpointDetails)
        and r.details.database is not None
        and bool(r.details.database.probes)
    )


def metric_cell(result: Verdict, name: str) -> str:
    """'182ms <sub>171–190</sub>' with the budget under it when the metric is checked."""
    check = check_for(result, name)
    metric = result.metrics.get(name) or (check.value if check else None)
    if metric is None:
        return "—"
    value = format_value(metric.value, metric.unit)
    if check is not None and not check.passed:
        value = f"❌ **{value}**"
    elif check is not None and check.marginal:
        value = f"⚠️ {value}"
    interval = interval_text(metric)
    text = f"{value} <sub>{interval}</sub>" if interval else value
    if check is not None:
        text += f"<br><sub>budget {limit_text(check)}</sub>"
    return text


def compared_cell(comparison: Comparison, current: bool) -> str:
    """One side of a comparison: the metric with its interval, or the text (a fingerprint)."""
    text = comparison.current_text if current else comparison.baseline_text
    if text is not None:
        return f"<code>{md(clip(text, 60))}</code>"
    metric: Metric = comparison.current if current else comparison.baseline
    if math.isnan(metric.value):
        return "—"
    interval = interval_text(metric)
    value = format_value(metric.value, metric.unit)
    return f"{value} <sub>{interval}</sub>" if interval else value


def _confidence(report: GateReport) -> str:
    """'95%' when every interval shown has that level, else '' (the legend stays vague)."""
    levels = {
        m.confidence
        for r in report.results
        for m in r.metrics.values()
        if m.has_interval and m.confidence is not None
    }
    return f"{levels.pop() * 100:g}%" if len(levels) == 1 else ""


def _num(value: object) -> str:
    """A row or buffer count as '1,234' ('—' when absent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
