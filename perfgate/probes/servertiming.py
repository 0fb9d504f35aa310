"""Parse the W3C Server-Timing header and derive the server-side time of a response.

Grammar (https://www.w3.org/TR/server-timing/#the-server-timing-header-field)::

    Server-Timing        = #server-timing-metric
    server-timing-metric = metric-name *( OWS ";" OWS server-timing-param )
    server-timing-param  = token OWS "=" OWS ( token / quoted-string )

Parsing is tolerant like a browser's: a malformed entry is skipped, the first ``dur`` and
``desc`` of an entry win, unknown parameters are ignored, and nothing here ever raises.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["ServerTimingMetric", "parse_server_timing", "server_time_ms"]

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_OWS = " \t"
_RESPONSE_TIME = re.compile(
    r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|us|µs|ns)?\s*", re.IGNORECASE
)
_UNIT_TO_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3, "ns": 1e-6}


@dataclass(frozen=True, slots=True)
class ServerTimingMetric:
    """One Server-Timing entry; ``duration_ms`` is None when ``dur`` is absent or not a number."""

    name: str
    duration_ms: float | None
    description: str | None


class _Malformed(Exception):
    """Internal signal: the current entry does not follow the grammar."""


def _token(text: str, pos: int) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    if end == pos:
        raise _Malformed
    return text[pos:end], end


def _quoted(text: str, pos: int) -> tuple[str, int]:
    # pos is on the opening quote; a backslash escapes any following character.
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos == len(text):
                break
            char = text[pos]
        out.append(char)
        pos += 1
    raise _Malformed


def _skip_ows(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _OWS:
        pos += 1
    return pos


def _skip_entry(text: str, pos: int) -> int:
    """Return the position just past the next comma outside a quoted string."""
    in_quotes = False
    while pos < len(text):
        char = text[pos]
        if in_quotes:
            if char == "\\":
                pos += 1
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == ",":
            return pos + 1
        pos += 1
    return pos


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _entry(text: str, pos: int) -> tuple[ServerTimingMetric, int]:
    """Parse one metric starting at ``pos``; return it and the position of its terminator."""
    name, pos = _token(text, pos)
    params: dict[str, str | None] = {}
    while True:
        pos = _skip_ows(text, pos)
        if pos == len(text) or text[pos] == ",":
            break
        if text[pos] != ";":
            raise _Malformed
        param, pos = _token(text, _skip_ows(text, pos + 1))
        pos = _skip_ows(text, pos)
        value: str | None = None
        if pos < len(text) and text[pos] == "=":
            pos = _skip_ows(text, pos + 1)
            if pos < len(text) and text[pos] == '"':
                value, pos = _quoted(text, pos)
            else:
                value, pos = _token(text, pos)
        params.setdefault(param.lower(), value)
    return ServerTimingMetric(name, _duration(params.get("dur")), params.get("desc")), pos


def parse_server_timing(header: str | None) -> tuple[ServerTimingMetric, ...]:
    """Parse a Server-Timing value (header lines joined by commas), skipping junk entries."""
    if not header:
        return ()
    metrics: list[ServerTimingMetric] = []
    pos = 0
    while pos < len(header):
        pos = _skip_ows(header, pos)
        if pos == len(header):
            break
        if header[pos] == ",":  # empty list element, allowed by the #rule
            pos += 1
            continue
        try:
            metric, pos = _entry(header, pos)
        except _Malformed:
            pos = _skip_entry(header, pos)
            continue
        metrics.append(metric)
        pos += 1  # past the comma (or the end)
    return tuple(metrics)


def _response_time_ms(value: str | None) -> float | None:
    if not value:
        return None
    match = _RESPONSE_TIME.fullmatch(value)
    if match is None:
        return None
    number = float(match.group(1)) * _UNIT_TO_MS[(match.group(2) or "").lower()]
    return number if math.isfinite(number) else None


def server_time_ms(server_timing: str | None, x_response_time: str | None) -> float | None:
    """Server-side time of a response in ms.

    The ``total`` metric's ``dur`` when present, else the sum of all ``dur`` values, else the
    ``X-Response-Time`` header (``"12.5ms"``, ``"12.5"`` meaning ms, ``"0.0125s"``), else None.
    """
    durations: list[float] = []
    for metric in parse_server_timing(server_timing):
        if metric.duration_ms is None:
            continue
        if metric.name.lower() == "total":
            return metric.duration_ms
        durations.append(metric.duration_ms)
    if durations:
        return sum(durations)
    return _response_time_ms(x_response_time)
