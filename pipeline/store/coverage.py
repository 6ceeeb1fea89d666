"""The event-time windows a store holds whole: the ingests' committed watermark.

An ingest that read every source file that can hold events of its window [start, end) (the
scheduled ingest: `Settings.event_paths` of the window) records that window in the manifest,
in the same commit as its events. The coverage is the union of those windows, kept merged and
sorted. A report of [a, b) is built only when `missing(coverage, a, b)` is empty, that is when
the watermark `reach(coverage, a)` (the end of the covered run that holds `a`) is at least b.

Pure functions over half-open, aware UTC intervals; the manifest stores them as RFC 3339 text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

Interval = tuple[datetime, datetime]


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"coverage times must be timezone-aware: {t!r}")
    return t.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same instants (touching ones joined;
    empty ones dropped)."""
    out: list[Interval] = []
    for start, end in sorted((_utc(s), _utc(e)) for s, e in intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def clip(coverage: Iterable[Interval], cutoff: datetime) -> list[Interval]:
    """The coverage from `cutoff` on (what is left after retention dropped older events)."""
    cutoff = _utc(cutoff)
    return merge((max(s, cutoff), e) for s, e in coverage if e > cutoff)


def missing(coverage: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of [start, end) the coverage does not hold, in order (empty: all held)."""
    start, end = _utc(start), _utc(end)
    gaps, at = [], start
    for s, e in merge(coverage):
        if e <= at:
            continue
        if s >= end:
            break
        if s > at:
            gaps.append((at, s))
        at = max(at, e)
        if at >= end:
            break
    if at < end:
        gaps.append((at, end))
    return gaps


def reach(coverage: Iterable[Interval], start: datetime) -> datetime | None:
    """The watermark from `start`: the end of the covered interval holding `start` (every event
    of [start, reach) is stored), or None when `start` itself is not covered."""
    start = _utc(start)
    for s, e in merge(coverage):
        if s <= start < e:
            return e
    return None


def newest(coverage: Iterable[Interval]) -> datetime | None:
    """The latest instant the store holds whole up to (the end of the last interval)."""
    merged = merge(coverage)
    return merged[-1][1] if merged else None


def to_json(coverage: Iterable[Interval]) -> list[list[str]]:
    return [[_text(s), _text(e)] for s, e in merge(coverage)]


def from_json(items: Iterable[Iterable[str]]) -> list[Interval]:
    pairs = []
    for item in items:
        s, e = (datetime.fromisoformat(str(t).replace("Z", "+00:00")) for t in item)
        pairs.append((s, e))
    return merge(pairs)


def _text(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def describe(gaps: Iterable[Interval]) -> str:
    """`[a, b), [c, d)` for messages."""
    return ", ".join(f"[{_text(s)}, {_text(e)})" for s, e in gaps)
