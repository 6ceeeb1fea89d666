"""History analytics: a thin API over the `sql/1x0_*` relations (attempts, per-instance history,
failure trends, period comparison, top reasons, headline figures).

Each function binds one relation's window arguments and returns its rows as a pyarrow Table in
the relation's own order; the logic lives in SQL only. Windows are half-open [start, end), given
as aware datetimes or integer nanoseconds (UTC).

    con = analytics.connect("lake")     # views.connect + <store>/failure_reasons.csv rules
    analytics.failure_trends(con, start, end, bucket="day", by="category")
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.query import rollups, views
from pipeline.store import Store
from pipeline.timeutil import InputError, to_ns

BUCKETS = ("hour", "day")
DIMENSIONS = ("cloud", "account", "region", "exit_code", "category")
CHANGES = ("newly failing", "still failing", "recovered", "not retried")
REASONS_FILE = "failure_reasons.csv"
REASON_COLUMNS = ("priority", "reason", "match_kind", "pattern", "remedy")
MATCH_KINDS = ("exit_code", "api_error_like", "output_like")
DUP_WINDOW = timedelta(minutes=2)  # two attempts started this close: one is a duplicate

Instant = datetime | int


class ReasonsFileError(InputError):
    """A failure_reasons.csv row is invalid; the message names the file, line and the fix."""


def connect(store: Store | str, *, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """`pipeline.query.views.connect` plus the store's own failure_reasons.csv rules, if it has one."""
    store = store if isinstance(store, Store) else Store(store)
    con = views.connect(store, database=database)
    if store.remote:  # a store on object storage: the shipped rules only (no local CSV to read)
        return con
    path = store.root / REASONS_FILE
    if path.is_file():
        load_failure_reasons(con, path)
    return con


def load_failure_reasons(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Append the rules of a CSV (header: priority,reason,match_kind,pattern,remedy) to the
    `failure_reasons` table; returns how many. Raises ReasonsFileError naming the bad line."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or set(reader.fieldnames) != set(REASON_COLUMNS):
            raise ReasonsFileError(
                f"{path}: header must be {','.join(REASON_COLUMNS)} (got "
                f"{','.join(reader.fieldnames or []) or 'nothing'})")
        rows = [_reason_row(path, reader.line_num, r) for r in reader]
    if rows:
        con.executemany("INSERT INTO failure_reasons VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def _reason_row(path: Path, line: int, r: dict) -> tuple:
    where = f"{path}:{line}"
    priority = (r.get("priority") or "").strip()
    if not priority.lstrip("-").isdigit():
        raise ReasonsFileError(f"{where}: priority {priority!r} must be an integer")
    kind = (r.get("match_kind") or "").strip()
    if kind not in MATCH_KINDS:
        raise ReasonsFileError(f"{where}: match_kind {kind!r} must be one of {', '.join(MATCH_KINDS)}")
    pattern, reason = r.get("pattern") or "", (r.get("reason") or "").strip()
    if not reason or not pattern:
        raise ReasonsFileError(f"{where}: reason and pattern must not be empty")
    if kind == "exit_code" and not pattern.strip().lstrip("-").isdigit():
        raise ReasonsFileError(f"{where}: an exit_code pattern must be an integer, not {pattern!r}")
    return int(priority), reason, kind, pattern.strip() if kind == "exit_code" else pattern, \
        (r.get("remedy") or "").strip()


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> pa.Table:
    return con.sql(sql, params=params).to_arrow_table()


def _window(start: Instant, end: Instant) -> list[int]:
    lo, hi = to_ns(start), to_ns(end)
    if hi <= lo:
        raise InputError("the window end must be after its start")
    return [lo, hi]


_W = "make_timestamp_ns($1), make_timestamp_ns($2)"


def instance_key(text: str) -> str:
    """The stored key for what a user types: an EC2 id, a VM id, or tctl's `<rg>/<vm-id>`."""
    return parse_instance(text)[0]


def parse_instance(text: str) -> tuple[str, str | None]:
    """(key, resource group or None) of what a user types: an EC2 id, a VM id, or tctl's
    `<resource-group>/<vm-id>` (the group is then checked, not dropped)."""
    text = text.strip()
    if not text:
        raise InputError("instance must not be empty (an EC2 instance id or an Azure VM id)")
    group, _, key = text.rpartition("/")
    if "/" in text and not (group.strip() and key.strip()):
        raise InputError(f"instance {text!r}: expected <resource-group>/<vm-id>")
    return key.strip(), group.strip() or None


def _instance_filter(instance: str, first: int) -> tuple[str, list]:
    """SQL condition and parameters ($first, $first+1) keeping one instance: EC2 ids exactly,
    VM ids case-insensitively, an Azure resource group (case-insensitive, as Azure's) if given."""
    key, group = parse_instance(instance)
    a, b = f"${first}", f"${first + 1}"
    return (f" WHERE instance_key IN ({a}, lower({a})) AND ({b}::VARCHAR IS NULL"
            f" OR lower(resource_group) = lower({b}))", [key, group])


def _ns_of(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 10**9 + d.microseconds * 1000


def attempts(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant,
             instance: str | None = None) -> pa.Table:
    """`classified_attempts` in [start, end), in the one attempt order: time, event index, uid
    (of each attempt's last step), then cloud and instance (one SSM command on several instances
    is one attempt each); with `instance`, only that instance's (EC2 ids exactly, VM ids
    case-insensitively, `<rg>/<vm-id>` also by resource group)."""
    sql = f"SELECT * FROM classified_attempts({_W})"
    params: list = _window(start, end)
    if instance is not None:
        cond, more = _instance_filter(instance, 3)
        sql, params = sql + cond, params + more
    return _run(con, sql + " ORDER BY time, ei, uid, cloud, instance_key", params)


def instance_history(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant, *,
                     instance: str | None = None, dup_window: timedelta = DUP_WINDOW,
                     limit: int | None = None) -> pa.Table:
    """`instance_history` of [start, end) (most failures first); optionally one instance (as
    `attempts` matches it) or the first `limit` rows."""
    sql = f"SELECT * FROM instance_history({_W}, dup_window_ns := $3)"
    params: list = [*_window(start, end), _ns_of(dup_window)]
    if instance is not None:
        cond, more = _instance_filter(instance, 4)
        sql, params = sql + cond, params + more
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return _run(con, sql, params)


def has_runs(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant) -> bool:
    """Whether any run event is stored for [start, end) (False: no data for that period)."""
    return con.sql(f"SELECT EXISTS (SELECT 1 FROM runs_in_window({_W}))",
                   params=_window(start, end)).fetchall()[0][0]


def failure_trends(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant, *,
                   bucket: str = "day", by: str = "cloud") -> pa.Table:
    """`failure_trends` of [start, end) per UTC `bucket` (hour|day) and dimension `by`."""
    if bucket not in BUCKETS:
        raise InputError(f"unknown bucket {bucket!r} (allowed: {', '.join(BUCKETS)})")
    if by not in DIMENSIONS:
        raise InputError(f"unknown dimension {by!r} (allowed: {', '.join(DIMENSIONS)})")
    lo, hi = _window(start, end)
    if bucket == "day":  # whole days from fresh rollups (pipeline/query/rollups.py), the rest computed
        plan = rollups.plan_trends(con, lo, hi)
        if plan.rolled:
            sql, params = rollups.trends_sql(plan, lo, hi, by)
            return _run(con, sql, params)
    return _run(con, f"SELECT * FROM failure_trends({_W}, $3, $4)", [lo, hi, bucket, by])


def compare_periods(con: duckdb.DuckDBPyConnection, before: tuple[Instant, Instant],
                    after: tuple[Instant, Instant]) -> pa.Table:
    """`period_comparison` of period A = `before` and B = `after` (each [start, end))."""
    return _run(con, "SELECT * FROM period_comparison(make_timestamp_ns($1), make_timestamp_ns($2),"
                     " make_timestamp_ns($3), make_timestamp_ns($4))",
                [*_window(*before), *_window(*after)])


def top_reasons(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant) -> pa.Table:
    """`top_failure_reasons` of [start, end): failures per reason, most first."""
    return _run(con, f"SELECT * FROM top_failure_reasons({_W})", _window(start, end))


def summary(con: duckdb.DuckDBPyConnection, start: Instant, end: Instant, *,
            dup_window: timedelta = DUP_WINDOW) -> pa.Table:
    """`history_summary` of [start, end): one row per cloud with attempts, then 'all'."""
    return _run(con, f"SELECT * FROM history_summary({_W}, dup_window_ns := $3)",
                [*_window(start, end), _ns_of(dup_window)])


def reasons(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The `failure_reasons` rules in the order they are tried (priority, reason, pattern)."""
    return _run(con, "SELECT * FROM failure_reasons ORDER BY priority, reason, pattern", [])
