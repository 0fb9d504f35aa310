"""Readers for values that several budgets.yaml sections share: limits, durations, policies."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from perfgate.budgets.checks import (
    env_name_problem,
    header_name_problem,
    header_value_problem,
    nul_problem,
)
from perfgate.budgets.model import REGRESSION_METRICS, RULE_LEVELS, RegressionPolicy
from perfgate.budgets.units import format_ms, parse_duration_ms, parse_ratio, parse_size_bytes
from perfgate.budgets.yamlsource import Path_, Source, describe

REGRESSION_KEYS = (
    "metric",
    "threshold",
    "confidence",
    "max_rounds",
    "fail_on_inconclusive",
    "min_effect",
)

# Upper bounds: what a CI gate can use, well short of what would hang or overflow a run.
MAX_DURATION_MS = 24 * 3_600_000.0  # every timeout (PostgreSQL's own limit is 24.8 days)
MAX_COUNTS = {
    "requests": 1_000_000,
    "warmup": 1_000_000,
    "concurrency": 1_000,  # one connection each
    "runs": 10_000,
    "max_rounds": 10,
    "seq_scan_min_pages": 2**31 - 1,  # PostgreSQL counts pages in a 32-bit integer
    "db_probes": 100,  # each one a request sent alone, with readings around it
    "n_plus_one_repeats": 1_000_000,
}


# What a regression policy may compare, per place it is written: an endpoint compares a latency
# quantile or the mean; a query its median ("execution") or mean execution time; defaults apply
# to both (a quantile in defaults means the median for queries).
_METRICS_FOR = {
    "defaults": REGRESSION_METRICS,
    "endpoints": ("p50", "p90", "p95", "p99", "mean"),
    "queries": ("execution", "mean"),
}


def read_regression(
    src: Source, value: Any, path: Path_, base: RegressionPolicy
) -> RegressionPolicy:
    raw = src.mapping(value, path, REGRESSION_KEYS)
    metric, threshold, confidence = base.metric, base.threshold, base.confidence
    max_rounds, fail_inconclusive = base.max_rounds, base.fail_on_inconclusive
    if "metric" in raw:
        m = src.string(raw["metric"], (*path, "metric"))
        allowed = _METRICS_FOR.get(str(path[0]), REGRESSION_METRICS)
        if m is not None and m not in allowed:
            src.error((*path, "metric"), f"expected one of {', '.join(allowed)} here, got {m!r}")
        elif m is not None:
            metric = m
    if "threshold" in raw:
        t = src.convert(raw["threshold"], (*path, "threshold"), parse_ratio)
        if t is not None and not 0 < t < 10:
            src.error(
                (*path, "threshold"),
                f"expected a relative change like '10%' (0 < t < 1000%), got {t}",
            )
        elif t is not None:
            threshold = t
    if "confidence" in raw:
        confidence = read_confidence(src, raw["confidence"], (*path, "confidence"), confidence)
    if "max_rounds" in raw:
        max_rounds = read_count(src, raw["max_rounds"], (*path, "max_rounds"), 1) or max_rounds
    if "fail_on_inconclusive" in raw:
        b = src.boolean(raw["fail_on_inconclusive"], (*path, "fail_on_inconclusive"))
        fail_inconclusive = fail_inconclusive if b is None else b
    min_effect = base.min_effect_ms
    if "min_effect" in raw:
        ms = src.convert(raw["min_effect"], (*path, "min_effect"), parse_duration_ms)
        if ms is not None and not 0 <= ms <= MAX_DURATION_MS:
            src.error((*path, "min_effect"), f"expected a duration like '1ms' or '0ms', got {ms}")
        elif ms is not None:
            min_effect = ms
    return RegressionPolicy(
        metric, threshold, confidence, max_rounds, fail_inconclusive, min_effect
    )


def read_confidence(src: Source, value: Any, path: Path_, fallback: float) -> float:
    c = src.convert(value, path, parse_ratio)
    if c is None:
        return fallback
    if not 0.5 <= c < 1:
        src.error(
            path, f"expected a confidence level between 0.5 and 1 (e.g. 0.95 or '99%'), got {c}"
        )
        return fallback
    return c


def read_count(src: Source, value: Any, path: Path_, minimum: int) -> int | None:
    """A whole number from ``minimum`` to the bound ``MAX_COUNTS`` sets for its key."""
    count = src.integer(value, path, minimum=minimum)
    maximum = MAX_COUNTS[str(path[-1])]
    if count is not None and count > maximum:
        src.error(path, f"expected a whole number from {minimum} to {maximum:,}, got {count:,}")
        return None
    return count


def read_positive_ms(
    src: Source, raw: Mapping[str, Any], key: str, path: Path_, fallback: float
) -> float:
    """A timeout: a duration above 0 and at most ``MAX_DURATION_MS``."""
    if key not in raw:
        return fallback
    ms = src.convert(raw[key], (*path, key), parse_duration_ms)
    if ms is not None and ms <= 0:
        src.error((*path, key), f"expected a positive duration, got {raw[key]!r}")
        return fallback
    if ms is not None and ms > MAX_DURATION_MS:
        src.error(
            (*path, key),
            f"expected a duration of at most 24 hours ({format_ms(MAX_DURATION_MS)}), "
            f"got {raw[key]!r}",
        )
        return fallback
    return fallback if ms is None else ms


def read_positive_size(
    src: Source, raw: Mapping[str, Any], key: str, path: Path_, fallback: int
) -> int:
    """A size in bytes ('10MB', '64MiB' or a number of bytes) that must be at least 1."""
    if key not in raw:
        return fallback
    size = src.convert(raw[key], (*path, key), parse_size_bytes)
    if size is not None and size < 1:
        src.error((*path, key), f"expected a positive size like '10MB', got {raw[key]!r}")
        return fallback
    return fallback if size is None else size


def read_headers(src: Source, value: Any, path: Path_, allowed: Iterable[str]) -> dict[str, str]:
    """Header names and values (placeholders as ``template``) that HTTP/1.1 can carry."""
    headers = src.template_map(value, path, allowed)
    for name, text in headers.items():
        problem = header_name_problem(name) or header_value_problem(text)
        if problem:
            src.error((*path, name), problem)
    return headers


def read_env(src: Source, value: Any, path: Path_, allowed: Iterable[str]) -> dict[str, str]:
    """Environment variables for a program: names without '=', values without NUL."""
    env = src.template_map(value, path, allowed)
    for name, text in env.items():
        problem = env_name_problem(name) or nul_problem(text)
        if problem:
            src.error((*path, name), problem)
    return env


def read_limit(src: Source, kind: str, value: Any, path: Path_) -> float | None:
    parsed: float | None
    if kind == "duration":
        parsed = src.convert(value, path, parse_duration_ms)
    elif kind == "size":
        parsed = src.convert(value, path, parse_size_bytes)
    elif kind == "ratio":
        parsed = src.convert(value, path, parse_ratio)
        if parsed is not None and not 0 <= parsed <= 1:
            src.error(path, f"expected a ratio between 0 and 1 (or 0% to 100%), got {value!r}")
            return None
    elif kind == "count":
        parsed = src.integer(value, path, minimum=0)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            src.error(path, f"expected a number, got {describe(value)}")
            return None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond any float
            finite = False
        if not finite:
            src.error(path, f"expected a finite number, got {value!r}")
            return None
        parsed = float(value)
    if parsed is not None and parsed < 0:
        src.error(path, f"expected a value >= 0, got {value!r}")
        return None
    if parsed is not None and kind in ("duration", "number") and parsed == 0:
        src.error(path, f"a limit of 0 can never be met; expected a positive value, got {value!r}")
        return None
    return parsed


def read_n_plus_one(
    src: Source, raw: Mapping[str, Any], path: Path_, level: str, repeats: int
) -> tuple[str, int]:
    """``n_plus_one`` (a level) and ``n_plus_one_repeats`` of a mapping, else the fallbacks."""
    if "n_plus_one" in raw:
        level = read_level(src, raw["n_plus_one"], (*path, "n_plus_one"), level)
    if "n_plus_one_repeats" in raw:
        key_path = (*path, "n_plus_one_repeats")
        repeats = read_count(src, raw["n_plus_one_repeats"], key_path, 2) or repeats
    return level, repeats


def read_level(src: Source, value: Any, path: Path_, fallback: str) -> str:
    """A rule's level: warning, error or off (a bare YAML 1.1 ``off`` arrives as false)."""
    if value is False:
        value = "off"
    text = None if isinstance(value, bool) else src.string(value, path)
    if text not in RULE_LEVELS:
        got = describe(value) if text is None else repr(text)
        src.error(path, f"expected one of {', '.join(RULE_LEVELS)}, got {got}")
        return fallback
    return text
