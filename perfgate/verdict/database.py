"""What an endpoint does to the database, as a verdict sees it: counts, findings, changes.

``database_details`` turns the probe's readings into ``DatabaseDetails`` (what the report and a
baseline keep); ``database_metrics`` gives the gated metrics:

* ``queries_per_request``, ``rows_per_request``, ``buffers_per_request``: exact, from requests
  sent one at a time: per cache state (x-cache HIT, MISS, or none) the most common count, and
  the largest of those (a MISS costs more than a HIT, and the budget is for the costly path);
  transaction control (BEGIN, COMMIT, ...) and a pool's connection reset are not queries;
* ``db_ms_per_request``: the mean execution time per probe request, with a Student t interval;
* ``statement_mean_ms``: during the load run, the slowest query's mean execution time, with an
  interval from pg_stat_statements' own standard deviation of its calls (among the queries the
  requests sent alone ran too: not what new connections ran once);
* ``db_cache_hit_ratio``: shared buffers found in PostgreSQL's cache during the load run, over
  all shared buffers the endpoint's statements touched (no interval: a count, not a sample);
* ``connections_peak_ratio``: the most client connections to the scratch database seen during
  the load run (sampled every 50 ms), over ``max_connections`` less the superuser-reserved ones.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from perfgate.exceptions import PlanError
from perfgate.plan import Finding, Plan
from perfgate.probes.dbprofile import LoadStatements, RequestStatements, own_statements
from perfgate.probes.statements import StatementTotals, is_transaction_control
from perfgate.stats import Estimate, Interval, mean_estimate, student_t_ppf
from perfgate.verdict.values import Comparison, Metric, Outcome, number

__all__ = [
    "DATABASE_METRICS",
    "DatabaseDetails",
    "ProbeCount",
    "StatementRow",
    "database_details",
    "database_metrics",
    "n_plus_one",
    "name_statement_changes",
    "plan_from_json",
    "typical",
]

DATABASE_METRICS = (
    "queries_per_request",
    "rows_per_request",
    "buffers_per_request",
    "db_ms_per_request",
    "statement_mean_ms",
    "db_cache_hit_ratio",
    "connections_peak_ratio",
)
MAX_STATEMENTS = 30  # kept per endpoint, by execution time
MAX_TEXT = 1000  # characters of a statement's normalised text
SHORT_TEXT = 90  # in a finding or a comparison


@dataclass(frozen=True, slots=True)
class ProbeCount:
    """One request sent alone: what it cost the database."""

    cache: str | None
    status: int | None
    queries: int
    rows: int
    buffers: int
    db_ms: float


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One normalised statement of an endpoint: per request, and during the load run."""

    text: str
    per_request: int  # calls in the request that made the most of them
    rows: int  # rows in that request
    buffers: int  # shared buffers hit or read in that request
    shared_hit: int = 0
    shared_read: int = 0
    shared_dirtied: int = 0
    temp_blocks: int = 0  # temp blocks read or written in that request
    exec_ms: float = 0.0  # execution time in that request
    queryid: int = 0
    load_calls: int = 0
    load_ms: float = 0.0  # execution time during the load run, all calls
    mean_ms: float = math.nan  # per call, during the load run
    plan: Plan | None = None  # its generic plan, for the heaviest statements
    plan_note: str = ""  # why it has no plan

    @property
    def is_query(self) -> bool:
        return not is_transaction_control(self.text)


@dataclass(frozen=True, slots=True)
class DatabaseDetails:
    """The statements an endpoint caused; ``unavailable`` says why there are none."""

    probes: tuple[ProbeCount, ...] = ()
    statements: tuple[StatementRow, ...] = ()
    load_requests: int = 0  # every request of the load run, warm-up included
    load_queries: int = 0  # statements during the load run, transaction control left out
    load_rows: int = 0
    load_buffers: int = 0
    load_ms: float = 0.0
    connections_peak: int = 0
    max_connections: int = 0
    unavailable: str = ""
    probe_seconds: float = 0.0  # what the single requests and their readings took

    def by_cache(self) -> dict[str, tuple[int, ...]]:
        """Queries of each probe by cache state, in order: {"MISS": (61,), "HIT": (1, 1)}."""
        out: dict[str, list[int]] = {}
        for p in self.probes:
            out.setdefault(p.cache or "", []).append(p.queries)
        return {k: tuple(v) for k, v in out.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "probes": [
                {
                    "cache": p.cache,
                    "status": p.status,
                    "queries": p.queries,
                    "rows": p.rows,
                    "buffers": p.buffers,
                    "db_ms": round(p.db_ms, 3),
                }
                for p in self.probes
            ],
            "statements": [_row_to_json(s) for s in self.statements],
            "load_requests": self.load_requests,
            "load_queries": self.load_queries,
            "load_rows": self.load_rows,
            "load_buffers": self.load_buffers,
            "load_ms": round(self.load_ms, 3),
            "connections_peak": self.connections_peak,
            "max_connections": self.max_connections,
            "unavailable": self.unavailable,
            "probe_seconds": round(self.probe_seconds, 3),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatabaseDetails:
        return cls(
            probes=tuple(
                ProbeCount(
                    cache=p["cache"] if p.get("cache") in ("HIT", "MISS") else None,
                    status=None if p.get("status") is None else _int(p["status"]),
                    queries=_int(p.get("queries")),
                    rows=_int(p.get("rows")),
                    buffers=_int(p.get("buffers")),
                    db_ms=_float(p.get("db_ms")),
                )
                for p in data.get("probes") or ()
            ),
            statements=tuple(_row_from_json(s) for s in data.get("statements") or ()),
            load_requests=_int(data.get("load_requests")),
            load_queries=_int(data.get("load_queries")),
            load_rows=_int(data.get("load_rows")),
            load_buffers=_int(data.get("load_buffers")),
            load_ms=_float(data.get("load_ms")),
            connections_peak=_int(data.get("connections_peak")),
            max_connections=_int(data.get("max_connections")),
            unavailable=str(data.get("unavailable") or ""),
            probe_seconds=_float(data.get("probe_seconds")),
        )


def _row_to_json(s: StatementRow) -> dict[str, Any]:
    return {
        "text": s.text,
        "per_request": s.per_request,
        "rows": s.rows,
        "buffers": s.buffers,
        "shared_hit": s.shared_hit,
        "shared_read": s.shared_read,
        "shared_dirtied": s.shared_dirtied,
        "temp_blocks": s.temp_blocks,
        "exec_ms": round(s.exec_ms, 4),
        "queryid": s.queryid,
        "load_calls": s.load_calls,
        "load_ms": round(s.load_ms, 3),
        "mean_ms": None if math.isnan(s.mean_ms) else round(s.mean_ms, 4),
        "plan": s.plan.to_json() if s.plan is not None else None,
        "plan_note": s.plan_note,
    }


def _row_from_json(data: Mapping[str, Any]) -> StatementRow:
    plan = data.get("plan")
    return StatementRow(
        text=str(data.get("text", "")),
        per_request=_int(data.get("per_request")),
        rows=_int(data.get("rows")),
        buffers=_int(data.get("buffers")),
        shared_hit=_int(data.get("shared_hit")),
        shared_read=_int(data.get("shared_read")),
        shared_dirtied=_int(data.get("shared_dirtied")),
        temp_blocks=_int(data.get("temp_blocks")),
        exec_ms=_float(data.get("exec_ms")),
        queryid=_int(data.get("queryid")),
        load_calls=_int(data.get("load_calls")),
        load_ms=_float(data.get("load_ms")),
        mean_ms=number(data.get("mean_ms")),
        plan=plan_from_json(plan),
        plan_note=str(data.get("plan_note") or ""),
    )


def plan_from_json(data: object) -> Plan | None:
    """A stored plan (None stays None); ValueError, naming it, for one that cannot be read."""
    if data is None:
        return None
    try:
        return Plan.from_json(data)
    except PlanError as exc:
        raise ValueError(f"unreadable plan: {exc}") from None


def _int(value: object) -> int:
    n = number(value)
    return int(n) if math.isfinite(n) else 0


def _float(value: object) -> float:
    n = number(value)
    return n if math.isfinite(n) else 0.0


def database_details(
    probes: Sequence[RequestStatements], load: LoadStatements | None
) -> DatabaseDetails:
    """The probes' and the load run's readings, merged by statement text."""
    rows: dict[str, StatementRow] = {}
    for probe in probes:
        for s in probe.statements:
            seen = rows.get(s.text)
            if seen is None or s.calls > seen.per_request:
                rows[s.text] = StatementRow(
                    s.text[:MAX_TEXT],
                    s.calls,
                    s.rows,
                    s.buffers,
                    shared_hit=s.shared_hit,
                    shared_read=s.shared_read,
                    shared_dirtied=s.shared_dirtied,
                    temp_blocks=s.temp_blocks,
                    exec_ms=s.exec_ms,
                    queryid=s.queryid,
                )
    load_rows: Sequence[StatementTotals] = load.statements if load is not None else ()
    for s in load_rows:
        seen = rows.get(s.text) or StatementRow(s.text[:MAX_TEXT], 0, 0, 0, queryid=s.queryid)
        rows[s.text] = replace(seen, load_calls=s.calls, load_ms=s.exec_ms, mean_ms=s.mean_ms)
    ranked = sorted(rows.values(), key=lambda r: (-r.load_ms, -r.per_request, r.text))
    return DatabaseDetails(
        probes=tuple(
            ProbeCount(p.cache, p.status, p.queries, p.rows, p.buffers, p.db_ms) for p in probes
        ),
        statements=tuple(ranked[:MAX_STATEMENTS]),
        load_requests=load.requests if load is not None else 0,
        load_queries=sum(s.calls for s in load_rows if not is_transaction_control(s.text)),
        load_rows=sum(s.rows for s in load_rows if not is_transaction_control(s.text)),
        load_buffers=sum(s.buffers for s in load_rows),
        load_ms=sum(s.exec_ms for s in load_rows),
        connections_peak=load.connections_peak if load is not None else 0,
        max_connections=load.max_connections if load is not None else 0,
    )


def database_metrics(
    probes: Sequence[RequestStatements],
    load: LoadStatements | None,
    confidence: float = 0.95,
) -> dict[str, Metric]:
    """The gated database metrics (see the module docstring for what each one is)."""
    out: dict[str, Metric] = {}
    if probes:
        groups: dict[str | None, list[RequestStatements]] = {}
        for p in probes:
            groups.setdefault(p.cache, []).append(p)
        counts: dict[str, Callable[[RequestStatements], int]] = {
            "queries_per_request": lambda p: p.queries,
            "rows_per_request": lambda p: p.rows,
            "buffers_per_request": lambda p: p.buffers,
        }
        for key, count in counts.items():
            worst = max(typical([count(p) for p in group]) for group in groups.values())
            out[key] = Metric(float(worst), "count")
        times = [p.db_ms for p in probes]
        out["db_ms_per_request"] = Metric.from_estimate(mean_estimate(times, confidence), "ms")
    if load is not None:
        queries = own_statements(probes, load)
        if queries:
            slowest = max(queries, key=lambda s: s.mean_ms)
            out["statement_mean_ms"] = Metric.from_estimate(
                _mean_of_calls(slowest, confidence), "ms"
            )
        hit = sum(s.shared_hit for s in load.statements)
        touched = sum(s.buffers for s in load.statements)
        out["db_cache_hit_ratio"] = Metric(hit / touched if touched else math.nan, "ratio")
        if load.max_connections > 0:
            out["connections_peak_ratio"] = Metric(
                load.connections_peak / load.max_connections, "ratio"
            )
    return out


def typical(counts: Sequence[int]) -> int:
    """The most common count (the larger on a tie): a driver's once-per-connection lookups
    in one request do not move it."""
    tally = Counter(counts)
    return max(tally, key=lambda c: (tally[c], c))


def _mean_of_calls(s: StatementTotals, confidence: float) -> Estimate:
    """A statement's mean execution time with a Student t interval from its calls' spread."""
    sd = s.stddev_ms
    if not math.isfinite(sd):
        return Estimate(s.mean_ms, None)
    half = student_t_ppf(0.5 + confidence / 2.0, s.calls - 1) * sd / math.sqrt(s.calls)
    low = max(0.0, s.mean_ms - half)
    return Estimate(s.mean_ms, Interval(low, s.mean_ms + half, confidence))


def short(text: str, limit: int = SHORT_TEXT) -> str:
    """A statement on one line, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def n_plus_one(
    probes: Sequence[RequestStatements], repeats: int, severity: str
) -> tuple[Finding, ...]:
    """One finding per statement run ``repeats`` times or more in a single request."""
    most: dict[str, int] = {}
    for probe in probes:
        for s in probe.statements:
            if s.calls >= repeats and not is_transaction_control(s.text):
                most[s.text] = max(most.get(s.text, 0), s.calls)
    return tuple(
        Finding(
            rule="n-plus-one",
            severity=severity,
            path="",
            node_type="",
            relation=None,
            message=f"N+1: {short(text)} ×{n} per request",
        )
        for text, n in sorted(most.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def name_statement_changes(
    comparison: Comparison, base: DatabaseDetails, current: DatabaseDetails
) -> Comparison:
    """A queries_per_request comparison that names the statements that appeared or grew;
    inconclusive when the two runs saw different cache states (a MISS only one of them saw is
    not a change of code)."""
    if comparison.outcome not in (Outcome.REGRESSION, Outcome.IMPROVEMENT):
        return comparison
    was_seen = {p.cache for p in base.probes if p.cache}
    now_seen = {p.cache for p in current.probes if p.cache}
    if was_seen != now_seen:
        states = " -> ".join(", ".join(sorted(s)) or "none" for s in (was_seen, now_seen))
        return replace(
            comparison,
            outcome=Outcome.INCONCLUSIVE,
            reason=f"{comparison.reason}, but the cache states seen differ ({states}): not judged",
        )
    was = {s.text: s.per_request for s in base.statements if s.is_query}
    now = {s.text: s.per_request for s in current.statements if s.is_query}
    changes = []

    def size(text: str) -> tuple[int, str]:
        return (-abs(now.get(text, 0) - was.get(text, 0)), text)

    for text in sorted(was.keys() | now.keys(), key=size):
        old, new = was.get(text, 0), now.get(text, 0)
        if old != new:
            what = "new" if not old else "gone" if not new else f"{old} -> {new}"
            changes.append(f"{short(text, 70)} ({what}{f', ×{new}' if not old else ''})")
    if not changes:
        return comparison
    listed = "; ".join(changes[:3]) + (f"; {len(changes) - 3} more" if len(changes) > 3 else "")
    return replace(comparison, reason=f"{comparison.reason}: {listed}")
