"""The verdict on one gated item, and on a whole run: what every report renders.

``Verdict.to_json`` / ``GateReport.to_json`` write schema 2 (perfgate/schemas/results.json
describes it); ``from_json`` reads schema 2 and schema 1 files alike, and raises ``ValueError``
naming the field that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from perfgate.verdict.details import Details, Rounds, details_from_json
from perfgate.verdict.values import Check, Comparison, Kind, Metric, Outcome, Status

RESULT_SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
MAX_SAMPLES = 5000  # per series; more is thinned evenly so a baseline file stays small

__all__ = [
    "MAX_SAMPLES",
    "READABLE_SCHEMAS",
    "RESULT_SCHEMA",
    "BaselineInfo",
    "Completion",
    "GateReport",
    "Verdict",
    "bounded",
    "decide",
    "without_nan",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything perfgate knows about one gated item."""

    name: str
    kind: Kind
    status: Status
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    # What failed besides the budget checks: plan assertions (no_seq_scan, forbid,
    # require_index) and plan rules set to "error", each in words.
    failures: tuple[str, ...] = ()
    error: str | None = None  # why it could not be measured (status ERROR)
    source: str | None = None  # "budgets.yaml:14", or the test's node id
    description: str = ""  # "GET /api/clients?supplier_id=7" or the SQL
    details: Details | None = None
    comparisons: tuple[Comparison, ...] = ()  # against the baseline, when there is one
    rounds: Rounds | None = None  # how the comparisons were reached
    # Raw samples kept for baselines ("latency_ms", "server_ms", "execution_ms", ...), bounded.
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        """The checks that did not hold."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def regressions(self) -> tuple[Comparison, ...]:
        """The comparisons that found a regression."""
        return tuple(c for c in self.comparisons if c.outcome == Outcome.REGRESSION)

    def explain(self) -> str:
        """The message a failing pytest item shows: which metric, value with interval, limit."""
        head = f"perfgate: {self.kind} {self.name!r} ({self.description})"
        if self.error:
            return f"{head} could not be measured: {self.error}"
        if self.failed_checks:
            verdict = "is over budget"
        else:  # plan assertions, every request failing, or only a regression
            verdict = "failed" if self.failures else "regressed against the baseline"
        lines = [f"{head} {verdict}:"]
        lines += [f"  - {c.explain()}" for c in self.failed_checks]
        lines += [f"  - {reason}" for reason in self.failures]
        summary = getattr(self.details, "error_summary", ())
        if summary:
            lines.append(f"  errors seen: {', '.join(summary)}")
        lines += [f"  - regression in {c.metric}: {c.reason}" for c in self.regressions]
        return "\n".join(lines)

    def to_json(self, *, with_samples: bool = True) -> dict[str, Any]:
        """One entry of the JSON report's "results" (samples included unless asked not to)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "description": self.description,
            "source": self.source,
            "error": self.error,
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "checks": [c.to_json() for c in self.checks],
            "failures": list(self.failures),
            "details": self.details.to_json() if self.details is not None else None,
            "comparisons": [c.to_json() for c in self.comparisons],
            "rounds": self.rounds.to_json() if self.rounds is not None else None,
        }
        if with_samples and self.samples:
            out["samples"] = {k: list(v) for k, v in self.samples.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of to_json; also reads schema 1 results (their untyped "details").

        KeyError names a missing key; anything else malformed is a ValueError, never an
        IndexError or OverflowError from deep inside (``perfgate.schemas`` says exactly where).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a result object, got {type(data).__name__}")
        try:
            return cls._from_json(data)
        except (IndexError, TypeError, AttributeError, OverflowError) as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> Verdict:
        kind = Kind.read(data["kind"], "kind")
        raw = data.get("details")
        details = raw if isinstance(raw, Mapping) else {}
        rounds = data.get("rounds")
        failures = data.get("failures", details.get("failures", ()))
        return cls(
            name=str(data["name"]),
            kind=kind,
            status=Status.read(data["status"], "status"),
            metrics={
                str(k): Metric.from_json(v) for k, v in dict(data.get("metrics") or {}).items()
            },
            checks=tuple(Check.from_json(c) for c in data.get("checks") or ()),
            failures=tuple(str(f) for f in failures or ()),
            error=None if data.get("error") is None else str(data["error"]),
            source=None if data.get("source") is None else str(data["source"]),
            description=str(data.get("description", "")),
            details=details_from_json(kind, details),
            comparisons=tuple(Comparison.from_json(c) for c in data.get("comparisons") or ()),
            rounds=Rounds.from_json(rounds)
            if isinstance(rounds, Mapping)
            else Rounds.from_schema1(details),
            samples={
                str(k): tuple(float(x) for x in v)
                for k, v in dict(data.get("samples") or {}).items()
                if isinstance(v, list)
            },
        )


def decide(checks: Iterable[Check], *, extra_failures: Iterable[str] = ()) -> Status:
    """PASSED when every check holds and nothing else failed."""
    failed = any(True for _ in extra_failures) or any(not c.passed for c in checks)
    return Status.FAILED if failed else Status.PASSED


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
            commit=_text(data.get("commit")),
            date=_text(data.get("date")),
            how=str(data.get("how", "")),
            searched=tuple(str(s) for s in data.get("searched") or ()),
            found=data.get("found", True) is not False,
            source=_text(data.get("source")),
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """Whether the run measured everything it set out to: only a complete run is a baseline."""

    expected: int  # gate items selected to run
    measured: int  # of them, how many ran to a result
    stopped: str | None = None  # why the run ended early: 'interrupted by SIGTERM'
    missing: tuple[str, ...] = ()  # names of items selected but not measured (the first few)
    deselected: int = 0  # items of the budgets file this run did not select (-k, --lf, ids)

    @property
    def complete(self) -> bool:
        """Not stopped early, and every selected item measured."""
        return self.stopped is None and self.measured >= self.expected

    def why(self) -> str:
        """'interrupted by SIGINT: 4 of 10 items measured' (empty when complete)."""
        if self.complete:
            return ""
        counted = f"{self.measured} of {self.expected} items measured"
        return f"{self.stopped}: {counted}" if self.stopped else counted

    def to_json(self) -> dict[str, Any]:
        """The JSON report's "completion"."""
        return {
            "complete": self.complete,
            "expected": self.expected,
            "measured": self.measured,
            "stopped": self.stopped,
            "missing": list(self.missing),
            "deselected": self.deselected,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Completion:
        """Inverse of to_json."""
        return cls(
            expected=int(data.get("expected", 0)),
            measured=int(data.get("measured", 0)),
            stopped=_text(data.get("stopped")),
            missing=tuple(str(s) for s in data.get("missing") or ()),
            deselected=int(data.get("deselected", 0)),
        )


@dataclass(frozen=True, slots=True)
class GateReport:
    """A whole gate run: what every report format renders."""

    results: tuple[Verdict, ...]
    environment: Mapping[str, object]  # JSON values: what the numbers were measured on
    created_at: str  # ISO 8601, UTC
    perfgate_version: str
    budgets_file: str | None = None
    warn_only: bool = False
    baseline: BaselineInfo | None = None
    completion: Completion | None = None  # None: not known (a schema-1 file, an API caller)

    @property
    def complete(self) -> bool:
        """Whether every item the run selected was measured (unknown counts as complete)."""
        return self.completion is None or self.completion.complete

    @property
    def status(self) -> Status:
        """FAILED if the run is incomplete, or any item failed or errored (and warn-only is
        off), else PASSED."""
        if not self.complete:
            return Status.FAILED
        bad = any(r.status in (Status.FAILED, Status.ERROR) for r in self.results)
        return Status.FAILED if bad and not self.warn_only else Status.PASSED

    def counts(self) -> dict[str, int]:
        """How many results have each status, and how many comparisons each outcome."""
        out = {str(s): 0 for s in Status} | {str(o): 0 for o in Outcome}
        for r in self.results:
            out[str(r.status)] += 1
            for c in r.comparisons:
                out[str(c.outcome)] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON report (schema 2)."""
        return {
            "schema": RESULT_SCHEMA,
            "perfgate_version": self.perfgate_version,
            "created_at": self.created_at,
            "status": self.status.value,
            "warn_only": self.warn_only,
            "budgets_file": self.budgets_file,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "completion": self.completion.to_json() if self.completion else None,
            "results": [r.to_json() for r in self.results],
            "environment": dict(self.environment),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateReport:
        """Inverse of to_json; reads schema 1 and 2; ValueError for anything else."""
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ValueError(
                f"unsupported schema {schema!r} (this perfgate reads results files of schema "
                f"{' or '.join(map(str, READABLE_SCHEMAS))})"
            )
        baseline, completion = data.get("baseline"), data.get("completion")
        items = data.get("results") or []
        if not isinstance(items, list):
            raise ValueError("not a perfgate results file: results is not a list")
        results = []
        for i, item in enumerate(items):
            try:
                results.append(Verdict.from_json(item))
            except KeyError as exc:
                raise ValueError(
                    f"not a perfgate results file: results[{i}]: missing key {exc}"
                ) from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"not a perfgate results file: results[{i}]: {exc}") from None
        environment = data.get("environment") or {}
        if not isinstance(environment, Mapping):
            raise ValueError("not a perfgate results file: environment is not an object")
        try:
            info = BaselineInfo.from_json(baseline) if isinstance(baseline, Mapping) else None
        except TypeError as exc:
            raise ValueError(f"not a perfgate results file: baseline: {exc}") from None
        try:
            done = Completion.from_json(completion) if isinstance(completion, Mapping) else None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a perfgate results file: completion: {exc}") from None
        return cls(
            results=tuple(results),
            environment=dict(environment),
            created_at=str(data.get("created_at", "")),
            perfgate_version=str(data.get("perfgate_version", "")),
            budgets_file=_text(data.get("budgets_file")),
            warn_only=data.get("warn_only") is True,
            baseline=info,
            completion=done,
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def bounded(values: list[float] | tuple[float, ...], limit: int = MAX_SAMPLES) -> tuple[float, ...]:
    """At most ``limit`` values, thinned evenly (order kept) and rounded to 1 µs of precision."""
    if len(values) > limit:
        step = len(values) / limit
        values = [values[int(i * step)] for i in range(limit)]
    return tuple(round(v, 3) for v in values)


def without_nan(value: object) -> object:
    """The value with NaN and infinities as null, at any depth (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(v) for v in value]
    return value
