"""Query API: a DuckDB connection over the store with every view loaded, and the nodes report.

    con = pipeline.connect("lake")            # notebooks, reports, the CLI
    con.sql("SELECT * FROM latest_runs(TIMESTAMP_NS '2026-05-01', TIMESTAMP_NS '2026-05-02')")
    rows = nodes_report(con, start, end)        # list[NodeRow], tctl's order
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from pipeline.report.rows import NodeRow, RunResult
from pipeline.store import Store
from pipeline.store.layout import DATASETS

CLOUDS = ("aws", "azure")


def sql_dir() -> Path:
    """The folder of the project's SQL files: `sql/` in a checkout (editable install), or the
    copy a wheel ships as package data `pipeline.sql`."""
    checkout = Path(__file__).resolve().parent.parent / "sql"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("pipeline.sql")))


def sql_files() -> list[Path]:
    """The SQL files in load order (their numeric prefix)."""
    return sorted(p for p in sql_dir().glob("*.sql"))


def connect(store: Store | str, *, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection with one view per dataset (committed files only) and every `sql/` relation.

    Raises StoreError when there is no store at the path."""
    store = store if isinstance(store, Store) else Store(store)
    store.require()
    con = duckdb.connect(database)
    attach_views(con, store)
    return con


def attach_views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """(Re)create the dataset views from the store's current manifest, then the SQL relations."""
    manifest = store.manifest()
    store.register(con)
    for name, ds in DATASETS.items():
        con.execute(f"SET VARIABLE {name}_files = $1", [store.files(name, manifest)])
        hive = ", ".join(f"'{c}': '{t}'" for c, t in ds.partition)
        options = f", hive_partitioning = true, hive_types = {{{hive}}}" if ds.partition else ""
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
            f"getvariable('{name}_files'), union_by_name = true{options})"
        )
    for path in sql_files():
        con.execute(path.read_text())


def nodes_report(
    con: duckdb.DuckDBPyConnection,
    start: datetime | int,
    end: datetime | int,
    clouds: Sequence[str] = CLOUDS,
    failures_only: bool = False,
) -> list[NodeRow]:
    """The report rows for the half-open window [start, end), in tctl's order.

    Times are aware datetimes or integer nanoseconds since the epoch (UTC)."""
    cur = con.execute(
        "SELECT cloud, instance_key, region, is_online, epoch_ns(expiry), has_run,"
        " epoch_ns(run_time), exit_code, stdout, stderr, api_error, is_failure,"
        " user_task_id, user_task_issue, instance_id, account_id, vm_id, vm_name,"
        " resource_group, resource_id"
        " FROM discovery_nodes(make_timestamp_ns($1), make_timestamp_ns($2), $3, $4)",
        [to_ns(start), to_ns(end), list(clouds), failures_only],
    )
    return [_row(r) for r in cur.fetchall()]


def _row(r: tuple) -> NodeRow:
    from pipeline.report.rows import combine_output

    (cloud, key, region, online, expiry, has_run, run_ns, exit_code, stdout, stderr, api_error,
     is_failure, task_id, task_issue, instance_id, account_id, vm_id, vm_name, rg, rid) = r
    run = (
        RunResult(
            time_ns=run_ns,
            exit_code=exit_code,
            output=combine_output(stdout or "", stderr or ""),
            api_error=api_error or "",
            is_failure=bool(is_failure),
        )
        if has_run
        else None
    )
    return NodeRow(
        cloud=cloud, key=key, region=region or "", is_online=bool(online), expiry_ns=expiry,
        run=run, user_task_id=task_id, user_task_issue=task_issue,
        instance_id=instance_id or "", account_id=account_id or "", vm_id=vm_id or "",
        vm_name=vm_name or "", resource_group=rg or "", resource_id=rid or "",
    )


def to_ns(t: datetime | int) -> int:
    """Integer nanoseconds since the epoch for an aware datetime (naive means UTC) or an int."""
    if isinstance(t, int):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
