"""Store upkeep: compact small files, drop partitions past retention (`pipeline.store.verify` checks
consistency).

`compact` and `apply_retention` are single Writer transactions (all or nothing, readers see the
old or the new manifest). Local folders and object-storage stores (`s3://…`) alike.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import duckdb

from pipeline.store import Store, StoreError, uidbuild, uidindex
from pipeline.store.layout import (
    DATASETS,
    INDEXED,
    LEGACY,
    SCHEMA_VERSION,
    SNAPSHOT_LOG,
    Dataset,
    legacy_in,
)
from pipeline.store.migrate_files import migrate
from pipeline.store.write import parquet_options, sql_str, write_log

EVENT_DATASETS = ("runs", "joins")


def _partition_of(rel: str) -> str:
    """The partition folder of a manifest entry (`cloud=aws/event_date=…`), "" at the root."""
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def plain_connection(store: Store) -> duckdb.DuckDBPyConnection:
    """A bare DuckDB connection that can read the store's files (no views)."""
    con = duckdb.connect()
    store.register(con)
    return con


def dataset_files(store: Store, name: str, rels: list[str]) -> list[str]:
    """Full paths (or URLs) of a dataset's files given by their relative paths."""
    return [store.path(name, r) for r in rels]


def _by_partition(rels: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(rels):
        groups[_partition_of(rel)].append(rel)
    return groups


def stored_datasets(datasets: dict[str, list[str]]) -> dict[str, Dataset]:
    """The datasets to look after: the current ones and the legacy ones still holding files."""
    return DATASETS | {name: LEGACY[name] for name in legacy_in(datasets)}


def _select_columns(ds: Dataset) -> str:
    return ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in ds.columns)


def _order(ds: Dataset) -> str:
    names = ds.column_names
    keys = [c for c in ("time", "captured_at", "quarantined_at", "started_at", "uid",
                        "interval_id") if c in names]
    return f" ORDER BY {', '.join(keys)}" if keys else ""


def count_rows(con, files: list[str]) -> int:
    """Rows in the files (Parquet footers)."""
    con.execute("SET VARIABLE count_files = $1", [files])
    return con.execute(
        "SELECT count(*) FROM read_parquet(getvariable('count_files'), hive_partitioning = false)"
    ).fetchall()[0][0]


def compact(store: Store, *, lock_timeout: float = 60.0, rebuild_index: bool = False) -> dict:
    """Rewrite every partition holding more than one file into one file, in one transaction.
    Rows are kept exactly (checked by count before commit). Files of an older layout are first
    migrated to the current one (`pipeline.store.migrate_files`, its own logged transaction: a
    rewrite never drops a column an older layout kept). The uid index files of a dataset are merged into one
    as well (dropping entries of partitions retention removed), or, with `rebuild_index`,
    rebuilt from the data. Returns counts of the work done, `migrated` the files migrated."""
    store.require()
    summary = {"partitions": 0, "files_before": 0, "files_after": 0, "rows": 0, "migrated": 0}
    if store.manifest().schema_version < SCHEMA_VERSION:
        summary["migrated"] = migrate(store, lock_timeout=lock_timeout)["files"]
    with store.writer(timeout=lock_timeout) as w:
        con = plain_connection(store)
        try:
            for name, ds in stored_datasets(w.base.datasets).items():
                out_root = w.scratch(f"compact-{name}")
                for part, rels in _by_partition(w.base.datasets.get(name, [])).items():
                    if len(rels) < 2:
                        continue
                    files = dataset_files(store, name, rels)
                    target = out_root / part / f"part-{w.ingest_id}-0.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    con.execute("SET VARIABLE compact_files = $1", [files])
                    con.execute(
                        f"COPY (SELECT {_select_columns(ds)} FROM read_parquet("
                        "getvariable('compact_files'), hive_partitioning = false, "
                        f"union_by_name = true){_order(ds)}) TO {sql_str(target)} "
                        f"(FORMAT parquet, COMPRESSION zstd{parquet_options(ds)})")
                    before, after = count_rows(con, files), count_rows(con, [str(target)])
                    if before != after:
                        raise StoreError(f"compaction of {name}/{part} changed the row count "
                                         f"({before} -> {after}); nothing was committed")
                    w.remove(name, rels)
                    summary["partitions"] += 1
                    summary["files_before"] += len(rels)
                    summary["files_after"] += 1
                    summary["rows"] += after
                w.add_tree(name, out_root)
            if rebuild_index:
                con.execute(f"SET temp_directory = {sql_str(w.scratch('spill'))}")
                summary["indexed"] = uidbuild.build(con, w)
            for name in INDEXED:
                uidindex.compact(w, name)
            w.commit()
        finally:
            con.close()
    return summary


def apply_retention(store: Store, days: int, today: date, *, lock_timeout: float = 60.0) -> dict:
    """Drop whole partitions wholly before the cutoff `today − days` (runs, joins, quarantine,
    node expiry by day; node and user-task history by month, once the month is over), and
    snapshot_log rows of captures before it, in one transaction: an interval present at a
    capture kept is kept whole (with its first capture), one that straddles the cutoff too. Event
    rows dropped are logged in ingest_log as kind `retention` with a negative `stored`, so stored
    totals keep matching the data. Returns what was dropped."""
    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    store.require()
    cutoff = today - timedelta(days=days)
    dropped: dict[str, int] = {}
    with store.writer(timeout=lock_timeout) as w:
        con = plain_connection(store)
        try:
            event_rows, partitions = 0, []
            for name, ds in stored_datasets(w.base.datasets).items():
                for part, rels in _by_partition(w.base.datasets.get(name, [])).items():
                    end = ds.partition_end(part)
                    if end is None or end > cutoff:
                        continue
                    rows = count_rows(con, dataset_files(store, name, rels))
                    if name in EVENT_DATASETS:
                        event_rows += rows
                    dropped[name] = dropped.get(name, 0) + rows
                    partitions.append(f"{name}/{part}")
                    w.remove(name, rels)
            if w.changed:
                # the dropped days are no longer held: reports of them must not look complete
                w.uncover_before(datetime.combine(cutoff, datetime.min.time(), tzinfo=UTC))
                _rewrite_snapshot_log(con, store, w, cutoff)
                write_log(con, w, "retention", partitions, stored=-event_rows)
            w.commit()
        finally:
            con.close()
    return {"cutoff": cutoff.isoformat(), "partitions": len(partitions), "rows": dropped}


def _rewrite_snapshot_log(con, store: Store, w, cutoff: date) -> None:
    """Keep only snapshot_log rows of snapshots still stored (captured on or after `cutoff`)."""
    rels = w.base.datasets.get(SNAPSHOT_LOG.name, [])
    if not rels:
        return
    files = dataset_files(store, SNAPSHOT_LOG.name, rels)
    con.execute("SET VARIABLE log_files = $1", [files])
    stale = con.execute(
        "SELECT count(*) FROM read_parquet(getvariable('log_files')) "
        "WHERE CAST(captured_at AS DATE) < $1", [cutoff]).fetchall()[0][0]
    if not stale:
        return
    out = w.scratch("retention-snapshot_log")
    out.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT {_select_columns(SNAPSHOT_LOG)} FROM read_parquet(getvariable('log_files')) "
        "WHERE CAST(captured_at AS DATE) >= $1 ORDER BY captured_at) TO "
        f"{sql_str(out / f'part-{w.ingest_id}.parquet')} (FORMAT parquet, COMPRESSION zstd)",
        [cutoff])
    w.remove(SNAPSHOT_LOG.name, rels)
    w.add_tree(SNAPSHOT_LOG.name, out)
