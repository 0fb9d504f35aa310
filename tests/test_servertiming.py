"""Server-Timing parsing and the server time derived from response headers."""

from __future__ import annotations

import pytest

from perfgate.probes.servertiming import ServerTimingMetric, parse_server_timing, server_time_ms


def test_parses_the_spec_examples() -> None:
    header = (
        'miss, db;dur=53, app;dur=47.2, customView, dc;desc=atl, cache;desc="Cache Read";dur=23.2'
    )
    assert parse_server_timing(header) == (
        ServerTimingMetric("miss", None, None),
        ServerTimingMetric("db", 53.0, None),
        ServerTimingMetric("app", 47.2, None),
        ServerTimingMetric("customView", None, None),
        ServerTimingMetric("dc", None, "atl"),
        ServerTimingMetric("cache", 23.2, "Cache Read"),
    )


def test_quoted_strings_keep_escapes_commas_and_semicolons() -> None:
    header = r'a;desc="say \"hi\", then; go";dur=1, b;dur=2'
    assert parse_server_timing(header) == (
        ServerTimingMetric("a", 1.0, 'say "hi", then; go'),
        ServerTimingMetric("b", 2.0, None),
    )


def test_whitespace_case_and_first_parameter_wins() -> None:
    header = "  total ;  DUR = 12.5 ; dur=99 ; Desc=x ,, other;dur=1  "
    assert parse_server_timing(header) == (
        ServerTimingMetric("total", 12.5, "x"),
        ServerTimingMetric("other", 1.0, None),
    )


@pytest.mark.parametrize(
    "header",
    [
        "bad name;dur=1, ok;dur=2",
        '"quoted";dur=1, ok;dur=2',
        "x;dur=1 junk, ok;dur=2",
        "x;=1, ok;dur=2",
        'x;desc="a, b"c;dur=5, ok;dur=2',
        ";dur=3, ok;dur=2",
    ],
)
def test_a_malformed_entry_is_skipped(header: str) -> None:
    assert parse_server_timing(header) == (ServerTimingMetric("ok", 2.0, None),)


def test_unterminated_quote_at_the_end_drops_only_that_entry() -> None:
    assert parse_server_timing('ok;dur=2, x;desc="never closed') == (
        ServerTimingMetric("ok", 2.0, None),
    )


@pytest.mark.parametrize("dur", ["abc", "-1", "nan", "inf", ""])
def test_a_non_numeric_or_negative_dur_is_none(dur: str) -> None:
    assert parse_server_timing(f"m;dur={dur}") in ((ServerTimingMetric("m", None, None),), ())


@pytest.mark.parametrize("header", [None, "", "   ", ",,,", '"', "\\", ";;;", "=", "a;b;c=;"])
def test_junk_never_raises(header: str | None) -> None:
    parse_server_timing(header)


@pytest.mark.parametrize(
    ("server_timing", "x_response_time", "expected"),
    [
        ("db;dur=3, total;dur=10.5, app;dur=4", None, 10.5),
        ("db;dur=3, TOTAL;dur=7", "99ms", 7.0),
        ("db;dur=3, app;dur=4.5", "99ms", 7.5),
        ("cache;desc=hit", "12.5ms", 12.5),
        (None, "12.5", 12.5),
        (None, "0.0125s", 12.5),
        (None, " 250 us ", 0.25),
        (None, "12.5MS", 12.5),
        (None, "fast", None),
        (None, None, None),
        ("garbage!!", "", None),
    ],
)
def test_server_time_ms(
    server_timing: str | None, x_response_time: str | None, expected: float | None
) -> None:
    assert server_time_ms(server_timing, x_response_time) == pytest.approx(expected)
