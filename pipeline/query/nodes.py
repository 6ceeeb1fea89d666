"""The data of the `tctl discovery nodes` report for a window: one Arrow row per instance, in
tctl's order (`sql/060_discovery_nodes.sql`); `pipeline.report.nodes` turns it into rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from pipeline.timeutil import to_ns

CLOUDS = ("aws", "azure")

# column-wise (Arrow) into NodeRow fields: '' for absent text, as NodeRow's defaults
NODES_SQL = (
    "SELECT cloud, instance_key AS key, coalesce(region, '') AS region, is_online,"
    " epoch_ns(expiry) AS expiry_ns, coalesce(has_run, false) AS has_run,"
    " epoch_ns(run_time) AS run_ns, exit_code, coalesce(stdout, '') AS stdout,"
    " coalesce(stderr, '') AS stderr, coalesce(api_error, '') AS api_error,"
    " coalesce(is_failure, false) AS is_failure, user_task_id, user_task_issue,"
    " coalesce(instance_id, '') AS instance_id, coalesce(account_id, '') AS account_id,"
    " coalesce(vm_id, '') AS vm_id, coalesce(vm_name, '') AS vm_name,"
    " coalesce(resource_group, '') AS resource_group, coalesce(resource_id, '') AS resource_id"
    " FROM discovery_nodes(make_timestamp_ns($1), make_timestamp_ns($2), $3, $4)"
)


def nodes_table(
    con: duckdb.DuckDBPyConnection,
    start: datetime | int,
    end: datetime | int,
    clouds: Sequence[str] = CLOUDS,
    failures_only: bool = False,
) -> pa.Table:
    """The report's rows for the half-open window [start, end), in tctl's order, as columns.

    Times are aware datetimes or integer nanoseconds since the epoch (UTC)."""
    return con.sql(NODES_SQL, params=[to_ns(start), to_ns(end), list(clouds), failures_only]
                   ).to_arrow_table()
