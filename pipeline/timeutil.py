"""Parsing of the CLI's durations (`--last`) and instants (`--from`, `--to`, `--at`), and of
RFC 3339 times (`parse_time_ns`, which the event models use too): no pydantic here, so a query
command never imports it."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")


# RFC 3339 as Teleport writes it: up to nanoseconds, `Z` or a numeric offset.
TIME_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$",
    re.ASCII,
)
# Storable times: int64 nanoseconds but the values engines reserve, DuckDB's ±infinity
# (±(2**63 - 1): casting to it fails) and pandas' NaT (-2**63): 1677-09-21 .. 2262-04-11.
MIN_NS = -(2**63) + 2
MAX_NS = 2**63 - 2


class InputError(ValueError):
    """A user-supplied value (duration, time, cloud list) is not valid; the message says why."""


def parse_duration_ns(text: str) -> int:
    """Go duration syntax (`30m`, `24h`, `1h30m`, `1.5h`) plus `d` (24h) and `w` (7d), > 0."""
    s = text.strip()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise InputError(
            f"invalid duration {text!r}: expected a duration like 30m, 24h, 1h30m, 7d or 2w"
        )
    if total <= 0:
        raise InputError(f"invalid duration {text!r}: must be greater than zero")
    return int(total)


def parse_time_ns(text: str) -> int:
    """Parse an RFC 3339 time to integer nanoseconds since the epoch (UTC); ValueError if bad."""
    m = TIME_RE.fullmatch(text)
    if not m:
        raise ValueError(f"time {text!r} is not RFC 3339 (e.g. 2026-05-04T10:00:00.123456789Z)")
    year, month, day, hh, mm, ss = (int(g) for g in m.groups()[:6])
    frac, offset = m.group(7) or "", m.group(8)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"time {text!r} has no such date")
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError(f"time {text!r} has no such time of day")
    seconds = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    ns = seconds * 1_000_000_000 + int(frac.ljust(9, "0") or 0)
    if not (MIN_NS <= ns <= MAX_NS):
        raise ValueError(f"time {text!r} is outside the supported range (1677..2262)")
    return ns


def parse_instant_ns(text: str) -> int:
    """An RFC 3339 time (any offset, up to nanoseconds) or a date (midnight UTC), as integer
    nanoseconds since the epoch: every digit the user typed counts."""
    s = text.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\d", s):
        try:
            d = date.fromisoformat(s)
        except ValueError as e:
            raise InputError(f"invalid date {text!r}: {e}") from None
        return (d - date(1970, 1, 1)).days * 86_400 * 1_000_000_000
    if re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?", s):
        s = s.replace(" ", "T") + ("" if s.count(":") == 2 else ":00") + "Z"  # no offset: UTC
    try:
        return parse_time_ns(s.replace(" ", "T"))
    except ValueError:
        raise InputError(
            f"invalid time {text!r}: expected RFC 3339 (2026-05-04T10:00:00Z) or a date (2026-05-04)"
        ) from None


def parse_instant(text: str) -> datetime:
    """`parse_instant_ns` as an aware UTC datetime, for the scheduler's datetimes (sub-microsecond
    digits dropped; the CLI's windows use `parse_instant_ns`)."""
    return ns_to_datetime(parse_instant_ns(text))


def ns_to_datetime(ns: int) -> datetime:
    """Aware UTC datetime from nanoseconds since the epoch (sub-microsecond digits dropped)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def to_ns(t: datetime | int) -> int:
    """Integer nanoseconds since the epoch for an aware datetime (naive means UTC) or an int."""
    if isinstance(t, int):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
