"""Parse and format the units budgets are written in: "200ms", "64KiB", "85%"."""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>ns|us|µs|ms|s|min|m)?\s*$")
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_RATIO = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>%)?\s*$")

_DURATION_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "min": 6e4}
_SIZE_BYTES = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _finite(value: float, what: str, raw: object) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what}, got {raw!r}")
    return value


def parse_duration_ms(value: object) -> float:
    """A duration in milliseconds from a number of ms or text like '200ms', '0.2s'."""
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            ms = float(match["num"]) * _DURATION_MS[match["unit"] or "ms"]
            return _finite(ms, "a finite duration", value)
    raise ValueError(f"a duration like '200ms', '0.2s' or a number of milliseconds, got {value!r}")


def parse_size_bytes(value: object) -> int:
    """A size in bytes from a number of bytes or text like '64KiB', '1MB'."""
    if _is_number(value):
        return int(value)  # type: ignore[call-overload,no-any-return]
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            size = float(match["num"]) * _SIZE_BYTES[match["unit"] or "B"]
            return round(_finite(size, "a finite size", value))
    raise ValueError(f"a size like '64KiB', '1MB' or a number of bytes, got {value!r}")


def parse_ratio(value: object) -> float:
    """A ratio from a number like 0.85 or text like '85%'."""
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        match = _RATIO.match(value)
        if match:
            number = _finite(float(match["num"]), "a finite ratio", value)
            return number / 100 if match["unit"] else number
    raise ValueError(f"a ratio like 0.85 or '85%', got {value!r}")


def format_ms(ms: float) -> str:
    """Milliseconds with precision suited to their size: '0.42ms', '12.3ms', '1,250ms'."""
    if math.isnan(ms):
        return "n/a"
    if abs(ms) < 1:
        return f"{ms:.2f}ms"
    if abs(ms) < 100:
        return f"{ms:.1f}ms"
    return f"{ms:,.0f}ms"


def format_bytes(n: float) -> str:
    """Bytes in binary units: '812B', '12.4KiB', '3.1MiB'."""
    if math.isnan(n):
        return "n/a"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}B"


def format_ratio(r: float) -> str:
    """A ratio as a percentage: '85.0%', '0.12%'."""
    if math.isnan(r):
        return "n/a"
    pct = r * 100
    return f"{pct:.2f}%" if 0 < abs(pct) < 1 else f"{pct:.1f}%"


def format_confidence(c: float) -> str:
    """A confidence level without rounding it up to a claim: '95%', '99%', '99.67%'."""
    for digits in range(0, 4):
        text = f"{c * 100:.{digits}f}"
        if abs(float(text) - c * 100) < 1e-9 or digits == 3:
            return f"{float(text):g}%"
    return f"{c:.2%}"  # pragma: no cover
