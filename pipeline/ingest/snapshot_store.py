"""Store one node or user-task capture as changes against the previous capture of its kind:
the intervals it opens, the intervals it ends, the month's carried-over intervals at a month's
first capture, and its per-capture values (`pipeline.store.history` describes the layout).

Runs inside the snapshot ingest's writer (one commit with its snapshot_log and ingest_log rows).
Captures of a kind must come in time order: an older capture than the newest stored one would
split intervals already written, and is refused (StoreError), as is a store that still holds
full copies (schema 1-2: `discovery-history migrate` converts it first).
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.store import StoreError
from pipeline.store.history import KINDS, Kind, period_of
from pipeline.store.layout import legacy_in
from pipeline.store.manifest import Writer
from pipeline.store.write import write_dataset
from pipeline.timeutil import ns_to_datetime


class CaptureOutOfOrder(StoreError):
    """A capture older than the newest stored one of its kind: the history is kept as changes
    against the previous capture, so it cannot be inserted before it."""


def previous_capture(con, w: Writer, kind: str, at_ns: int) -> int | None:
    """The newest stored capture of `kind` (epoch ns; None before the first), with the log files
    in the variable `log_files`. Raises CaptureOutOfOrder when `at_ns` cannot follow it,
    StoreError when the store still holds full copies."""
    legacy = legacy_in(w.base.datasets)
    if legacy:
        raise StoreError(
            f"store {w.store.url} holds snapshots as full copies ({', '.join(legacy)}, schema "
            f"{w.base.schema_version}): run `discovery-history migrate` once to convert them to "
            "the change history, then ingest snapshots again")
    newest = con.execute("SELECT epoch_ns(max(captured_at)) FROM read_parquet("
                         "getvariable('log_files')) WHERE kind = $1", [kind]).fetchall()[0][0]
    if newest is not None and at_ns < newest:
        raise CaptureOutOfOrder(
            f"{kind} snapshot at {_rfc3339(at_ns)} is older than the newest stored one "
            f"({_rfc3339(newest)}); snapshots are stored as changes and must be ingested in "
            "capture order")
    return newest


def write_capture(con, w: Writer, kind: str, rows: pa.Table, at_ns: int,
                  previous: int | None) -> tuple[int, int]:
    """Write the capture `rows` (the legacy dataset's columns: a full copy) taken at `at_ns` as
    changes against `previous` (from `previous_capture`). Returns (rows kept: one per identity,
    files added)."""
    k = KINDS[kind]
    rows = rows.append_column("row_no", pa.array(range(len(rows)), pa.int64()))
    con.register("capture_in", rows)
    try:
        kept = _match(con, w, k, at_ns, previous)
    finally:
        con.unregister("capture_in")
    period, at = period_of(at_ns), f"make_timestamp_ns({at_ns})"
    hist = ", ".join(c for c, _ in k.history.columns)
    opened = f"SELECT {hist} FROM capture_ids WHERE first_seen = {at}"  # the intervals opened
    if previous is not None and period_of(previous) != period:
        # a month's first capture carries the open ones over, raw as first captured
        opened += (f" UNION ALL SELECT {', '.join(f'i.{c}' for c, _ in k.history.columns[:-1])}"
                   ", h.raw FROM capture_ids i JOIN read_parquet(getvariable('history_files'), "
                   f"hive_partitioning = false) h USING (interval_id) WHERE i.first_seen < {at}")
    parts = {  # dataset -> the SELECT of its new rows (columns, then partition keys)
        k.history: f"SELECT *, DATE '{period}' AS period FROM ({opened})",
    }
    if previous is not None:
        parts[k.ends] = (f"SELECT interval_id, make_timestamp_ns({previous}) AS last_seen, "
                         f"DATE '{period_of(previous)}' AS period FROM capture_gone")
    if k.expiry is not None:
        parts[k.expiry] = (f"SELECT {at} AS captured_at, interval_id, epoch_ns(expires) - "
                           f"{at_ns} AS expires_offset, CAST({at} AS DATE) AS capture_date "
                           "FROM capture_ids ORDER BY interval_id")
    # a partitioned COPY of no rows writes no file
    added = sum(write_dataset(con, w, ds, select) for ds, select in parts.items())
    return kept, added


def _match(con, w: Writer, k: Kind, at_ns: int, previous: int | None) -> int:
    """Match the capture (the registered `capture_in`) with the intervals open at `previous`,
    in one join: TEMP TABLEs capture_ids (each identity kept with its interval: continued, or
    new with the next ids and its raw) and capture_gone (the intervals it ends). Returns the
    identities kept."""
    ids = k.ids()
    # one row per identity; only identities listed more than once are sorted; raw stays behind
    con.execute(f"""CREATE OR REPLACE TEMP TABLE capture AS
        WITH hash_rows AS (SELECT *, hash({ids}) AS id_hash FROM capture_in),
        find_repeated AS (SELECT id_hash FROM hash_rows GROUP BY ALL HAVING count(*) > 1)
        SELECT * EXCLUDE (id_hash, raw) FROM hash_rows
        WHERE id_hash NOT IN (SELECT id_hash FROM find_repeated)
        UNION ALL
        SELECT * EXCLUDE (id_hash, raw) FROM (
            SELECT * FROM hash_rows WHERE id_hash IN (SELECT id_hash FROM find_repeated)
            QUALIFY row_number() OVER (PARTITION BY {ids} ORDER BY {k.pick}) = 1)""")
    _open_intervals(con, w, k, previous)
    next_id = _next_id(con, w, k)
    at = f"make_timestamp_ns({at_ns})"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE capture_matched AS
        SELECT c.*, o.interval_id AS open_id, o.first_seen AS open_first_seen
        FROM capture c FULL OUTER JOIN open_intervals o ON {k.same('c', 'o')}""")
    con.execute("CREATE OR REPLACE TEMP TABLE capture_gone AS SELECT open_id AS interval_id "
                "FROM capture_matched WHERE row_no IS NULL")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE capture_ids AS
        SELECT * EXCLUDE (open_id, open_first_seen), open_id AS interval_id,
               open_first_seen AS first_seen, NULL::VARCHAR AS raw
        FROM capture_matched WHERE row_no IS NOT NULL AND open_id IS NOT NULL
        UNION ALL BY NAME
        SELECT m.* EXCLUDE (open_id, open_first_seen),
               {next_id} + row_number() OVER (ORDER BY {k.ids('m')}) - 1 AS interval_id,
               {at} AS first_seen, i.raw
        FROM capture_matched m JOIN capture_in i USING (row_no)
        WHERE m.row_no IS NOT NULL AND m.open_id IS NULL""")
    return con.execute("SELECT count(*) FROM capture").fetchall()[0][0]


def _open_intervals(con, w: Writer, k: Kind, previous: int | None) -> None:
    """TEMP TABLE open_intervals: the intervals present in the previous capture (none before
    the first): its period's rows without an end (all columns but raw). The variable
    `history_files` lists that period's files."""
    cols = ", ".join(c for c, _ in k.history.columns if c != "raw")
    if previous is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE open_intervals AS SELECT {cols} FROM "
                    f"({k.history.empty_select()})")
        return
    folder = f"period={period_of(previous)}/"
    history = _files(w, k.history.name, folder)
    ends = _files(w, k.ends.name, folder)
    con.execute("SET VARIABLE history_files = $1", [history])
    con.execute("SET VARIABLE ends_files = $1", [ends])
    con.execute(f"""CREATE OR REPLACE TEMP TABLE open_intervals AS
        SELECT {cols} FROM read_parquet(getvariable('history_files'), hive_partitioning = false)
        WHERE interval_id NOT IN (SELECT interval_id FROM read_parquet(getvariable('ends_files'),
                                                                       hive_partitioning = false))""")


def _next_id(con, w: Writer, k: Kind) -> int:
    """The first interval id not used by any stored interval of the kind."""
    con.execute("SET VARIABLE all_history = $1", [_files(w, k.history.name)])
    return con.execute("SELECT coalesce(max(interval_id) + 1, 0) FROM read_parquet("
                       "getvariable('all_history'), hive_partitioning = false)").fetchall()[0][0]


def _files(w: Writer, dataset: str, folder: str = "") -> list[str]:
    """The committed files of `dataset` under `folder`, after its zero-row schema file."""
    store = w.store
    return [store.schema_file(dataset)] + [store.path(dataset, rel) for rel in
                                           w.base.datasets.get(dataset, [])
                                           if rel.startswith(folder)]


def _rfc3339(ns: int) -> str:
    frac = f".{ns % 10**9:09d}".rstrip("0").rstrip(".")
    return f"{ns_to_datetime(ns - ns % 10**9):%Y-%m-%dT%H:%M:%S}{frac}Z"
