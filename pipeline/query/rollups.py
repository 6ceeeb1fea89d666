"""Rollups: small datasets derived from `runs` that answer year-long questions without a year's
scan, used only while they still match the runs files they were computed from.

* `rollup_latest`, one file per month: the newest run per instance of that month (runs' own
  rows). `latest_runs` over a window takes every month the window covers whole from here and
  scans runs only for the rest: the newest of the newest is the newest.
* `rollup_trends`, one file per day: that day's `failure_trends` rows (bucket 'day', every
  dimension). `analytics.failure_trends` takes the days it can from here and computes the rest.

A rollup file's name ends in a fingerprint of its inputs: the runs files it read (names are
unique per write, so any ingest, compaction or retention that touches them changes it), the SQL
that defines the relations and, for trends, the failure rules. Readers compare fingerprints with
the manifest they opened and ignore a stale rollup, so results never depend on whether
`pipeline.query.rollup_build.refresh` ran, only how fast they come.

An attempt belongs to the day of its last step, and its outcome uses all its steps
(`run_attempts`), so trends of adjacent days add up to the trends of their union: a window's
whole days come from their rollups and the partial days at its ends are computed alone. To
find an attempt's steps, `run_attempts` reads a day either side of its window (an attempt's
steps are assumed to lie within 24 hours; SSM's execution timeout defaults to 1 h), so day D's
rollup is computed from the runs of days D-1..D+1 and carries their fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb

from pipeline.store import Store
from pipeline.store.layout import ROLLUP_LATEST, ROLLUP_TRENDS, RUNS, Dataset

DAY = timedelta(days=1)
NS_PER_DAY = 86_400 * 10**9
TREND_DIMENSIONS = ("cloud", "account", "region", "exit_code", "category")


# ---- fingerprints ------------------------------------------------------------------------------

def runs_by_day(rels: Iterable[str]) -> dict[date, list[str]]:
    """Runs files (relative paths) per event day."""
    out: dict[date, list[str]] = {}
    for rel in rels:
        if (d := RUNS.date_of(rel)) is not None:
            out.setdefault(d, []).append(rel)
    return out


def month_of(d: date) -> date:
    return d.replace(day=1)


def next_month(m: date) -> date:
    return (m.replace(day=28) + timedelta(days=4)).replace(day=1)


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def sql_version(con: duckdb.DuckDBPyConnection) -> str:
    """The digest of the `sql/` texts loaded on `con` (set by `attach`): a change to how the
    relations are computed stales every rollup."""
    return con.execute("SELECT getvariable('rollup_sql_version')").fetchall()[0][0]


def latest_fingerprints(by_day: dict[date, list[str]], salt: str) -> dict[date, str]:
    """Per month with runs: the fingerprint its `rollup_latest` file must carry."""
    months: dict[date, list[str]] = {}
    for d, rels in by_day.items():
        months.setdefault(month_of(d), []).extend(rels)
    return {m: _digest([salt, *sorted(rels)]) for m, rels in months.items()}


def trend_fingerprints(by_day: dict[date, list[str]], salt: str) -> dict[date, str]:
    """Per day with runs: the fingerprint its `rollup_trends` file must carry (days D-1..D+1)."""
    return {d: _digest([salt, *sorted(r for k in (d - DAY, d, d + DAY) for r in by_day.get(k, []))])
            for d in by_day}


def rollup_key(ds: Dataset, rel: str) -> tuple[date, str] | None:
    """(partition date, fingerprint) of a rollup file `<key>=<date>/part-<id>-<fp>.parquet`."""
    if not rel.endswith(".parquet"):
        return None
    try:
        day = ds.date_of(rel)
    except ValueError:
        return None
    return None if day is None else (day, rel[:-len(".parquet")].rsplit("-", 1)[-1])


def fresh(ds: Dataset, rollup_rels: Iterable[str], want: dict[date, str]) -> dict[date, str]:
    """Of the rollup files, those whose fingerprint matches `want`: partition date -> rel."""
    out = {}
    for rel in rollup_rels:
        key = rollup_key(ds, rel)
        if key is not None and want.get(key[0]) == key[1]:
            out[key[0]] = rel
    return out


def rules_version(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the failure rules loaded on `con` (built-in and the store's CSV)."""
    rows = con.execute("SELECT priority, reason, match_kind, pattern, remedy FROM failure_reasons "
                       "ORDER BY ALL").fetchall()
    return _digest(repr(r) for r in rows)


def committed(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, str]:
    """The dataset's committed files as the connection's views see them: relative path -> path
    (or URL). The list's first entry, the schema file, is not one of them."""
    paths = con.execute(f"SELECT getvariable('{dataset}_files')").fetchall()[0][0] or []
    marker = f"/{dataset}/"
    return {p.rsplit(marker, 1)[1]: p for p in paths[1:] if marker in p}


# ---- reading: latest_runs (SQL, sql/050) -------------------------------------------------------

def attach(con: duckdb.DuckDBPyConnection, store: Store, datasets: dict[str, list[str]],
           sql_texts: Iterable[str]) -> None:
    """Set the variables rollups are read through: the digest of the `sql/` texts loaded, the
    fresh month rollups `latest_runs` reads (after the runs schema file, so the list is never
    empty) and the months they cover."""
    version = _digest(sql_texts)
    con.execute("SET VARIABLE rollup_sql_version = $1", [version])
    want = latest_fingerprints(runs_by_day(datasets.get("runs", [])), version)
    ok = fresh(ROLLUP_LATEST, datasets.get(ROLLUP_LATEST.name, []), want)
    con.execute("SET VARIABLE rollup_latest_files = $1", [
        [store.schema_file("runs")] + [store.path(ROLLUP_LATEST.name, ok[m]) for m in sorted(ok)]])
    con.execute("SET VARIABLE rollup_latest_months = $1::DATE[]", [sorted(ok)])


def ignore_latest(con: duckdb.DuckDBPyConnection) -> None:
    """Make `latest_runs` on `con` scan runs only (baselines and checks of the rollups)."""
    con.execute("SET VARIABLE rollup_latest_months = []::DATE[]")


# ---- reading: failure_trends by day (planned here) ---------------------------------------------

@dataclass(frozen=True)
class TrendPlan:
    """Which days of a window come from `rollup_trends` files, which runs of days are computed."""

    rolled: dict[date, str]  # day -> path of its rollup file
    live: list[tuple[date, date]]  # inclusive runs of days computed from runs


def plan_trends(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> TrendPlan:
    """Days of [lo, hi) (ns) served by fresh rollups: the days [lo, hi) covers whole; days
    without runs need nothing; the rest are computed."""
    first, last = day_of(lo), day_of(hi - 1)
    by_day = runs_by_day(committed(con, "runs"))
    want = trend_fingerprints(by_day, sql_version(con) + rules_version(con))
    files = committed(con, ROLLUP_TRENDS.name)
    ok = {d: files[rel] for d, rel in fresh(ROLLUP_TRENDS, files, want).items()}
    rolled, live, run_start = {}, [], None
    d = first
    while d <= last:
        start_ns = day_ns(d)
        usable = start_ns >= lo and start_ns + NS_PER_DAY <= hi
        if d not in by_day or (usable and d in ok):
            if d in by_day:
                rolled[d] = ok[d]
            if run_start is not None:
                live.append((run_start, d - DAY))
                run_start = None
        elif run_start is None:
            run_start = d
        d += DAY
    if run_start is not None:
        live.append((run_start, last))
    return TrendPlan(rolled, live)


def trends_sql(plan: TrendPlan, lo: int, hi: int, dimension: str) -> tuple[str, list]:
    """One statement and its parameters for `failure_trends(lo, hi, 'day', dimension)` as
    `plan` splits it; the same rows, in the same order, as the relation computed whole."""
    parts, params = [], [dimension]

    def bind(value) -> str:
        params.append(value)
        return f"${len(params)}"

    for first, last in plan.live:
        a, b = max(lo, day_ns(first)), min(hi, day_ns(last + DAY))
        parts.append(f"SELECT * FROM failure_trends(make_timestamp_ns({bind(a)}), "
                     f"make_timestamp_ns({bind(b)}), 'day', $1)")
    if plan.rolled:
        files = bind([plan.rolled[d] for d in sorted(plan.rolled)])
        parts.append("SELECT bucket_start, key, attempts, failures, round(failures / attempts, 4) "
                     f"AS failure_rate, failing_instances, instances FROM read_parquet({files}, "
                     "hive_partitioning = false) WHERE dimension = $1")
    if not parts:
        return "SELECT * FROM failure_trends(to_timestamp(0), to_timestamp(0), 'day', $1)", params
    return (" UNION ALL ".join(f"({p})" for p in parts)
            + " ORDER BY bucket_start, failures DESC, key", params)


def day_of(ns: int) -> date:
    return datetime.fromtimestamp(ns // 10**9, UTC).date() if ns >= 0 else date(1970, 1, 1)


def day_ns(d: date) -> int:
    return (d - date(1970, 1, 1)).days * NS_PER_DAY
