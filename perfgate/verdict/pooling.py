"""Pooling a re-measurement round into the current result."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from perfgate.stats import mean_estimate, proportion_estimate, quantile_estimate
from perfgate.verdict.model import Verdict, bounded
from perfgate.verdict.values import Metric

__all__ = ["pool", "series"]

_QUANTILE_METRICS = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}
_SERVER_METRICS = {"server_p50_ms": 0.50, "server_p95_ms": 0.95}


def series(result: Verdict) -> dict[str, tuple[float, ...]]:
    """The result's raw samples by name."""
    return dict(result.samples)


def pool(a: Verdict, b: Verdict) -> Verdict:
    """``a`` with ``b``'s samples appended, for the next round of an inconclusive comparison.

    Recomputed from the pooled samples: the latency quantiles and mean, the server-time
    quantiles and a query's median execution time (intervals at the confidence ``a``'s carried,
    else 95%); summed: ``requests`` and ``errors``, and ``error_rate`` from the sums; the
    larger ``max_bytes``. Everything else (checks, status, details) is ``a``'s. Samples are
    capped as a stored result's are (``bounded``).
    """
    sa, sb = series(a), series(b)
    pooled = {k: bounded([*sa.get(k, ()), *sb.get(k, ())]) for k in sa.keys() | sb.keys()}
    metrics = dict(a.metrics)

    def confidence(key: str) -> float:
        m = a.metrics.get(key)
        return m.confidence if m is not None and m.confidence else 0.95

    latency, server = pooled.get("latency_ms", ()), pooled.get("server_ms", ())
    execution = pooled.get("execution_ms", ())
    for values, table in ((latency, _QUANTILE_METRICS), (server, _SERVER_METRICS)):
        for key, q in table.items():
            if values and key in metrics:
                estimate = quantile_estimate(values, q, confidence(key))
                metrics[key] = Metric.from_estimate(estimate, "ms")
    if len(latency) > 1 and "mean_ms" in metrics:
        metrics["mean_ms"] = Metric.from_estimate(
            mean_estimate(latency, confidence("mean_ms")), "ms"
        )
    if execution and "execution_ms" in metrics:
        estimate = quantile_estimate(execution, 0.5, confidence("execution_ms"))
        metrics["execution_ms"] = Metric.from_estimate(estimate, "ms")
    _sum_counts(metrics, a.metrics, b.metrics, confidence("error_rate"))
    a_bytes, b_bytes = a.metrics.get("max_bytes"), b.metrics.get("max_bytes")
    if a_bytes is not None and b_bytes is not None:
        metrics["max_bytes"] = Metric(_nanmax(a_bytes.value, b_bytes.value), "bytes")
    return replace(a, metrics=metrics, samples=pooled)


def _sum_counts(
    into: dict[str, Metric], a: Mapping[str, Metric], b: Mapping[str, Metric], confidence: float
) -> None:
    for key in ("requests", "errors"):
        if key in a and key in b:
            into[key] = Metric(a[key].value + b[key].value, a[key].unit)
    requests, errors = into.get("requests"), into.get("errors")
    if "error_rate" in into and requests is not None and errors is not None:
        n, k = int(requests.value), int(errors.value)
        if 0 <= k <= n:
            into["error_rate"] = Metric.from_estimate(
                proportion_estimate(k, n, confidence), "ratio"
            )


def _nanmax(x: float, y: float) -> float:
    if math.isnan(x):
        return y
    return x if math.isnan(y) else max(x, y)
