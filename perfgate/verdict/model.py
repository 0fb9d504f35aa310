"""The outcome of gating one endpoint or query: metrics, budget checks, status.

These values are what every report renders and what the JSON file (schema 1) carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfgate.budgets.units import format_bytes, format_ms, format_ratio
from perfgate.stats import Estimate

RESULT_SCHEMA = 1
MAX_SAMPLES = 5000  # per series; more is thinned evenly so a baseline file stays small

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
WARNED = "warned"  # failed, but --perfgate-warn-only turned it into a warning


@dataclass(frozen=True, slots=True)
class Metric:
    """A measured value, with its confidence interval when one can be given."""

    value: float
    unit: str  # "ms" | "bytes" | "ratio" | "rps" | "count"
    low: float | None = None
    high: float | None = None
    confidence: float | None = None

    @classmethod
    def from_estimate(cls, estimate: Estimate, unit: str) -> Metric:
        """A metric from a stats estimate (interval kept when there is one)."""
        iv = estimate.interval
        if iv is None:
            return cls(estimate.value, unit)
        return cls(estimate.value, unit, iv.low, iv.high, iv.confidence)

    @property
    def has_interval(self) -> bool:
        """Whether an interval was computed."""
        return self.low is not None and self.high is not None

    def format(self, with_interval: bool = True) -> str:
        """'182ms [171ms, 190ms]' — the value in its unit, the interval after it."""
        text = format_value(self.value, self.unit)
        if with_interval and self.low is not None and self.high is not None:
            low, high = format_value(self.low, self.unit), format_value(self.high, self.unit)
            text += f" [{low}, {high}]"
        return text

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; NaN (nothing measured) becomes null."""
        out: dict[str, Any] = {"value": _finite(self.value), "unit": self.unit}
        if self.low is not None and self.high is not None:
            out["interval"] = [_finite(self.low), _finite(self.high)]
            out["confidence"] = self.confidence
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metric:
        """Inverse of to_json."""
        value = data.get("value")
        interval = data.get("interval")
        low = high = None
        if isinstance(interval, list) and len(interval) == 2:
            low, high = _num(interval[0]), _num(interval[1])
        return cls(_num(value), str(data.get("unit", "")), low, high, data.get("confidence"))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x)


def format_value(value: float, unit: str) -> str:
    """One value in its unit, for tables and messages."""
    if unit == "ms":
        return format_ms(value)
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ratio":
        return format_ratio(value)
    if unit == "rps":
        return "n/a" if math.isnan(value) else f"{value:,.1f}/s"
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


@dataclass(frozen=True, slots=True)
class Check:
    """One budget limit held against one measured metric."""

    metric: str  # the budget key, e.g. "p95_ms"
    limit: float
    value: Metric
    passed: bool
    upper: bool = True  # the limit is a maximum (False: a minimum, like cache_hit_ratio)
    marginal: bool = False  # the interval straddles the limit: add requests to be sure
    note: str = ""

    @property
    def status(self) -> str:
        """'pass', 'fail', or 'marginal' when passing or failing by less than the interval."""
        if self.marginal:
            return "marginal-pass" if self.passed else "marginal-fail"
        return "pass" if self.passed else "fail"

    def explain(self) -> str:
        """'p95_ms 182ms [171ms, 190ms] > limit 150ms' — the line a failure shows."""
        op = ("<=" if self.passed else ">") if self.upper else (">=" if self.passed else "<")
        limit = format_value(self.limit, self.value.unit)
        text = f"{self.metric} {self.value.format()} {op} limit {limit}"
        if self.marginal:
            text += " (marginal: the interval straddles the limit; add requests to decide)"
        if self.note:
            text += f" ({self.note})"
        return text

    def to_json(self) -> dict[str, Any]:
        """The contract: metric, limit, value, status (plus interval details)."""
        return {
            "metric": self.metric,
            "limit": _finite(self.limit),
            "value": _finite(self.value.value),
            "interval": [_finite(self.value.low), _finite(self.value.high)]  # type: ignore[arg-type]
            if self.value.has_interval
            else None,
            "confidence": self.value.confidence,
            "unit": self.value.unit,
            "kind": "max" if self.upper else "min",
            "status": self.status,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        """Inverse of to_json."""
        interval = data.get("interval") or [None, None]
        status = str(data.get("status", "fail"))
        return cls(
            metric=str(data["metric"]),
            limit=float(data["limit"]),
            value=Metric(
                _num(data.get("value")),
                str(data.get("unit", "")),
                interval[0],
                interval[1],
                data.get("confidence"),
            ),
            passed=status in ("pass", "marginal-pass"),
            upper=data.get("kind", "max") == "max",
            marginal=status.startswith("marginal"),
            note=str(data.get("note", "")),
        )


def check_limit(
    metric: str, limit: float, value: Metric, *, upper: bool = True, note: str = ""
) -> Check:
    """Gate on the estimate; flag it marginal when the interval reaches across the limit.

    Strictly across: zero errors against a limit of 0 is a pass, not marginal, even though the
    interval's upper bound is above 0.
    """
    if math.isnan(value.value):
        return Check(metric, limit, value, False, upper, False, note or "nothing was measured")
    passed = value.value <= limit if upper else value.value >= limit
    marginal = value.low is not None and value.high is not None and value.low < limit < value.high
    return Check(metric, limit, value, passed, upper, marginal, note)


REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric compared with the baseline: the change with its interval, and the outcome."""

    metric: str  # "p95_ms", "buffers", "coarse_fingerprint", ...
    baseline: Metric
    current: Metric
    change: Metric | None  # relative change (0.12 = +12%) with its interval; None if not numeric
    threshold: float | None  # the relative change that counts as a regression
    outcome: str  # REGRESSION | IMPROVEMENT | UNCHANGED | INCONCLUSIVE
    reason: str  # why this outcome, in words, with the numbers
    baseline_text: str | None = None  # for non-numeric metrics (fingerprints, access paths)
    current_text: str | None = None

    def to_json(self) -> dict[str, Any]:
        """One entry of a result's "comparisons"."""
        return {
            "metric": self.metric,
            "baseline": self.baseline.to_json(),
            "current": self.current.to_json(),
            "change": self.change.to_json() if self.change is not None else None,
            "threshold": None if self.threshold is None else _finite(self.threshold),
            "outcome": self.outcome,
            "reason": self.reason,
            "baseline_text": self.baseline_text,
            "current_text": self.current_text,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of to_json."""
        change = data.get("change")
        return cls(
            metric=str(data["metric"]),
            baseline=Metric.from_json(data["baseline"]),
            current=Metric.from_json(data["current"]),
            change=Metric.from_json(change) if isinstance(change, Mapping) else None,
            threshold=data.get("threshold"),
            outcome=str(data["outcome"]),
            reason=str(data.get("reason", "")),
            baseline_text=data.get("baseline_text"),
            current_text=data.get("current_text"),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """Everything perfgate knows about one gated item."""

    name: str
    kind: str  # "endpoint" | "query"
    status: str  # PASSED | FAILED | ERROR | WARNED
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    error: str | None = None
    source: str | None = None  # "budgets.yaml:14", or the test's node id
    description: str = ""  # "GET /api/clients?supplier_id=7" or the SQL
    details: Mapping[str, Any] = field(default_factory=dict)  # kind-specific (plan, findings, ...)
    comparisons: tuple[Comparison, ...] = ()  # against the baseline, when there is one
    # Raw samples kept for baselines ("latency_ms", "server_ms", "execution_ms", ...), bounded.
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        """The checks that did not hold."""
        return tuple(c for c in self.checks if not c.passed)

    def explain(self) -> str:
        """The message a failing pytest item shows: which metric, value with interval, limit."""
        head = f"perfgate: {self.kind} {self.name!r} ({self.description})"
        if self.error:
            return f"{head} could not be measured: {self.error}"
        over = self.failed_checks or self.details.get("failures")
        lines = [f"{head} {'is over budget' if over else 'regressed against the baseline'}:"]
        lines += [f"  - {c.explain()}" for c in self.failed_checks]
        lines += [f"  - {reason}" for reason in self.details.get("failures", ())]
        if self.details.get("error_summary"):
            lines.append(f"  errors seen: {', '.join(self.details['error_summary'])}")
        lines += [
            f"  - regression in {c.metric}: {c.reason}"
            for c in self.comparisons
            if c.outcome == REGRESSION
        ]
        return "\n".join(lines)

    def to_json(self, *, with_samples: bool = True) -> dict[str, Any]:
        """One entry of the JSON report's "results" (samples included unless asked not to)."""
        out = {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "description": self.description,
            "source": self.source,
            "error": self.error,
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "checks": [c.to_json() for c in self.checks],
            "details": dict(self.details),
            "comparisons": [c.to_json() for c in self.comparisons],
        }
        if with_samples and self.samples:
            out["samples"] = {k: list(v) for k, v in self.samples.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of to_json."""
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            status=str(data["status"]),
            metrics={k: Metric.from_json(v) for k, v in dict(data.get("metrics", {})).items()},
            checks=tuple(Check.from_json(c) for c in data.get("checks", [])),
            error=data.get("error"),
            source=data.get("source"),
            description=str(data.get("description", "")),
            details=dict(data.get("details", {})),
            comparisons=tuple(Comparison.from_json(c) for c in data.get("comparisons", [])),
            samples={
                str(k): tuple(float(x) for x in v)
                for k, v in dict(data.get("samples") or {}).items()
                if isinstance(v, list)
            },
        )


def decide(checks: tuple[Check, ...], *, extra_failures: tuple[str, ...] = ()) -> str:
    """PASSED when every check holds and nothing else failed."""
    return FAILED if extra_failures or any(not c.passed for c in checks) else PASSED


@dataclass(frozen=True, slots=True)
class BaselineInfo:
    """Which stored run the results were compared with, and how it was found."""

    commit: str | None  # full sha, or None for a baseline read from a file
    date: str | None  # ISO 8601 commit (or measurement) date
    how: str  # "merge-base of HEAD and origin/main, 2 commits back", "--perfgate-compare=v1.2", ...
    searched: tuple[str, ...] = ()  # commits looked at when none was found
    found: bool = True
    source: str | None = None  # store description, e.g. "git ref refs/perfgate/baselines"

    def to_json(self) -> dict[str, Any]:
        """The JSON report's "baseline"."""
        return {
            "commit": self.commit,
            "date": self.date,
            "how": self.how,
            "searched": list(self.searched),
            "found": self.found,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BaselineInfo:
        """Inverse of to_json."""
        return cls(
            commit=data.get("commit"),
            date=data.get("date"),
            how=str(data.get("how", "")),
            searched=tuple(data.get("searched", ())),
            found=bool(data.get("found", True)),
            source=data.get("source"),
        )


@dataclass(frozen=True, slots=True)
class GateReport:
    """A whole gate run: what every report format renders."""

    results: tuple[Result, ...]
    environment: Mapping[str, Any]
    created_at: str  # ISO 8601, UTC
    perfgate_version: str
    budgets_file: str | None = None
    warn_only: bool = False
    baseline: BaselineInfo | None = None

    @property
    def status(self) -> str:
        """'failed' if any item failed or errored (and warn-only is off), else 'passed'."""
        bad = any(r.status in (FAILED, ERROR) for r in self.results)
        return FAILED if bad and not self.warn_only else PASSED

    def counts(self) -> dict[str, int]:
        """How many results have each status, and how many comparisons each outcome."""
        out = {PASSED: 0, FAILED: 0, ERROR: 0, WARNED: 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        for outcome in (REGRESSION, IMPROVEMENT, UNCHANGED, INCONCLUSIVE):
            out[outcome] = sum(
                1 for r in self.results for c in r.comparisons if c.outcome == outcome
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON report (schema 1)."""
        return {
            "schema": RESULT_SCHEMA,
            "perfgate_version": self.perfgate_version,
            "created_at": self.created_at,
            "status": self.status,
            "warn_only": self.warn_only,
            "budgets_file": self.budgets_file,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "results": [r.to_json() for r in self.results],
            "environment": dict(self.environment),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateReport:
        """Inverse of to_json; raises ValueError for another schema."""
        if data.get("schema") != RESULT_SCHEMA:
            raise ValueError(
                f"expected a perfgate results file with schema 1, got {data.get('schema')!r}"
            )
        baseline = data.get("baseline")
        return cls(
            results=tuple(Result.from_json(r) for r in data.get("results", [])),
            environment=dict(data.get("environment", {})),
            created_at=str(data.get("created_at", "")),
            perfgate_version=str(data.get("perfgate_version", "")),
            budgets_file=data.get("budgets_file"),
            warn_only=bool(data.get("warn_only", False)),
            baseline=BaselineInfo.from_json(baseline) if isinstance(baseline, Mapping) else None,
        )


def bounded(values: list[float] | tuple[float, ...], limit: int = MAX_SAMPLES) -> tuple[float, ...]:
    """At most ``limit`` values, thinned evenly (order kept) and rounded to 1 µs of precision."""
    if len(values) > limit:
        step = len(values) / limit
        values = [values[int(i * step)] for i in range(limit)]
    return tuple(round(v, 3) for v in values)


def without_nan(value: Any) -> Any:
    """The value with NaN and infinities as null, at any depth (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    return value
