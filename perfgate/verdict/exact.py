"""Deterministic comparisons: sizes, counts, error rates and plans, exactly or within a tolerance.

These do not depend on the machine's speed, so they gate even when the environment differs.
A tolerance is relative to the baseline for sizes and counts (0.05: 5% more is still fine; with
a baseline of 0 any increase is a change) and absolute for ratios such as the error rate
(0.01: one percentage point).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from perfgate.verdict.details import QueryDetails
from perfgate.verdict.values import Comparison, Metric, Outcome, format_value

__all__ = [
    "DEFAULT_TOLERANCES",
    "EXACT_METRICS",
    "compare_exact",
    "compare_plans",
    "path_changes",
]

# Which metrics compare exactly-or-within-tolerance, and the default tolerance of each.
# Response bytes: 5%, because JSON bodies carry timestamps and ids whose widths vary. Buffers:
# 10%, because hint bits and visibility-map state move a few pages between identical runs.
# Rows and temp blocks are exact, and so are an endpoint's statements and rows per request.
# Error rate: one percentage point, absolute.
DEFAULT_TOLERANCES: Mapping[str, float] = {
    "max_bytes": 0.05,
    "error_rate": 0.01,
    "buffers": 0.10,
    "rows": 0.0,
    "temp_blocks": 0.0,
    # What one request does to the database, counted exactly from pg_stat_statements.
    "queries_per_request": 0.0,
    "rows_per_request": 0.0,
    "buffers_per_request": 0.10,
}
EXACT_METRICS = tuple(DEFAULT_TOLERANCES)
_ABSOLUTE = frozenset({"error_rate"})


def compare_exact(metric: str, base: Metric, current: Metric, tolerance: float) -> Comparison:
    """Regression when the current value exceeds the baseline by more than the tolerance."""
    was, now = base.value, current.value
    absolute = metric in _ABSOLUTE
    if absolute:
        change = now - was
    else:
        change = (now - was) / was if was else (0.0 if now == was else math.copysign(math.inf, now))
    shown = f"{metric} {format_value(was, base.unit)} -> {format_value(now, current.unit)}"
    what = _tolerance_text(tolerance, absolute)
    delta = f"{change * 100:+.1f} points" if absolute else "from 0" if not was else f"{change:+.1%}"
    if now > was and change > tolerance:
        outcome, why = Outcome.REGRESSION, f"{shown} ({delta}), more than {what}"
    elif now < was and -change > tolerance:
        outcome, why = Outcome.IMPROVEMENT, f"{shown} ({delta}), less by more than {what}"
    elif now == was:
        outcome, why = Outcome.UNCHANGED, f"{shown}, equal"
    else:
        outcome, why = Outcome.UNCHANGED, f"{shown} ({delta}), within {what}"
    change_metric = None if absolute or not was else Metric(change, "ratio")
    return Comparison(metric, base, current, change_metric, tolerance, outcome, why)


def _tolerance_text(tolerance: float, absolute: bool) -> str:
    if absolute:
        return f"the tolerance of {tolerance * 100:g} points"
    if tolerance == 0:
        return "the baseline (compared exactly)"
    return f"the {tolerance:.0%} tolerance"


def compare_plans(base: QueryDetails, current: QueryDetails) -> Comparison | None:
    """Plan fingerprints of two query results, or None when either has none.

    A coarse change (how some table is read) is a regression, named table by table:
    ``guests: Index Scan using guests_wedding_name_idx -> Seq Scan``; the one exception is a
    change that only replaces sequential scans with index access, an improvement. A change of
    shape alone (join order, join or aggregate strategy) keeps every table's access path, so it
    is reported with outcome "unchanged" and does not fail: such changes follow row estimates
    and are usually harmless, and the timing comparison judges whether one was not.
    """
    b_shape, c_shape = base.fingerprint, current.fingerprint
    b_coarse, c_coarse = base.coarse_fingerprint, current.coarse_fingerprint
    if not b_shape or not c_shape:
        return None
    b_paths, c_paths = list(base.access_paths), list(current.access_paths)
    nothing = Metric(math.nan, "")
    if b_coarse and c_coarse and b_coarse != c_coarse:
        changes = path_changes(b_paths, c_paths)
        listed = "; ".join(changes) or "access paths differ"
        only_seq_removed = bool(changes) and all(_drops_seq_scan(c) for c in changes)
        outcome = Outcome.IMPROVEMENT if only_seq_removed else Outcome.REGRESSION
        what = "sequential scans replaced" if only_seq_removed else "access path changed"
        reason = f"plan {what}: {listed} (coarse fingerprint {b_coarse} -> {c_coarse})"
        return Comparison(
            "coarse_fingerprint",
            nothing,
            nothing,
            None,
            None,
            outcome,
            reason,
            baseline_text="; ".join(b_paths) or str(b_coarse),
            current_text="; ".join(c_paths) or str(c_coarse),
        )
    if b_shape != c_shape:
        reason = (
            f"plan shape changed (fingerprint {b_shape} -> {c_shape}) with every table read as "
            "before: reported, not failed"
        )
    else:
        reason = f"plan unchanged (fingerprint {c_shape})"
    return Comparison(
        "fingerprint",
        nothing,
        nothing,
        None,
        None,
        Outcome.UNCHANGED,
        reason,
        baseline_text=str(b_shape),
        current_text=str(c_shape),
    )


def path_changes(before: Sequence[str], after: Sequence[str]) -> tuple[str, ...]:
    """Per table, how its reading changed, from ``"table: method"`` strings (access_paths)."""
    was: dict[str, list[str]] = {}
    now: dict[str, list[str]] = {}
    for paths, into in ((before, was), (after, now)):
        for path in paths:
            relation, _, method = path.partition(": ")
            into.setdefault(relation, []).append(method)
    out = []
    for relation in sorted(was.keys() | now.keys()):
        old, new = sorted(was.get(relation, [])), sorted(now.get(relation, []))
        if old != new:
            out.append(
                f"{relation}: {', '.join(old) or '(not read)'} -> {', '.join(new) or '(not read)'}"
            )
    return tuple(out)


def _drops_seq_scan(change: str) -> bool:
    old, _, new = change.partition(": ")[2].partition(" -> ")
    return old.count("Seq Scan") > new.count("Seq Scan") and "(not read)" not in new
