"""`verify`: a read-only consistency check of a store, under the writers' lock so nothing moves
meanwhile: the manifest, each file's schema, partition folders against rows, duplicate uids, row
counts against the ingest and snapshot logs, orphans and leftover staging. Local folders and
object-storage stores alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.store import Store, uidbuild, uidindex
from pipeline.store.layout import (
    DATASETS,
    INDEXED,
    INGEST_LOG,
    ROLLUPS,
    SCHEMA_VERSION,
    SNAPSHOT_LOG,
    UID_INDEX,
    Dataset,
    derived,
)
from pipeline.store.maintenance import EVENT_DATASETS, count_rows, dataset_files, plain_connection
from pipeline.store.manifest import SCHEMA_DIR, STAGING
from pipeline.store.write import sql_str

# What each partition folder value must equal, as an expression over the file's columns.
PARTITION_EXPR = {
    "runs": {k: derived(k) for k in ("cloud", "event_date")},  # as the ingest derives them
    "joins": {"event_date": derived("event_date")},
    "quarantine": {"ingest_date": "CAST(quarantined_at AS DATE)"},
    "node_snapshots": {"capture_date": "CAST(captured_at AS DATE)"},
    "user_task_snapshots": {"capture_date": "CAST(captured_at AS DATE)"},
    "rollup_latest": {"event_month": "CAST(date_trunc('month', event_date) AS DATE)"},
    "rollup_trends": {"event_date": "CAST(bucket_start AS DATE)"},
}
MAX_LISTED = 10


def verify(store: Store, *, lock_timeout: float = 60.0) -> list[str]:
    """Every inconsistency found, one line each (empty: the store is sound). Checks the manifest,
    each file's schema against the layout, partition folder values against the rows, duplicate
    uids in runs/joins, row counts against the ingest and snapshot logs, files on disk not in the
    manifest (and the reverse), and leftover staging folders. Holds the writers' lock."""
    store.require()
    with store.locked(lock_timeout):
        manifest = store.manifest()
        problems: list[str] = []
        oldest = manifest.schema_version  # files may have any layout from this one on
        if not 1 <= oldest <= SCHEMA_VERSION:
            problems.append(f"manifest schema_version {oldest}: this version reads schema 1 to "
                            f"{SCHEMA_VERSION} (a newer discovery-history wrote the store?)")
        listing = {name: _listing(store, name) for name in [*DATASETS, UID_INDEX]}
        problems += _check_files_on_disk(store, manifest, listing)
        con = plain_connection(store)
        try:
            present = {name: [r for r in manifest.datasets.get(name, []) if r in listing[name]]
                       for name in DATASETS}
            for name, ds in DATASETS.items():
                schema_problems, bad = _check_schema(con, store, ds, present[name], oldest)
                problems += schema_problems
                present[name] = [r for r in present[name] if r not in bad]  # unreadable as rows
                problems += _guarded(f"partitions of {name}", _check_partitions, con, store, ds,
                                     present[name])
            problems += _guarded("duplicate uids", _check_duplicates, con, store, present)
            problems += _guarded("row counts", _check_counts, con, store, present)
            problems += _guarded("the uid index", _check_uid_index, con, store, manifest,
                                 present, listing[UID_INDEX])
        finally:
            con.close()
    return problems


def _listing(store: Store, name: str) -> set[str]:
    """Every file under a dataset's folder, relative to it (committed or not)."""
    if store.remote:
        base = store.fs_path(name)
        try:
            return {p[len(base) + 1:] for p in store.fs.find(base)}
        except FileNotFoundError:
            return set()
    base, found = store.root / name, set()
    for dirpath, _, filenames in os.walk(base):
        found.update(Path(dirpath, fn).relative_to(base).as_posix() for fn in filenames)
    return found


def _leftover_staging(store: Store) -> list[str]:
    if store.remote:
        try:
            return sorted(p.rsplit("/", 1)[-1]
                          for p in store.fs.ls(store.fs_path(STAGING), detail=False))
        except FileNotFoundError:
            return []
    staging = store.root / STAGING
    return sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []


def _check_files_on_disk(store: Store, manifest, listing: dict[str, set[str]]) -> list[str]:
    problems = []
    for name in listing:
        listed, on_disk = set(manifest.datasets.get(name, [])), listing[name]
        retired = {r.split("/", 1)[1] for r in manifest.retired if r.startswith(f"{name}/")}
        orphans = on_disk - listed - retired  # retired ones are kept on purpose, for a while
        for rel in sorted(orphans)[:MAX_LISTED]:
            problems.append(f"orphan file {name}/{rel}: on disk but not in the manifest")
        if len(orphans) > MAX_LISTED:
            problems.append(f"... and {len(orphans) - MAX_LISTED} more orphan files in {name}")
        for rel in sorted(listed - on_disk)[:MAX_LISTED]:
            problems.append(f"missing file {name}/{rel}: in the manifest but not on disk")
    for leftover in _leftover_staging(store):
        problems.append(f"leftover staging {STAGING}/{leftover} (a writer died; the next write "
                        "sweeps it)")
    return problems


def _guarded(what: str, check, *args) -> list[str]:
    """Run a content check; a file DuckDB cannot read becomes a problem, not a crash."""
    try:
        return check(*args)
    except (duckdb.Error, OSError, ValueError) as e:  # (Arrow's errors are ValueErrors)
        return [f"cannot check {what}: {str(e).splitlines()[0]}"]


def _check_schema(con, store: Store, ds: Dataset, rels: list[str], oldest: int = SCHEMA_VERSION
                  ) -> tuple[list[str], set[str]]:
    """Problems, and the manifest entries whose files have neither the layout's columns nor
    those of an older layout the manifest allows (schema `oldest` on, read by union_by_name)."""
    want = [(c, t) for c, t in ds.columns]
    accepted = [list(ds.columns_at(v)) for v in range(max(oldest, 1), SCHEMA_VERSION + 1)]
    schema_rel = f"{SCHEMA_DIR}/{ds.name}/{ds.placeholder_path()}"
    files = [(store.path(schema_rel), None, schema_rel)]
    if ds.name in ROLLUPS and not rels and not _exists(store, schema_rel):
        files = []  # a store from before rollups: the next write adds their schema files
    files += [(store.path(ds.name, r), r, f"{ds.name}/{r}") for r in rels]
    problems: list[str] = []
    bad: set[str] = set()
    for f, rel, shown_rel in files:
        try:
            got = [(r[0], r[1]) for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({sql_str(f)}, hive_partitioning = false)"
            ).fetchall()]
        except duckdb.Error as e:
            problems.append(f"unreadable file {shown_rel}: "
                            f"{str(e).splitlines()[0]}")
            bad.add(rel)
            continue
        if got not in accepted:
            diff = sorted(set(got) ^ set(want))
            shown = ", ".join(" ".join(d) for d in diff[:6]) or "column order"
            problems.append(f"schema mismatch in {shown_rel}: {shown}")
            bad.add(rel)
    return problems, bad


def _exists(store: Store, rel: str) -> bool:
    return store.fs.exists(store.fs_path(rel)) if store.remote else (store.root / rel).exists()


def _check_partitions(con, store: Store, ds: Dataset, rels: list[str]) -> list[str]:
    keys = [c for c, _ in ds.partition]
    problems = []
    for rel in rels:
        folders = rel.split("/")[:-1]
        names = [f.split("=", 1)[0] for f in folders]
        if names != keys:
            problems.append(f"bad partition path {ds.name}/{rel}: expected folders "
                            f"{'/'.join(k + '=…' for k in keys) or '(none)'}")
    if not keys or not rels or ds.name not in PARTITION_EXPR:
        return problems
    good = [r for r in rels if [f.split("=", 1)[0] for f in r.split("/")[:-1]] == keys]
    if not good:
        return problems
    exprs = ", ".join(f"CAST({PARTITION_EXPR[ds.name][k]} AS VARCHAR) AS {k}" for k in keys)
    con.execute("SET VARIABLE part_files = $1", [dataset_files(store, ds.name, good)])
    rows = con.execute(
        f"SELECT filename, {exprs}, count(*) FROM read_parquet(getvariable('part_files'), "
        "hive_partitioning = false, filename = true) GROUP BY ALL").fetchall()
    base = store.path(ds.name) + "/"
    for filename, *values, n in rows:
        rel = filename[len(base):] if filename.startswith(base) else filename
        folder = dict(f.split("=", 1) for f in rel.split("/")[:-1])
        for k, v in zip(keys, values, strict=True):
            if folder.get(k) != v:
                problems.append(f"partition mismatch in {ds.name}/{rel}: {n} rows have "
                                f"{k}={v}, folder says {k}={folder.get(k)}")
    return problems


def _check_duplicates(con, store: Store, present: dict[str, list[str]]) -> list[str]:
    problems = []
    for name in EVENT_DATASETS:
        if not present[name]:
            continue
        con.execute("SET VARIABLE dup_files = $1", [dataset_files(store, name, present[name])])
        dups = con.execute(
            "SELECT uid, count(*) AS n FROM read_parquet(getvariable('dup_files'), "
            "hive_partitioning = false) GROUP BY uid HAVING n > 1 ORDER BY uid").fetchall()
        for uid, n in dups[:MAX_LISTED]:
            problems.append(f"duplicate uid in {name}: {uid} stored {n} times")
        if len(dups) > MAX_LISTED:
            problems.append(f"... and {len(dups) - MAX_LISTED} more duplicate uids in {name}")
    return problems


def _rows(con, store: Store, name: str, rels: list[str]) -> int:
    return count_rows(con, dataset_files(store, name, rels)) if rels else 0


def _check_counts(con, store: Store, present: dict[str, list[str]]) -> list[str]:
    problems = []
    log = present[INGEST_LOG.name]
    if log:
        con.execute("SET VARIABLE log_files = $1", [dataset_files(store, INGEST_LOG.name, log)])
        logged = con.execute(
            "SELECT coalesce(sum(stored), 0) FROM read_parquet(getvariable('log_files')) "
            "WHERE kind IN ('events', 'retention')").fetchall()[0][0]
    else:
        logged = 0
    stored = sum(_rows(con, store, n, present[n]) for n in EVENT_DATASETS)
    if stored != logged:
        problems.append(f"row count mismatch: runs + joins hold {stored} rows, ingest_log "
                        f"records {logged} stored")
    snaps = present[SNAPSHOT_LOG.name]
    by_kind: dict[str, int] = {}
    if snaps:
        con.execute("SET VARIABLE snap_files = $1", [dataset_files(store, SNAPSHOT_LOG.name, snaps)])
        by_kind = dict(con.execute(
            "SELECT kind, sum(rows) FROM read_parquet(getvariable('snap_files')) GROUP BY kind"
        ).fetchall())
    for kind, name in (("nodes", "node_snapshots"), ("user_tasks", "user_task_snapshots")):
        have, want = _rows(con, store, name, present[name]), int(by_kind.get(kind, 0) or 0)
        if have != want:
            problems.append(f"row count mismatch: {name} holds {have} rows, snapshot_log "
                            f"records {want}")
    return problems


def _check_uid_index(con, store: Store, manifest, present: dict[str, list[str]],
                     on_disk: set[str]) -> list[str]:
    """While the manifest vouches for the uid index: every stored event has an entry naming
    its partition, and each index file is sorted. (Entries of partitions no longer stored are
    allowed: a lookup confirms its hits against the data.)"""
    import tempfile

    import numpy as np

    if manifest.uid_index != uidindex.FORMAT:
        return []  # not built yet (a store from before the index): the next ingest builds it
    problems = []
    with tempfile.TemporaryDirectory(prefix="discovery-history-verify-") as tmp:
        for name in INDEXED:
            files = [r for r in uidindex.files_of(manifest, name) if r in on_disk]
            for rel in files:
                f = uidindex.open_file(uidindex.local_copy(store, rel, Path(tmp)))
                flat = np.concatenate(f.hashes) if f.hashes else np.empty(0, np.uint64)
                if len(flat) != uidindex.rows_of(rel) or (flat[1:] < flat[:-1]).any():
                    problems.append(f"uid index file {UID_INDEX}/{rel} is damaged (unsorted, or "
                                    "not the rows its name says)")
            if not present[name]:
                continue
            con.register("uid_index_entries", uidbuild.read_all(store, manifest, name, Path(tmp)))
            con.execute("SET VARIABLE uid_index_data = $1",
                        [dataset_files(store, name, present[name])])
            n, example = con.execute(
                f"SELECT count(*), min(d.part) FROM ({uidbuild.data_sql(store, name)}) d "
                "ANTI JOIN uid_index_entries i ON i.uid_hash = d.uid_hash "
                "AND CAST(i.part AS VARCHAR) = d.part").fetchall()[0]
            con.unregister("uid_index_entries")
            if n:
                problems.append(f"uid index of {name} lacks {n} stored uids (e.g. in {example}); "
                                "copies of them would be stored again (rebuild it: "
                                "`discovery-history compact --rebuild-index`)")
    return problems
