"""An endpoint run → its verdict: metrics with intervals, held against the budget."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from perfgate.budgets.model import (
    DATABASE_BUDGET_KEYS,
    ENDPOINT_BUDGET_KEYS,
    LOWER_LIMITS,
    Endpoint,
)
from perfgate.budgets.units import format_confidence
from perfgate.plan import Finding, Plan, analyze
from perfgate.probes.dbprofile import DatabaseReading
from perfgate.probes.http import EndpointRun
from perfgate.stats import (
    mean_estimate,
    proportion_estimate,
    quantile,
    quantile_estimate,
    quantile_order_statistics,
    rate_estimate,
)
from perfgate.verdict.database import (
    MAX_TEXT,
    DatabaseDetails,
    database_details,
    database_metrics,
    n_plus_one,
    short,
)
from perfgate.verdict.details import EndpointDetails
from perfgate.verdict.model import Verdict, bounded, decide
from perfgate.verdict.values import Check, Kind, Metric, Status, check_limit

_UNITS = {
    key: {"duration": "ms", "count": "count", "ratio": "ratio", "size": "bytes"}.get(kind, "rps")
    for key, kind in ENDPOINT_BUDGET_KEYS.items()
}
QUANTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}
NOTHING = Metric(math.nan, "ms")


def endpoint_metrics(run: EndpointRun, confidence: float = 0.95) -> dict[str, Metric]:
    """Latency quantiles, mean, errors, throughput, sizes, cache and server time.

    Latencies are over requests that got a response (an error response included); requests
    that got none (refused, timed out) count in ``error_rate`` but have no latency to rank.
    """
    samples = run.samples
    answered = [s.latency_ns / 1e6 for s in samples if s.status is not None]
    out: dict[str, Metric] = {}
    for key, q in QUANTILES.items():
        out[key] = (
            Metric.from_estimate(quantile_estimate(answered, q, confidence), "ms")
            if answered
            else NOTHING
        )
    out["mean_ms"] = (
        Metric.from_estimate(mean_estimate(answered, confidence), "ms")
        if len(answered) > 1
        else NOTHING
    )
    out["max_ms"] = Metric(max(answered), "ms") if answered else NOTHING
    errors = sum(1 for s in samples if s.error is not None)
    out["error_rate"] = Metric.from_estimate(
        proportion_estimate(errors, len(samples), confidence), "ratio"
    )
    seconds = run.wall_ns / 1e9
    out["throughput_rps"] = (
        Metric.from_estimate(rate_estimate(len(samples), seconds, confidence), "rps")
        if seconds > 0
        else Metric(math.nan, "rps")
    )
    sizes = [s.nbytes for s in samples if s.status is not None]
    out["max_bytes"] = Metric(float(max(sizes)) if sizes else math.nan, "bytes")
    out["mean_bytes"] = Metric(sum(sizes) / len(sizes) if sizes else math.nan, "bytes")
    tagged = [s.cache for s in samples if s.cache is not None]
    hits = sum(1 for c in tagged if c == "HIT")
    out["cache_hit_ratio"] = (
        Metric.from_estimate(proportion_estimate(hits, len(tagged), confidence), "ratio")
        if tagged
        else Metric(math.nan, "ratio")
    )
    server = [s.server_ms for s in samples if s.server_ms is not None]
    out["server_p50_ms"] = Metric(quantile(sorted(server), 0.5), "ms") if server else NOTHING
    out["server_p95_ms"] = (
        Metric.from_estimate(quantile_estimate(server, 0.95, confidence), "ms")
        if server
        else NOTHING
    )
    out["requests"] = Metric(float(len(samples)), "count")
    out["errors"] = Metric(float(errors), "count")
    return out


# Which metric a budget key is held against, and what to say when it was never measured.
BUDGET_METRIC = {
    "min_throughput_rps": "throughput_rps",
    "max_queries_per_request": "queries_per_request",
    "max_rows_per_request": "rows_per_request",
    "max_buffers_per_request": "buffers_per_request",
    "max_db_ms_per_request": "db_ms_per_request",
    "max_statement_mean_ms": "statement_mean_ms",
    "min_db_cache_hit_ratio": "db_cache_hit_ratio",
    "max_connections_ratio": "connections_peak_ratio",
}
_ABSENT = {
    "cache_hit_ratio": "no response carried an x-cache header",
    "server_p95_ms": "no response carried Server-Timing or x-response-time",
}


def endpoint_checks(
    metrics: Mapping[str, Metric],
    budget: Mapping[str, float],
    confidence: float = 0.95,
    *,
    no_statements: str = "",
) -> tuple[Check, ...]:
    """One check per budget key, in the order the budget lists them; ``no_statements`` says
    why a database budget has nothing to hold."""
    checks = []
    n = int(metrics["requests"].value) if "requests" in metrics else 0
    for key, limit in budget.items():
        metric = metrics.get(BUDGET_METRIC.get(key, key)) or Metric(math.nan, _UNITS[key])
        note = _ABSENT.get(key, "") if math.isnan(metric.value) else ""
        if math.isnan(metric.value) and key in DATABASE_BUDGET_KEYS:
            note = _no_statements(key, no_statements)
            if not no_statements and key in _VACUOUS:  # nothing ran: nothing over the limit
                checks.append(Check(key, limit, metric, True, key not in LOWER_LIMITS, False, note))
                continue
        if not note and key in QUANTILES and not metric.has_interval:
            note = _no_interval(key, n, confidence)
        checks.append(check_limit(key, limit, metric, upper=key not in LOWER_LIMITS, note=note))
    return tuple(checks)


# Budgets an endpoint that ran no statement during its load run (all cache hits) meets.
_VACUOUS = frozenset({"max_statement_mean_ms", "min_db_cache_hit_ratio"})


def _no_statements(key: str, why: str) -> str:
    if why:
        return f"statements per request were not read: {why}"
    if key == "min_db_cache_hit_ratio":
        return "the endpoint's statements touched no shared buffers"
    if key == "max_statement_mean_ms":
        return "the endpoint ran no statement during the load run"
    return "no requests were sent one at a time (db_probes: 0)"


def _no_interval(key: str, n: int, confidence: float) -> str:
    """Why a quantile has no interval, and how many requests would give one."""
    q = QUANTILES[key]
    needed = next(
        (m for m in range(max(n, 1), 100_000) if quantile_order_statistics(m, q, confidence)),
        None,
    )
    more = f" (needs at least {needed})" if needed else ""
    return (
        f"no {format_confidence(confidence)} interval for p{round(q * 100)} from {n} requests{more}"
    )


_SAMPLE_CHARS = 120  # of an error response's body, in the summary


def error_summary(run: EndpointRun, limit: int = 3) -> tuple[str, ...]:
    """The most common error reasons with counts and what the server said, e.g.
    'HTTP 403 ×300: {"detail":"Not authenticated"}' (the gate masks secrets in it)."""
    counts: dict[str, int] = {}
    said: dict[str, str] = {}
    for s in run.samples:
        if s.error is not None:
            counts[s.error] = counts.get(s.error, 0) + 1
            if s.detail and s.error not in said:
                said[s.error] = _printable(s.detail)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(
        f"{reason} ×{n}" + (f": {said[reason]}" if said.get(reason) else "")
        for reason, n in ranked[:limit]
    )


def _printable(text: str) -> str:
    """One line of visible characters, at most _SAMPLE_CHARS of them."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= _SAMPLE_CHARS else flat[: _SAMPLE_CHARS - 1] + "…"


def endpoint_verdict(
    endpoint: Endpoint,
    run: EndpointRun,
    *,
    confidence: float,
    source: str | None,
    db: DatabaseReading | None = None,
    plan_rules: Mapping[str, str] | None = None,
    seq_scan_min_pages: int = 8,
) -> Verdict:
    """The endpoint's metrics, what it did to the database, and its budget checks (the gate
    masks secrets in its texts)."""
    metrics = endpoint_metrics(run, confidence)
    database: DatabaseDetails | None = None
    findings: tuple[Finding, ...] = ()
    if db is not None:
        db = _accepted(db)
        metrics.update(database_metrics(db.probes, db.load, confidence))
        database, findings = statements_seen(endpoint, db, plan_rules, seq_scan_min_pages)
    why = db.unavailable if db is not None else ""
    checks = endpoint_checks(metrics, endpoint.budget, confidence, no_statements=why)
    failures = every_request_failed(run, endpoint) + tuple(
        f"{f.message}" if f.rule == "n-plus-one" else f"plan of a statement: {f.message}"
        for f in findings
        if f.severity == "error"
    )
    return Verdict(
        name=endpoint.name,
        kind=Kind.ENDPOINT,
        status=decide(checks, extra_failures=failures),
        metrics=metrics,
        checks=checks,
        failures=failures,
        source=source,
        description=describe(endpoint),
        details=EndpointDetails(
            requests=endpoint.requests,
            concurrency=endpoint.concurrency,
            warmup=endpoint.warmup,
            error_summary=error_summary(run),
            database=database,
            findings=findings,
        ),
        samples={
            "latency_ms": bounded(
                [s.latency_ns / 1e6 for s in run.samples if s.status is not None]
            ),
            "server_ms": bounded([s.server_ms for s in run.samples if s.server_ms is not None]),
        },
    )


def _accepted(db: DatabaseReading) -> DatabaseReading:
    """The reading with only the probes whose request was accepted; unavailable if none was."""
    if db.unavailable or all(p.ok for p in db.probes):
        return db
    good = tuple(p for p in db.probes if p.ok)
    if good:
        return replace(db, probes=good)
    statuses = sorted({str(p.status or "no answer") for p in db.probes})
    why = f"every request sent alone failed ({', '.join(statuses)}), so its statements are not "
    return DatabaseReading(why + "the endpoint's")


def statements_seen(
    endpoint: Endpoint,
    db: DatabaseReading,
    plan_rules: Mapping[str, str] | None,
    seq_scan_min_pages: int,
) -> tuple[DatabaseDetails, tuple[Finding, ...]]:
    """The endpoint's statements with their plans, and the N+1 and plan findings on them."""
    if db.unavailable:
        return DatabaseDetails(unavailable=db.unavailable), ()
    details = database_details(db.probes, db.load)
    findings: list[Finding] = []
    if endpoint.n_plus_one != "off":
        findings += n_plus_one(db.probes, endpoint.n_plus_one_repeats, endpoint.n_plus_one)
    rows = []
    plans = {text[:MAX_TEXT]: plan for text, plan in db.plans.items()}  # rows keep cut texts
    for row in details.statements:
        plan = plans.get(row.text)
        if isinstance(plan, Plan):
            row = replace(row, plan=plan)
            for f in analyze(
                plan,
                relation_pages=db.relation_pages,
                rules=plan_rules,
                seq_scan_min_pages=seq_scan_min_pages,
            ):
                findings.append(replace(f, message=f"{f.message} (in {short(row.text, 60)})"))
        elif isinstance(plan, str):
            row = replace(row, plan_note=plan)
        rows.append(row)
    details = replace(details, statements=tuple(rows), probe_seconds=db.probing_s)
    return details, tuple(findings)


def every_request_failed(run: EndpointRun, endpoint: Endpoint) -> tuple[str, ...]:
    """The failure of an endpoint none of whose timed requests succeeded, whatever its budget.

    Its latencies are those of error answers (or there are none), so nothing it measured says
    how the endpoint performs; only ``error_rate: 100%`` in its budget says that is expected.
    """
    errors = sum(1 for s in run.samples if s.error is not None)
    if not run.samples or errors < len(run.samples) or endpoint.budget.get("error_rate", 0) >= 1:
        return ()
    return (f"every request failed ({errors} of {len(run.samples)}), so nothing was measured",)


def endpoint_error(endpoint: Endpoint, error: str, *, source: str | None) -> Verdict:
    """The verdict of an endpoint that could not be measured."""
    return Verdict(
        name=endpoint.name,
        kind=Kind.ENDPOINT,
        status=Status.ERROR,
        error=error,
        source=source,
        description=describe(endpoint),
    )


def describe(endpoint: Endpoint) -> str:
    """'GET /api/clients?supplier_id=7'."""
    return f"{endpoint.method} {endpoint.path}"
