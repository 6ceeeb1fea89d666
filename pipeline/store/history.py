"""Snapshot history as changes: the two kinds (nodes, user tasks), what identifies a row of each
across captures, and full copies (the layout before schema 3) turned into intervals.

A snapshot ingest (`pipeline.ingest.snapshot_store`) appends the changes of one capture; the
conversion here computes the same rows from every capture at once, for `migrate` and for reading
a store that still holds full copies. Both number intervals alike (by first capture, then
identity), so a migrated store and one ingested capture by capture hold the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from pipeline.store.layout import (
    NODE_EXPIRY,
    NODE_HISTORY,
    NODE_HISTORY_ENDS,
    NODE_IDENTITY,
    NODE_SNAPSHOTS,
    USER_TASK_HISTORY,
    USER_TASK_HISTORY_ENDS,
    USER_TASK_IDENTITY,
    USER_TASK_SNAPSHOTS,
    Dataset,
)


@dataclass(frozen=True)
class Kind:
    """One kind of snapshot (`snapshot_log.kind`) and the datasets that keep its history."""

    kind: str
    history: Dataset
    ends: Dataset
    legacy: Dataset  # the full copies of schema 1-2
    identity: tuple[str, ...]  # equal in two captures: the same interval goes on
    expiry: Dataset | None = None  # per-capture values (nodes: expires)
    # which of several rows with one identity in one capture is kept: the one the relations
    # would pick (online_nodes: the latest expiry), then a stable order
    pick: str = "raw"

    def ids(self, alias: str = "") -> str:
        """The identity columns, comma separated (each prefixed with `alias.`)."""
        return ", ".join(f"{alias}.{c}" if alias else c for c in self.identity)

    def same(self, a: str, b: str) -> str:
        """SQL: rows `a` and `b` have the same identity (NULL equals NULL)."""
        return " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in self.identity)


NODES = Kind("nodes", NODE_HISTORY, NODE_HISTORY_ENDS, NODE_SNAPSHOTS,
             tuple(c for c, _ in NODE_IDENTITY), NODE_EXPIRY, "expires DESC NULLS LAST, raw")
USER_TASKS = Kind("user_tasks", USER_TASK_HISTORY, USER_TASK_HISTORY_ENDS, USER_TASK_SNAPSHOTS,
                  tuple(c for c, _ in USER_TASK_IDENTITY))
KINDS = {k.kind: k for k in (NODES, USER_TASKS)}


def period_of(ns: int) -> date:
    """The period (first day of the UTC month) of a capture time in epoch nanoseconds."""
    return datetime.fromtimestamp(ns // 10**9, UTC).date().replace(day=1)


def spans_sql(k: Kind, source: str, log: str = "snapshot_log") -> str:
    """SELECT, from full copies `source` (the legacy columns) and the captures of `log`: one row
    per identity per capture it appears in (the kept one), with its interval: `interval_id`,
    `first_seen`, `last_seen` (its last capture) and `raw` as first captured."""
    ids = k.ids()
    return f"""
WITH number_captures AS (
    SELECT captured_at, row_number() OVER (ORDER BY captured_at) AS seq
    FROM (SELECT DISTINCT captured_at FROM {log} WHERE kind = '{k.kind}')
),
pick_rows AS (
    SELECT * FROM {source}
    QUALIFY row_number() OVER (PARTITION BY captured_at, {ids} ORDER BY {k.pick}) = 1
),
find_islands AS (
    SELECT p.* EXCLUDE (raw, capture_date), p.raw AS row_raw,
           c.seq - row_number() OVER (PARTITION BY {ids} ORDER BY c.seq) AS island
    FROM pick_rows p JOIN number_captures c USING (captured_at)
),
span_islands AS (
    SELECT *,
           min(captured_at) OVER (PARTITION BY {ids}, island) AS first_seen,
           max(captured_at) OVER (PARTITION BY {ids}, island) AS last_seen,
           first_value(row_raw) OVER (PARTITION BY {ids}, island ORDER BY captured_at) AS raw
    FROM find_islands
)
SELECT * EXCLUDE (island, row_raw),
       dense_rank() OVER (ORDER BY first_seen, {ids}) - 1 AS interval_id
FROM span_islands"""


def from_spans(k: Kind, spans: str, log: str = "snapshot_log") -> dict[str, str]:
    """SELECTs of each history dataset's rows (columns, then partition keys) from `spans` (the
    rows of `spans_sql`), by dataset name."""
    cols = ", ".join(c for c, _ in k.history.columns)
    out = {
        k.history.name: f"SELECT DISTINCT {cols}, CAST(date_trunc('month', captured_at) AS DATE)"
                        f" AS period FROM {spans}",
        k.ends.name: f"SELECT DISTINCT interval_id, last_seen, CAST(date_trunc('month', last_seen)"
                     f" AS DATE) AS period FROM {spans} WHERE last_seen < (SELECT max(captured_at)"
                     f" FROM {log} WHERE kind = '{k.kind}')",
    }
    if k.expiry is not None:
        out[k.expiry.name] = (
            "SELECT captured_at, interval_id, epoch_ns(expires) - epoch_ns(captured_at) AS "
            f"expires_offset, CAST(captured_at AS DATE) AS capture_date FROM {spans}")
    return out


def legacy_views(con, k: Kind, source: str) -> None:
    """Define the history datasets' views of `k` over full copies `source` (a relation with the
    legacy columns): a store not yet migrated reads exactly as if it had been."""
    spans = f"legacy_{k.kind}_spans"
    con.execute(f"CREATE OR REPLACE VIEW {spans} AS {spans_sql(k, source)}")
    for name, select in from_spans(k, spans).items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {select}")
