"""The `tctl discovery nodes` report for a window: the query's columns as a report frame
(Arrow, what the renderers take) or as `NodeRow`s.

    frame = nodes_frame(con, start, end)        # pa.Table (pipeline.report.frame), tctl's order
    rows = nodes_report(con, start, end)        # list[NodeRow], tctl's order
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import duckdb
import pyarrow as pa

from pipeline.query.nodes import CLOUDS, nodes_table
from pipeline.report import frame
from pipeline.report.rows import NodeRow


def nodes_frame(
    con: duckdb.DuckDBPyConnection,
    start: datetime | int,
    end: datetime | int,
    clouds: Sequence[str] = CLOUDS,
    failures_only: bool = False,
) -> pa.Table:
    """The report for the half-open window [start, end) as a frame, in tctl's order.

    Times are aware datetimes or integer nanoseconds since the epoch (UTC)."""
    return frame.from_query(nodes_table(con, start, end, clouds, failures_only))


def nodes_report(
    con: duckdb.DuckDBPyConnection,
    start: datetime | int,
    end: datetime | int,
    clouds: Sequence[str] = CLOUDS,
    failures_only: bool = False,
) -> list[NodeRow]:
    """The report rows for the half-open window [start, end), in tctl's order.

    Times are aware datetimes or integer nanoseconds since the epoch (UTC)."""
    table = nodes_frame(con, start, end, clouds, failures_only)
    with gc_paused():
        return frame.to_rows(table)


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
