"""Migrate runs/joins files of schema 1 to the current columns: one explicit, logged step.

Schema 1 kept each event's whole line in `raw`; schema 2 keeps the typed columns (as schema 1
did) and, in `extra`, only the keys no model defines. Migrating a schema-1 `runs` or `joins`
file computes `extra` from `raw` with the ingest's own expression (`layout.extra_sql`), checks
that every key of `raw` is a typed field or in `extra` and that the rows and their typed
columns are unchanged, and replaces the file in its partition. One transaction migrates every
such file, logs an `ingest_log` row of kind `migrate` (its sources: the files rewritten), stamps
the manifest's `schema_version` and rewrites the schema anchors. `maintenance.compact` runs it
first, so no rewrite drops `raw`; until then the store reads as it is (views use union_by_name).
"""

from __future__ import annotations

import duckdb

from pipeline.store import Store, StoreError
from pipeline.store.layout import (
    JOINS,
    RUNS,
    SCHEMA_VERSION,
    Dataset,
    extra_sql,
    oldest_layout,
    typed_keys,
)
from pipeline.store.write import sql_str, write_log

KINDS = {RUNS.name: "run", JOINS.name: "join"}


def older_files(con, store: Store, ds: Dataset, rels: list[str]) -> list[str]:
    """Files of `ds` (relative paths) whose columns are an older layout's, not the current."""
    if not rels:
        return []
    old = []  # one footer read per file: each file's own columns
    for rel in rels:
        cols = [(r[0], r[1]) for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({sql_str(store.path(ds.name, rel))}, "
            "hive_partitioning = false)").fetchall()]
        if cols != list(ds.columns):
            if cols not in [list(ds.columns_at(v)) for v in range(1, SCHEMA_VERSION)]:
                raise StoreError(f"{ds.name}/{rel} has columns of no known layout; "
                                 "run `discovery-history verify`")
            old.append(rel)
    return old


def _select(ds: Dataset, source: str) -> str:
    """The current columns of `ds` from a schema-1 file (`extra` from `raw`)."""
    kind = KINDS[ds.name]
    cols = [f"{extra_sql(kind, 'raw')} AS extra" if c == "extra" else f"CAST({c} AS {t}) AS {c}"
            for c, t in ds.columns]
    return f"SELECT {', '.join(cols)} FROM read_parquet({source}, hive_partitioning = false)"


def _check(con, ds: Dataset, old: str, new: str, rel: str) -> int:
    """Rows of the rewritten file; StoreError unless it holds the old file's rows, typed
    columns unchanged, and every key of each `raw` line is a typed field or in `extra`."""
    typed = ", ".join(c for c, _ in ds.columns if c != "extra")
    fields = typed_keys(KINDS[ds.name])
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM read_parquet({old})), (SELECT count(*) FROM "
        f"read_parquet({new})), (SELECT count(*) FROM (SELECT {typed} FROM read_parquet({old}) "
        f"EXCEPT ALL SELECT {typed} FROM read_parquet({new}))), (SELECT count(*) FROM "
        f"(SELECT raw, {extra_sql(KINDS[ds.name], 'raw')} AS extra FROM read_parquet({old})) "
        f"WHERE len(list_filter(json_keys(raw), lambda k: NOT list_contains({fields}, k) AND "
        f"NOT list_contains(coalesce(json_keys(extra), []), k))) > 0)").fetchall()[0]
    before, after, changed, lost = counts
    if (before, changed, lost) != (after, 0, 0):
        raise StoreError(f"migrating {ds.name}/{rel} would change its rows ({before} -> {after}"
                         f" rows, {changed} typed rows differ, {lost} lose a key); nothing was "
                         "committed")
    return after


def migrate(store: Store, *, lock_timeout: float = 60.0) -> dict:
    """Rewrite every file of an older layout in the current one and stamp the manifest, in one
    transaction logged in `ingest_log` (kind `migrate`). Returns {files, rows, from, to}; a
    store already current is left as it is (files 0)."""
    store.require()
    with store.writer(timeout=lock_timeout) as w:
        start = w.base.schema_version
        # runs/joins become current; the snapshots' layout is whatever the datasets are (full
        # copies until `discovery-history migrate`: layout 2)
        to = max(start, oldest_layout(True, w.base.datasets))
        done = {"files": 0, "rows": 0, "from": start, "to": to}
        if start >= to:
            return done
        con = duckdb.connect()
        store.register(con)
        try:
            rewritten = []
            for ds in (RUNS, JOINS):
                out = w.scratch(f"migrate-{ds.name}")
                for i, rel in enumerate(older_files(con, store, ds, w.base.datasets.get(ds.name, []))):
                    folder = rel.rsplit("/", 1)[0]
                    target = out / folder / f"part-{w.ingest_id}-m{i}.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    old = sql_str(store.path(ds.name, rel))
                    con.execute(f"COPY ({_select(ds, old)} ORDER BY time, uid) TO "
                                f"{sql_str(target)} (FORMAT parquet, COMPRESSION zstd)")
                    done["rows"] += _check(con, ds, old, sql_str(target), rel)
                    w.remove(ds.name, [rel])
                    rewritten.append(f"{ds.name}/{rel}")
                w.add_tree(ds.name, out)
            done["files"] = len(rewritten)
            w.schema_version = to
            _log(con, w, rewritten)
            w.commit()
            store.rewrite_schema_files([RUNS.name, JOINS.name])
        finally:
            con.close()
    return done


def _log(con, w, rewritten: list[str]) -> None:
    """The migration's ingest_log row: nothing read or stored, the files rewritten as sources."""
    write_log(con, w, "migrate", rewritten, files_added=len(rewritten))
