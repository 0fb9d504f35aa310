"""How results read in a report: verdicts, compact metrics with intervals, changes, counts.

Shared by the terminal and markdown renderers so both say the same thing in the same words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TypeVar

from perfgate.exceptions import PerfgateError
from perfgate.redact import Redactor
from perfgate.verdict.details import RoundsMode
from perfgate.verdict.endpoint import BUDGET_METRIC
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import (
    Check,
    CheckStatus,
    Comparison,
    Kind,
    Metric,
    Outcome,
    Status,
    Text,
    format_value,
)

E = TypeVar("E", bound=Text)

PASS, FAIL, MARGINAL, WARN = "PASS", "FAIL", "MARGINAL", "WARN"
ERROR_VERDICT = "ERROR"

# Known environment keys in the order a reader wants them; anything else follows, sorted.
ENVIRONMENT_LABELS = {
    "python": "Python",
    "perfgate": "perfgate",
    "platform": "Platform",
    "cpu_model": "CPU",
    "cpu_count": "CPU count",
    "postgres_version": "PostgreSQL",
    "database": "Database",
    "planner_settings": "Planner settings",
    "git_commit": "Commit",
    "target": "Target",
}

_SHORT_NAMES = {
    "execution_ms": "exec",
    "planning_ms": "planning",
    "error_rate": "errors",
    "throughput_rps": "throughput",
    "cache_hit_ratio": "cache hit",
    "max_bytes": "max size",
    "mean_bytes": "mean size",
    "temp_blocks": "temp blocks",
    "queries_per_request": "queries",
    "max_queries_per_request": "queries",
    "rows_per_request": "rows/req",
    "max_rows_per_request": "rows/req",
    "buffers_per_request": "buffers/req",
    "max_buffers_per_request": "buffers/req",
    "db_ms_per_request": "db/req",
    "max_db_ms_per_request": "db/req",
    "statement_mean_ms": "stmt mean",
    "max_statement_mean_ms": "stmt mean",
    "db_cache_hit_ratio": "db cache hit",
    "min_db_cache_hit_ratio": "db cache hit",
    "connections_peak_ratio": "connections",
    "max_connections_ratio": "connections",
}
_NUMBER_AND_UNIT = re.compile(r"^([+-]?[0-9][0-9,]*(?:\.[0-9]+)?)(.*)$")


def member(enum: type[E], value: object, where: str) -> E:
    """``value`` as a member of ``enum``; PerfgateError naming ``where`` if it is none."""
    try:
        return enum.read(value, where)
    except ValueError as exc:
        raise PerfgateError(f"cannot render the report: {exc}") from None


def safe_report(report: GateReport) -> GateReport:
    """The report as every renderer starts from it: its vocabularies checked (an unknown
    status or outcome is an error, never shown), every text cleaned of control characters
    and escape sequences, URL credentials and DSN passwords masked."""
    for i, r in enumerate(report.results):
        where = f"results[{i}]"
        member(Kind, r.kind, f"{where}.kind")
        member(Status, r.status, f"{where}.status")
        for j, c in enumerate(r.comparisons):
            member(Outcome, c.outcome, f"{where}.comparisons[{j}].outcome")
        for j, check in enumerate(r.checks):
            member(CheckStatus, check.status, f"{where}.checks[{j}].status")
        if r.rounds is not None:
            member(RoundsMode, r.rounds.mode, f"{where}.rounds.mode")
    return Redactor().scrub(report)


def verdict(result: Verdict) -> str:
    """PASS, FAIL, MARGINAL (passed, but an interval straddles a limit), ERROR or WARN."""
    if result.status == Status.ERROR:
        return ERROR_VERDICT
    if result.status == Status.WARNED:
        return WARN
    if result.status == Status.FAILED:
        return FAIL
    return MARGINAL if any(c.marginal for c in result.checks) else PASS


def short_name(metric: str) -> str:
    """'p95' for p95_ms, 'exec' for execution_ms: the name a table column can afford."""
    if metric in _SHORT_NAMES:
        return _SHORT_NAMES[metric]
    return metric.removesuffix("_ms").replace("_", " ")


def interval_text(metric: Metric, sep: str = "–") -> str:
    """'171–190' when both ends share the value's unit (it is shown once, on the value)."""
    if metric.low is None or metric.high is None:
        return ""
    if not (math.isfinite(metric.low) and math.isfinite(metric.high)):
        return ""
    ends = [format_value(x, metric.unit) for x in (metric.low, metric.high)]
    units = {_unit_of(text) for text in [*ends, format_value(metric.value, metric.unit)]}
    if len(units) == 1:
        unit = units.pop()
        ends = [text.removesuffix(unit) for text in ends]
    return sep.join(ends)


def _unit_of(text: str) -> str:
    match = _NUMBER_AND_UNIT.match(text)
    return match[2] if match else text


def compact(metric: Metric | None, with_interval: bool = True) -> str:
    """'182ms [171–190ms]': the value, then its interval, for a narrow table cell."""
    if metric is None:
        return "-"
    text = format_value(metric.value, metric.unit)
    interval = interval_text(metric) if with_interval else ""
    return f"{text} [{interval}]" if interval else text


def signed_pct(ratio: float) -> str:
    """A relative change as '+12.3%' / '-4.0%'."""
    if not math.isfinite(ratio):
        return "n/a"
    pct = ratio * 100
    digits = 2 if 0 < abs(pct) < 1 else 1
    return f"{pct:+.{digits}f}%"


def change_text(comparison: Comparison) -> str:
    """'+18.0% [+9.1%, +27.4%]', or '' when the metric is not numeric."""
    change = comparison.change
    if change is None:
        return ""
    text = signed_pct(change.value)
    if change.low is not None and change.high is not None:
        text += f" [{signed_pct(change.low)}, {signed_pct(change.high)}]"
    return text


def threshold_text(comparison: Comparison) -> str:
    """'10%' — the relative change that would count as a regression."""
    if comparison.threshold is None or not math.isfinite(comparison.threshold):
        return ""
    return f"{abs(comparison.threshold) * 100:g}%"


def limit_text(check: Check, ascii_only: bool = False) -> str:
    """'≤ 250ms' for a maximum, '≥ 90.0%' for a minimum."""
    ops = ("<=", ">=") if ascii_only else ("≤", "≥")
    op = ops[0] if check.upper else ops[1]
    return f"{op} {format_value(check.limit, check.value.unit)}"


def check_for(result: Verdict, metric: str) -> Check | None:
    """The budget check on this metric, if the item has one (``max_queries_per_request`` is
    the check on ``queries_per_request``)."""
    return next(
        (c for c in result.checks if c.metric == metric or BUDGET_METRIC.get(c.metric) == metric),
        None,
    )


def headline_parts(report: GateReport) -> tuple[list[str], list[str]]:
    """('1 failed', '4 passed') and ('1 regression', '2 inconclusive') for a headline."""
    counts = report.counts()
    items = []
    if report.completion is not None and not report.complete:
        items.append(f"INCOMPLETE ({report.completion.why()})")
    if counts[Status.FAILED]:
        items.append(f"{counts[Status.FAILED]} failed")
    if counts[Status.ERROR]:
        items.append(_plural(counts[Status.ERROR], "error"))
    if counts[Status.WARNED]:
        items.append(f"{counts[Status.WARNED]} over budget (warn-only)")
    if counts[Status.PASSED] or not items:
        items.append(f"{counts[Status.PASSED]} passed")
    outcomes = []
    if counts[Outcome.REGRESSION]:
        outcomes.append(_plural(counts[Outcome.REGRESSION], "regression"))
    elif report.baseline is not None and report.baseline.found:
        outcomes.append("no regressions")
    if counts[Outcome.INCONCLUSIVE]:
        outcomes.append(f"{counts[Outcome.INCONCLUSIVE]} inconclusive")
    if counts[Outcome.IMPROVEMENT]:
        outcomes.append(_plural(counts[Outcome.IMPROVEMENT], "improvement"))
    return items, outcomes


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def short_sha(commit: str | None) -> str:
    """The first 7 hex digits of a commit, as git shows them."""
    return (commit or "")[:7]


def environment_rows(environment: Mapping[str, object]) -> list[tuple[str, str]]:
    """(label, text) pairs: the known keys in a fixed order, then any others sorted."""
    keys = [k for k in ENVIRONMENT_LABELS if k in environment]
    keys += sorted(k for k in environment if k not in ENVIRONMENT_LABELS)
    return [(ENVIRONMENT_LABELS.get(k, k), _environment_value(environment[k])) for k in keys]


def _environment_value(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def attention(result: Verdict) -> bool:
    """Whether a reader must look at this item: not passed, or slower than the baseline."""
    return result.status != Status.PASSED or any(
        c.outcome == Outcome.REGRESSION for c in result.comparisons
    )
