"""Building the rollups (`pipeline.query.rollups` reads them): `refresh` brings every rollup
up to date with the runs in one store transaction (`discovery-history rollup`, the maintenance
DAG's `refresh_rollups`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

from pipeline.query import analytics
from pipeline.query.rollups import (
    DAY,
    TREND_DIMENSIONS,
    day_ns,
    fresh,
    latest_fingerprints,
    next_month,
    rules_version,
    runs_by_day,
    sql_version,
    trend_fingerprints,
)
from pipeline.store import Store
from pipeline.store.layout import ROLLUP_LATEST, ROLLUP_TRENDS, Dataset
from pipeline.store.write import sql_str

MEMORY_LIMIT = "1GB"  # the refresh's engine memory; beyond it DuckDB spills to the scratch folder
CHUNK_DAYS = 7  # days of trends computed per query while refreshing (bounds memory, shows progress)


def refresh(store: Store, *, lock_timeout: float = 60.0,
            say: Callable[[str], None] | None = None) -> dict:
    """Bring every rollup up to date with the runs, in one store transaction: build the stale
    or missing ones, drop those of data no longer stored. Returns counts of the work done."""

    say = say or (lambda _msg: None)
    store.require()
    with store.writer(timeout=lock_timeout) as w:
        con = analytics.connect(store)  # the manifest under our lock, the store's own rules
        # bounded like an ingest: a week of a large fleet's attempts would otherwise take GBs
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {sql_str(w.scratch('spill'))}")
        try:
            by_day = runs_by_day(w.base.datasets.get("runs", []))
            salt = sql_version(con)
            months = _refresh(w, ROLLUP_LATEST, latest_fingerprints(by_day, salt),
                              lambda todo, out: _build_latest(con, todo, out, say))
            days = _refresh(w, ROLLUP_TRENDS,
                            trend_fingerprints(by_day, salt + rules_version(con)),
                            lambda todo, out: _build_trends(con, todo, out, say))
            w.commit()
        finally:
            con.close()
    return {"months_built": months[0], "month_files_removed": months[1],
            "days_built": days[0], "day_files_removed": days[1]}


def _refresh(w, ds: Dataset, want: dict[date, str],
             build: Callable[[dict[date, str], object], None]) -> tuple[int, int]:
    """Build the files of `want` that are not already fresh, remove every other file."""
    have = w.base.datasets.get(ds.name, [])
    ok = fresh(ds, have, want)
    todo = {d: fp for d, fp in sorted(want.items()) if d not in ok}
    kept = set(ok.values())
    stale = [rel for rel in have if rel not in kept]
    out = w.scratch(f"rollup-{ds.name}")
    if todo:
        build({d: f"part-{w.ingest_id}-{fp}.parquet" for d, fp in todo.items()}, out)
    w.remove(ds.name, stale)
    w.add_tree(ds.name, out)
    return len(todo), len(stale)


def _copy(con, query: str, target, params: list) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({query}) TO {sql_str(target)} (FORMAT parquet, COMPRESSION zstd)", params)


def _build_latest(con, todo: dict[date, str], out, say) -> None:
    cols = ", ".join(ROLLUP_LATEST.column_names)
    for i, (m, name) in enumerate(todo.items(), 1):
        say(f"rollup: newest run per instance, month {m:%Y-%m} ({i}/{len(todo)})")
        _copy(con, f"SELECT {cols} FROM latest_runs(make_timestamp_ns($1), make_timestamp_ns($2))"
                   " ORDER BY cloud, instance_key, vm_id",
              out / f"event_month={m}" / name, [day_ns(m), day_ns(next_month(m))])


def _build_trends(con, todo: dict[date, str], out, say) -> None:
    cols = ", ".join(ROLLUP_TRENDS.column_names)
    done = 0
    for first, last in _chunks(sorted(todo)):
        say(f"rollup: trends by day, {first} to {last} ({done}/{len(todo)} days done)")
        con.execute("CREATE OR REPLACE TEMP TABLE rollup_chunk AS SELECT * FROM failure_trends_by("
                    "make_timestamp_ns($1), make_timestamp_ns($2), 'day', $3)",
                    [day_ns(first), day_ns(last + DAY), list(TREND_DIMENSIONS)])
        d = first
        while d <= last:
            if d in todo:
                _copy(con, f"SELECT {cols} FROM rollup_chunk WHERE CAST(bucket_start AS DATE) = $1"
                           " ORDER BY dimension, key", out / f"event_date={d}" / todo[d], [d])
                done += 1
            d += DAY
    con.execute("DROP TABLE IF EXISTS rollup_chunk")


def _chunks(days: list[date]) -> Iterator[tuple[date, date]]:
    """Spans of at most CHUNK_DAYS days covering `days` (sorted), each one query's work."""
    i = 0
    while i < len(days):
        j = i
        while j + 1 < len(days) and days[j + 1] - days[i] < CHUNK_DAYS * DAY:
            j += 1
        yield days[i], days[j]
        i = j + 1
