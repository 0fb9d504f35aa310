"""The small values a verdict is made of: its vocabularies, metrics, budget checks, comparisons.

Every status and outcome is an Enum (a ``str`` too, so its JSON is its value); JSON is written
by ``to_json`` and read back by ``from_json``, which raise ``ValueError`` naming the field that
is wrong (the readers of results files turn that into a message naming the file).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from perfgate.budgets.units import format_bytes, format_ms, format_ratio
from perfgate.stats import Estimate

__all__ = [
    "Check",
    "CheckStatus",
    "Comparison",
    "Kind",
    "Metric",
    "Outcome",
    "Status",
    "Text",
    "check_limit",
    "finite",
    "format_value",
    "number",
]

E = TypeVar("E", bound="Text")


class Text(str, Enum):
    """An enum whose members are their own JSON text (``str()`` and f-strings give the value)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def read(cls: type[E], value: object, where: str) -> E:
        """The member for ``value``; ValueError listing the allowed values."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{where}: expected one of {allowed}, got {value!r}") from None


class Kind(Text):
    """What was gated."""

    ENDPOINT = "endpoint"
    QUERY = "query"


class Status(Text):
    """How an item came out."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # could not be measured
    WARNED = "warned"  # failed, but --perfgate-warn-only turned it into a warning


class CheckStatus(Text):
    """How one budget check came out; marginal when its interval straddles the limit."""

    PASS = "pass"
    FAIL = "fail"
    MARGINAL_PASS = "marginal-pass"
    MARGINAL_FAIL = "marginal-fail"


class Outcome(Text):
    """How one metric compares with the baseline."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"


def finite(x: float) -> float | None:
    """``x``, or None for NaN and infinities (JSON has no NaN)."""
    return x if math.isfinite(x) else None


def number(x: object) -> float:
    """A JSON number as a float; NaN for null or anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x)


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
        """``{"value", "unit", "interval", "confidence"}``; NaN (nothing measured) is null."""
        out: dict[str, Any] = {"value": finite(self.value), "unit": self.unit}
        if self.low is not None and self.high is not None:
            out["interval"] = [finite(self.low), finite(self.high)]
            out["confidence"] = self.confidence
        return out

    @classmethod
    def from_json(cls, data: object) -> Metric:
        """Inverse of to_json."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a metric object, got {type(data).__name__}")
        interval = data.get("interval")
        low = high = None
        if isinstance(interval, list) and len(interval) == 2:
            low, high = number(interval[0]), number(interval[1])
        confidence = data.get("confidence")
        return cls(
            number(data.get("value")),
            str(data.get("unit", "")),
            low,
            high,
            float(confidence) if isinstance(confidence, (int, float)) else None,
        )


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
    def status(self) -> CheckStatus:
        """Passed or failed, and marginal when by less than the interval."""
        if self.marginal:
            return CheckStatus.MARGINAL_PASS if self.passed else CheckStatus.MARGINAL_FAIL
        return CheckStatus.PASS if self.passed else CheckStatus.FAIL

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
            "limit": finite(self.limit),
            "value": finite(self.value.value),
            "interval": [finite(self.value.low or math.nan), finite(self.value.high or math.nan)]
            if self.value.low is not None and self.value.high is not None
            else None,
            "confidence": self.value.confidence,
            "unit": self.value.unit,
            "kind": "max" if self.upper else "min",
            "status": self.status.value,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        """Inverse of to_json."""
        interval = data.get("interval") or [None, None]
        status = CheckStatus.read(data.get("status", "fail"), "status")
        return cls(
            metric=str(data["metric"]),
            limit=number(data["limit"]),
            value=Metric(
                number(data.get("value")),
                str(data.get("unit", "")),
                None if interval[0] is None else number(interval[0]),
                None if interval[1] is None else number(interval[1]),
                data.get("confidence"),
            ),
            passed=status in (CheckStatus.PASS, CheckStatus.MARGINAL_PASS),
            upper=data.get("kind", "max") == "max",
            marginal=status in (CheckStatus.MARGINAL_PASS, CheckStatus.MARGINAL_FAIL),
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


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric compared with the baseline: the change with its interval, and the outcome."""

    metric: str  # "p95_ms", "buffers", "coarse_fingerprint", ...
    baseline: Metric
    current: Metric
    change: Metric | None  # relative change (0.12 = +12%) with its interval; None if not numeric
    threshold: float | None  # the relative change that counts as a regression
    outcome: Outcome
    reason: str  # why this outcome, in words, with the numbers
    baseline_text: str | None = None  # for non-numeric metrics (fingerprints, access paths)
    current_text: str | None = None
    # Inconclusive for want of data, so measuring again could settle it (not so when the
    # environment differs: more runs on another machine do not make it the baseline's).
    more_data_helps: bool = False

    def to_json(self) -> dict[str, Any]:
        """One entry of a result's "comparisons"."""
        return {
            "metric": self.metric,
            "baseline": self.baseline.to_json(),
            "current": self.current.to_json(),
            "change": self.change.to_json() if self.change is not None else None,
            "threshold": None if self.threshold is None else finite(self.threshold),
            "outcome": self.outcome.value,
            "reason": self.reason,
            "baseline_text": self.baseline_text,
            "current_text": self.current_text,
            "more_data_helps": self.more_data_helps,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of to_json (schema 1 entries have no ``more_data_helps``: false)."""
        change = data.get("change")
        threshold = data.get("threshold")
        return cls(
            metric=str(data["metric"]),
            baseline=Metric.from_json(data["baseline"]),
            current=Metric.from_json(data["current"]),
            change=Metric.from_json(change) if isinstance(change, Mapping) else None,
            threshold=None if threshold is None else number(threshold),
            outcome=Outcome.read(data["outcome"], "outcome"),
            reason=str(data.get("reason", "")),
            baseline_text=_text_or_none(data.get("baseline_text")),
            current_text=_text_or_none(data.get("current_text")),
            more_data_helps=data.get("more_data_helps") is True,
        )


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
