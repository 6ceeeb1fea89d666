"""The `tctl discovery nodes` report rows for a window: the query's columns as `NodeRow`s.

    rows = nodes_report(con, start, end)        # list[NodeRow], tctl's order
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import duckdb

from pipeline.query.nodes import CLOUDS, nodes_table
from pipeline.report.rows import NodeRow, rows_from_columns, run_results


def nodes_report(
    con: duckdb.DuckDBPyConnection,
    start: datetime | int,
    end: datetime | int,
    clouds: Sequence[str] = CLOUDS,
    failures_only: bool = False,
) -> list[NodeRow]:
    """The report rows for the half-open window [start, end), in tctl's order.

    Times are aware datetimes or integer nanoseconds since the epoch (UTC)."""
    table = nodes_table(con, start, end, clouds, failures_only)
    with gc_paused():
        c = {name: table.column(name).to_pylist() for name in table.column_names}
        c["run"] = run_results(c["has_run"], c["run_ns"], c["exit_code"], c["stdout"],
                               c["stderr"], c["api_error"], c["is_failure"])
        return rows_from_columns(c)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building 15k acyclic rows would trigger dozens."""
    # each collection re-scans the rows made so far (and a full one everything alive): measured
    # 15-40 ms of a 100 ms report; the rows are scanned once when collection resumes
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
