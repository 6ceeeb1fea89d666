"""`discovery-history migrate`: convert a store's node and user-task snapshots from full copies
(one copy per capture, schema 1-2) to the change history (schema 3), in one transaction.

Explicit, not on the first write: converting a large store takes minutes, scratch disk and the
writers' lock, which an hourly snapshot task must not spend unannounced. Until it runs the store
reads exactly as after it (the same conversion runs on the fly in `pipeline.query`), event
ingests go on, and a snapshot ingest says to run it. The conversion is one Writer transaction:
new files are invisible until the single manifest commit, the full copies are retired by it
(kept RETIRE_GRACE for readers that listed them), and a killed run leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

from pipeline.store.history import KINDS, from_spans, spans_sql
from pipeline.store.layout import (
    DATASETS,
    HISTORY,
    SNAPSHOT_LOG,
    legacy_in,
    oldest_layout,
)
from pipeline.store.manifest import Store, StoreError
from pipeline.store.write import sql_str, write_dataset, write_log

MEMORY_LIMIT = "1GB"  # beyond it DuckDB spills to the writer's scratch folder


def migrate(store: Store, *, lock_timeout: float = 60.0,
            say: Callable[[str], None] | None = None) -> dict:
    """Convert every full copy of the store to intervals, ends and per-capture values, drop the
    full copies, fix snapshot_log's row counts where a listing held one row twice, and log the
    conversion in ingest_log (kind `migrate`): all in one commit. Returns what was done
    (`migrated` False when there was nothing to convert)."""
    say = say or (lambda _msg: None)
    store.require()
    with store.writer(timeout=lock_timeout) as w:
        legacy = legacy_in(w.base.datasets)
        if not legacy:
            return {"migrated": False, "datasets": [], "read": 0, "stored": 0}
        both = [n for n in HISTORY if w.base.datasets.get(n)]
        if both:
            raise StoreError(f"store {store.url} holds full copies ({', '.join(legacy)}) and "
                             f"change history ({', '.join(both)}); it cannot be migrated safely")
        started = datetime.now(UTC).replace(tzinfo=None)
        con = duckdb.connect()
        try:
            store.register(con)
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory = {sql_str(w.scratch('spill'))}")
            con.execute("SET VARIABLE log_files = $1", [store.files(SNAPSHOT_LOG.name, w.base)])
            con.execute("CREATE TEMP VIEW snapshot_log AS SELECT * FROM read_parquet("
                        "getvariable('log_files'), union_by_name = true)")
            counts = {"read": 0, "stored": 0, "files": 0}
            for k in KINDS.values():
                _convert(con, store, w, k, counts, say)
            counts["files"] += _fix_log(con, store, w)
            _log(con, w, started, legacy, counts)
            # the full copies are gone; schema-1 runs/joins files are compaction's step
            w.schema_version = max(w.base.schema_version,
                                   oldest_layout(w.base.schema_version >= 2, {}))
            w.commit()
        finally:
            con.close()
    say(f"migrate: {counts['read']} rows of full copies -> {counts['stored']} kept per "
        f"capture, {counts['files']} files; full copies retired")
    return {"migrated": True, "datasets": legacy, **counts}


def _convert(con, store: Store, w, k, counts: dict, say) -> None:
    """One kind's full copies into its history datasets; the copies are retired at commit."""
    rels = w.base.datasets.get(k.legacy.name, [])
    hive = ", ".join(f"'{c}': '{t}'" for c, t in k.legacy.partition)
    con.execute("SET VARIABLE legacy_files = $1", [store.files(k.legacy.name, w.base)])
    con.execute(f"CREATE OR REPLACE TEMP VIEW legacy AS SELECT * FROM read_parquet("
                f"getvariable('legacy_files'), union_by_name = true, hive_partitioning = true, "
                f"hive_types = {{{hive}}})")
    read = con.execute("SELECT count(*) FROM legacy").fetchall()[0][0]
    say(f"migrate: {k.kind}: {read} rows in {len(rels)} files")
    con.execute(f"CREATE OR REPLACE TEMP TABLE spans_{k.kind} AS {spans_sql(k, 'legacy')}")
    stored = con.execute(f"SELECT count(*) FROM spans_{k.kind}").fetchall()[0][0]
    for name, select in from_spans(k, f"spans_{k.kind}").items():
        counts["files"] += write_dataset(con, w, DATASETS[name], select)
    w.remove(k.legacy.name, rels)
    counts["read"] += read
    counts["stored"] += stored


def _fix_log(con, store: Store, w) -> int:
    """Rewrite snapshot_log when a capture keeps fewer rows than it logged (a listing held the
    same row twice: one is kept); returns the files added."""
    con.execute("""CREATE OR REPLACE TEMP TABLE fixed_log AS
        SELECT l.* REPLACE (coalesce(k.kept, 0) AS rows), l.rows <> coalesce(k.kept, 0) AS changed
        FROM snapshot_log l LEFT JOIN (
            SELECT 'nodes' AS kind, captured_at, count(*) AS kept FROM spans_nodes GROUP BY ALL
            UNION ALL
            SELECT 'user_tasks', captured_at, count(*) FROM spans_user_tasks GROUP BY ALL
        ) k USING (kind, captured_at)""")
    if not con.execute("SELECT count(*) FILTER (WHERE changed) FROM fixed_log").fetchall()[0][0]:
        return 0
    w.remove(SNAPSHOT_LOG.name, w.base.datasets.get(SNAPSHOT_LOG.name, []))
    cols = ", ".join(SNAPSHOT_LOG.column_names)
    return write_dataset(con, w, SNAPSHOT_LOG, f"SELECT {cols} FROM fixed_log ORDER BY captured_at")


def _log(con, w, started: datetime, legacy: list[str], counts: dict) -> None:
    """The conversion's ingest_log row: read = rows of full copies, stored = rows kept."""
    counts["files"] += 1
    write_log(con, w, "migrate", legacy, started=started, read=counts["read"],
              stored=counts["stored"], duplicates=counts["read"] - counts["stored"],
              files_added=counts["files"])
