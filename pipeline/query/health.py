"""Enrollment health at one instant, the figures behind `discovery-history metrics`: instances
failing now, attempts of the last hour, freshness per source, the last ingest and snapshots.
Plain values from the `sql/` relations (failing_now, attempt_counts, source_freshness,
last_ingest, snapshot_at); `now` is passed in (read at the edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from pipeline.timeutil import to_ns

CLOUDS = ("aws", "azure")
INGEST_COUNTS = ("read", "stored", "duplicates", "skipped", "quarantined")
SNAPSHOT_KINDS = ("nodes", "user_tasks")
FAILING_WINDOW = timedelta(hours=24)
RATE_WINDOW = timedelta(hours=1)
FRESHNESS_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Failing:
    cloud: str
    account: str
    region: str
    reason: str
    instances: int


@dataclass(frozen=True)
class Health:
    """The figures; times in ns since the epoch (UTC), None when there is none yet."""

    now: int
    failing: list[Failing]
    attempts: dict[str, int]  # cloud -> attempts in the rate window (every cloud in CLOUDS)
    failed_attempts: dict[str, int]
    sources: dict[str, int]  # source origin -> newest stored event time
    last_ingest: int | None  # finish time of the last events ingest
    last_ingest_counts: dict[str, int] = field(default_factory=dict)  # INGEST_COUNTS
    snapshots: dict[str, int | None] = field(default_factory=dict)  # kind -> newest capture


def collect(con: duckdb.DuckDBPyConnection, now: datetime, *,
            failing_window: timedelta = FAILING_WINDOW, rate_window: timedelta = RATE_WINDOW,
            freshness_window: timedelta = FRESHNESS_WINDOW) -> Health:
    """Health at `now` on a `views.connect` connection: failing = newest attempt in
    [now - failing_window, now) failed; attempts whose result falls in [now - rate_window, now);
    newest event per source origin in [now - freshness_window, now); the last events ingest and
    the newest snapshot of each kind finished or taken at or before now."""
    end = to_ns(now)

    def window(span: timedelta) -> list:
        return [to_ns(now - span), end]

    rows = con.execute("SELECT cloud, account_id, region, reason, instances FROM failing_now("
                       "make_timestamp_ns($1), make_timestamp_ns($2))",
                       window(failing_window)).fetchall()
    failing = [Failing(*r) for r in rows]
    counts = {c: (0, 0) for c in CLOUDS}
    for cloud, attempts, failures in con.execute(
            "SELECT cloud, attempts, failures FROM attempt_counts(make_timestamp_ns($1), "
            "make_timestamp_ns($2))", window(rate_window)).fetchall():
        counts[cloud] = (attempts, failures)
    sources = dict(con.execute(
        "SELECT origin, epoch_ns(newest_event) FROM source_freshness(make_timestamp_ns($1), "
        "make_timestamp_ns($2))", window(freshness_window)).fetchall())
    ingest = con.execute(f"SELECT epoch_ns(finished_at), {', '.join(INGEST_COUNTS)} "
                         "FROM last_ingest('events', make_timestamp_ns($1))", [end]).fetchone()
    snapshots = {kind: con.execute("SELECT epoch_ns(snapshot_at($1, make_timestamp_ns($2)))",
                                   [kind, end]).fetchone()[0] for kind in SNAPSHOT_KINDS}
    return Health(
        now=end, failing=failing,
        attempts={c: a for c, (a, _) in counts.items()},
        failed_attempts={c: f for c, (_, f) in counts.items()},
        sources=sources,
        last_ingest=ingest[0] if ingest else None,
        last_ingest_counts=dict(zip(INGEST_COUNTS, ingest[1:], strict=True)) if ingest else {},
        snapshots=snapshots,
    )
