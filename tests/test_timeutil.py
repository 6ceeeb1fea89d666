"""The CLI's durations (`--last`) and instants (`--from`, `--to`, `--at`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.timeutil import InputError, ns_to_datetime, parse_duration_ns, parse_instant

S = 1_000_000_000
M = 60 * S
H = 60 * M
D = 24 * H


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        pytest.param("30m", 30 * M, id="minutes"),
        pytest.param("24h", 24 * H, id="hours"),
        pytest.param("1h30m", H + 30 * M, id="hours-and-minutes"),
        pytest.param("1.5h", H + 30 * M, id="fractional-hours"),
        pytest.param("7d", 7 * D, id="days"),
        pytest.param("2w", 14 * D, id="weeks"),
        pytest.param("300ms", 300_000_000, id="milliseconds-not-minutes"),
        pytest.param("1m30s", 90 * S, id="minutes-and-seconds"),
        pytest.param("1h0m0s", H, id="go-string-form"),
        pytest.param("  2h ", 2 * H, id="surrounding-spaces"),
        pytest.param("1500us", 1_500_000, id="microseconds"),
        pytest.param("1µs", 1_000, id="micro-sign"),
        pytest.param(".5h", 30 * M, id="leading-dot"),
        pytest.param("1ns", 1, id="one-nanosecond"),
    ],
)
def test_parse_duration_ns(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param("", "expected a duration", id="empty"),
        pytest.param("   ", "expected a duration", id="blank"),
        pytest.param("0", "expected a duration", id="bare-zero"),
        pytest.param("0s", "greater than zero", id="zero-seconds"),
        pytest.param("0h0m", "greater than zero", id="zero-compound"),
        pytest.param("-1h", "expected a duration", id="negative"),
        pytest.param("1x", "expected a duration", id="unknown-unit"),
        pytest.param("h", "expected a duration", id="unit-without-number"),
        pytest.param("30", "expected a duration", id="number-without-unit"),
        pytest.param("1h30", "expected a duration", id="trailing-number"),
        pytest.param("1 h", "expected a duration", id="space-inside"),
        pytest.param("1H", "expected a duration", id="upper-case-unit"),
    ],
)
def test_parse_duration_ns_rejects(text: str, why: str) -> None:
    with pytest.raises(InputError) as e:
        parse_duration_ns(text)
    assert why in str(e.value)
    assert repr(text) in str(e.value)  # the message names the bad value
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("2026-05-04", datetime(2026, 5, 4, tzinfo=UTC), id="date-is-midnight-utc"),
        pytest.param("2026-05-04T10:00:00Z", datetime(2026, 5, 4, 10, tzinfo=UTC), id="zulu"),
        pytest.param("2026-05-04t10:00:00z", datetime(2026, 5, 4, 10, tzinfo=UTC), id="lower-t-z"),
        pytest.param(
            "2026-05-04T12:30:00+02:30", datetime(2026, 5, 4, 10, tzinfo=UTC), id="positive-offset"
        ),
        pytest.param(
            "2026-05-03T22:00:00-12:00", datetime(2026, 5, 4, 10, tzinfo=UTC), id="negative-offset"
        ),
        pytest.param(
            "2026-05-04T01:00:00+02:00",
            datetime(2026, 5, 3, 23, tzinfo=UTC),
            id="offset-crosses-day",
        ),
        pytest.param(
            "2026-05-04T10:00:00.123456789Z",
            datetime(2026, 5, 4, 10, 0, 0, 123456, tzinfo=UTC),
            id="nanoseconds-truncated-to-micros",
        ),
        pytest.param(
            "2026-05-04T10:00:00", datetime(2026, 5, 4, 10, tzinfo=UTC), id="naive-is-utc"
        ),
        pytest.param("2026-05-04 10:00:00", datetime(2026, 5, 4, 10, tzinfo=UTC), id="naive-space"),
        pytest.param(
            "2026-05-04T10:00", datetime(2026, 5, 4, 10, tzinfo=UTC), id="naive-no-seconds"
        ),
        pytest.param(
            "2026-05-04T10:00:00.5",
            datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC),
            id="naive-fraction",
        ),
        pytest.param(" 2026-05-04 ", datetime(2026, 5, 4, tzinfo=UTC), id="surrounding-spaces"),
        pytest.param("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC), id="leap-day"),
    ],
)
def test_parse_instant(text: str, want: datetime) -> None:
    got = parse_instant(text)
    assert got == want
    assert got.utcoffset() is not None and got.utcoffset().total_seconds() == 0  # aware UTC


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("yesterday", id="word"),
        pytest.param("2026-13-01", id="month-13"),
        pytest.param("2025-02-29", id="not-a-leap-year"),
        pytest.param("2026-02-30T00:00:00Z", id="no-such-day"),
        pytest.param("2026-05-04T24:00:00Z", id="hour-24"),
        pytest.param("2026-05-04T10:00:00+0200", id="offset-without-colon"),
        pytest.param("2026-05-04T10:00:00 UTC", id="zone-name"),
        pytest.param("1600-01-01T00:00:00Z", id="before-1677"),
        pytest.param("05/04/2026", id="us-date"),
    ],
)
def test_parse_instant_rejects(text: str) -> None:
    with pytest.raises(InputError) as e:
        parse_instant(text)
    assert repr(text) in str(e.value)


@pytest.mark.parametrize(
    ("ns", "want"),
    [
        pytest.param(0, datetime(1970, 1, 1, tzinfo=UTC), id="epoch"),
        pytest.param(1_999, datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), id="sub-micro-dropped"),
        pytest.param(-1, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), id="before-epoch"),
    ],
)
def test_ns_to_datetime(ns: int, want: datetime) -> None:
    assert ns_to_datetime(ns) == want


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        pytest.param("2026-05-04T10:00:00.123456789Z", 1_777_888_800_123_456_789, id="nanoseconds"),
        pytest.param("2026-05-04T12:00:00.000000001+02:00", 1_777_888_800_000_000_001,
                     id="offset-and-one-nanosecond"),
        pytest.param("2026-05-04 10:00:00.5", 1_777_888_800_500_000_000, id="naive-fraction"),
        pytest.param("2026-05-04", 1_777_852_800 * S, id="date"),
        pytest.param("1969-12-31", -D, id="before-epoch"),
    ],
)
def test_parse_instant_ns_keeps_every_digit(text: str, ns: int) -> None:
    from pipeline.timeutil import parse_instant_ns

    assert parse_instant_ns(text) == ns
