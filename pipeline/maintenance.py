"""Store upkeep: compact small files, drop partitions past retention, verify consistency.

`compact` and `apply_retention` are single Writer transactions (all or nothing, readers see the
old or the new manifest); `verify` only reads, under the writers' lock so nothing moves meanwhile.
Local folders and object-storage stores (`s3://…`) alike.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from pipeline.ingest.events import derived
from pipeline.store import Store, StoreError, remote
from pipeline.store.layout import DATASETS, INGEST_LOG, SCHEMA_VERSION, SNAPSHOT_LOG, Dataset
from pipeline.store.manifest import LOCK, SCHEMA_DIR, STAGING, StoreLocked, _locked

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
EVENT_DATASETS = ("runs", "joins")
MAX_LISTED = 10


def _sq(s: str) -> str:
    return s.replace("'", "''")


def _partition_of(rel: str) -> str:
    """The partition folder of a manifest entry (`cloud=aws/event_date=…`), "" at the root."""
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _connect(store: Store) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    store.register(con)
    return con


def _files(store: Store, name: str, rels: list[str]) -> list[str]:
    return [store.path(name, r) for r in rels]


def _by_partition(rels: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(rels):
        groups[_partition_of(rel)].append(rel)
    return groups


def _select_columns(ds: Dataset) -> str:
    return ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in ds.columns)


def _order(ds: Dataset) -> str:
    names = ds.column_names
    keys = [c for c in ("time", "captured_at", "quarantined_at", "started_at", "uid") if c in names]
    return f" ORDER BY {', '.join(keys)}" if keys else ""


def _count(con, files: list[str]) -> int:
    con.execute("SET VARIABLE count_files = $1", [files])
    return con.execute(
        "SELECT count(*) FROM read_parquet(getvariable('count_files'), hive_partitioning = false)"
    ).fetchall()[0][0]


def compact(store: Store, *, lock_timeout: float = 60.0) -> dict:
    """Rewrite every partition holding more than one file into one file, in one transaction.
    Rows are kept exactly (checked by count before commit). Returns counts of the work done."""
    store.require()
    summary = {"partitions": 0, "files_before": 0, "files_after": 0, "rows": 0}
    with store.writer(timeout=lock_timeout) as w:
        con = _connect(store)
        try:
            for name, ds in DATASETS.items():
                out_root = w.scratch(f"compact-{name}")
                for part, rels in _by_partition(w.base.datasets.get(name, [])).items():
                    if len(rels) < 2:
                        continue
                    files = _files(store, name, rels)
                    target = out_root / part / f"part-{w.ingest_id}-0.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    con.execute("SET VARIABLE compact_files = $1", [files])
                    con.execute(
                        f"COPY (SELECT {_select_columns(ds)} FROM read_parquet("
                        "getvariable('compact_files'), hive_partitioning = false, "
                        f"union_by_name = true){_order(ds)}) TO '{_sq(str(target))}' "
                        "(FORMAT parquet, COMPRESSION zstd)")
                    before, after = _count(con, files), _count(con, [str(target)])
                    if before != after:
                        raise StoreError(f"compaction of {name}/{part} changed the row count "
                                         f"({before} -> {after}); nothing was committed")
                    w.remove(name, rels)
                    summary["partitions"] += 1
                    summary["files_before"] += len(rels)
                    summary["files_after"] += 1
                    summary["rows"] += after
                w.add_tree(name, out_root)
            w.commit()
        finally:
            con.close()
    return summary


def _date_of(part: str, ds: Dataset) -> date | None:
    """The DATE partition value of a partition folder (None: the dataset has none)."""
    values = dict(p.split("=", 1) for p in part.split("/") if "=" in p)
    for col, typ in ds.partition:
        if typ == "DATE" and col in values:
            return date.fromisoformat(values[col])
    return None


def apply_retention(store: Store, days: int, today: date, *, lock_timeout: float = 60.0) -> dict:
    """Drop whole partitions dated before `today − days` (runs, joins, quarantine, snapshots),
    and snapshot_log rows of dropped snapshots, in one transaction. Event rows dropped are
    logged in ingest_log as kind `retention` with a negative `stored`, so stored totals keep
    matching the data. Returns what was dropped."""
    import pyarrow as pa

    from pipeline.ingest.events import write_table

    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    store.require()
    cutoff = today - timedelta(days=days)
    dropped: dict[str, int] = {}
    with store.writer(timeout=lock_timeout) as w:
        con = _connect(store)
        try:
            event_rows, partitions = 0, []
            for name, ds in DATASETS.items():
                for part, rels in _by_partition(w.base.datasets.get(name, [])).items():
                    day = _date_of(part, ds)
                    if day is None or day >= cutoff:
                        continue
                    rows = _count(con, _files(store, name, rels))
                    if name in EVENT_DATASETS:
                        event_rows += rows
                    dropped[name] = dropped.get(name, 0) + rows
                    partitions.append(f"{name}/{part}")
                    w.remove(name, rels)
            if w.changed:
                _rewrite_snapshot_log(con, store, w, cutoff)
                now = datetime.now(UTC).replace(tzinfo=None)
                write_table(con, w, INGEST_LOG, pa.table({
                    "ingest_id": [w.ingest_id], "kind": ["retention"],
                    "started_at": pa.array([now], pa.timestamp("ns")),
                    "finished_at": pa.array([now], pa.timestamp("ns")),
                    "sources": pa.array([partitions], pa.list_(pa.string())),
                    "read": [0], "stored": [-event_rows], "duplicates": [0], "skipped": [0],
                    "quarantined": [0], "files_added": [0]}))
            w.commit()
        finally:
            con.close()
    return {"cutoff": cutoff.isoformat(), "partitions": len(partitions), "rows": dropped}


def _rewrite_snapshot_log(con, store: Store, w, cutoff: date) -> None:
    """Keep only snapshot_log rows of snapshots still stored (captured on or after `cutoff`)."""
    rels = w.base.datasets.get(SNAPSHOT_LOG.name, [])
    if not rels:
        return
    files = _files(store, SNAPSHOT_LOG.name, rels)
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
        f"'{_sq(str(out / f'part-{w.ingest_id}.parquet'))}' (FORMAT parquet, COMPRESSION zstd)",
        [cutoff])
    w.remove(SNAPSHOT_LOG.name, rels)
    w.add_tree(SNAPSHOT_LOG.name, out)


# --- verify ---------------------------------------------------------------------------------


def verify(store: Store, *, lock_timeout: float = 60.0) -> list[str]:
    """Every inconsistency found, one line each (empty: the store is sound). Checks the manifest,
    each file's schema against the layout, partition folder values against the rows, duplicate
    uids in runs/joins, row counts against the ingest and snapshot logs, files on disk not in the
    manifest (and the reverse), and leftover staging folders. Holds the writers' lock."""
    store.require()
    with _lock(store, lock_timeout):
        manifest = store.manifest()
        problems: list[str] = []
        if manifest.schema_version != SCHEMA_VERSION:
            problems.append(f"manifest schema_version {manifest.schema_version}, "
                            f"code expects {SCHEMA_VERSION}")
        listing = {name: _listing(store, name) for name in DATASETS}
        problems += _check_files_on_disk(store, manifest, listing)
        con = _connect(store)
        try:
            present = {name: [r for r in manifest.datasets.get(name, []) if r in listing[name]]
                       for name in DATASETS}
            for name, ds in DATASETS.items():
                schema_problems, bad = _check_schema(con, store, ds, present[name])
                problems += schema_problems
                present[name] = [r for r in present[name] if r not in bad]  # unreadable as rows
                problems += _guarded(f"partitions of {name}", _check_partitions, con, store, ds,
                                     present[name])
            problems += _guarded("duplicate uids", _check_duplicates, con, store, present)
            problems += _guarded("row counts", _check_counts, con, store, present)
        finally:
            con.close()
    return problems


def _lock(store: Store, timeout: float):
    """The writers' lock of a local or an object-storage store."""
    if store.remote:
        return remote.locked(store.fs, f"{store._base}/{LOCK}", timeout, StoreLocked)
    return _locked(store.root / LOCK, timeout)


def _listing(store: Store, name: str) -> set[str]:
    """Every file under a dataset's folder, relative to it (committed or not)."""
    if store.remote:
        base = f"{store._base}/{name}"
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
                          for p in store.fs.ls(f"{store._base}/{STAGING}", detail=False))
        except FileNotFoundError:
            return []
    staging = store.root / STAGING
    return sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []


def _check_files_on_disk(store: Store, manifest, listing: dict[str, set[str]]) -> list[str]:
    problems = []
    for name in DATASETS:
        listed, on_disk = set(manifest.datasets.get(name, [])), listing[name]
        for rel in sorted(on_disk - listed)[:MAX_LISTED]:
            problems.append(f"orphan file {name}/{rel}: on disk but not in the manifest")
        if len(on_disk - listed) > MAX_LISTED:
            problems.append(f"... and {len(on_disk - listed) - MAX_LISTED} more orphan files in {name}")
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
    except duckdb.Error as e:
        return [f"cannot check {what}: {str(e).splitlines()[0]}"]


def _check_schema(con, store: Store, ds: Dataset, rels: list[str]) -> tuple[list[str], set[str]]:
    """Problems, and the manifest entries whose files do not have the layout's columns."""
    want = [(c, t) for c, t in ds.columns]
    schema_rel = f"{SCHEMA_DIR}/{ds.name}/{ds.placeholder_path()}"
    files = [(store.path(schema_rel), None, schema_rel)]
    files += [(store.path(ds.name, r), r, f"{ds.name}/{r}") for r in rels]
    problems: list[str] = []
    bad: set[str] = set()
    for f, rel, shown_rel in files:
        try:
            got = [(r[0], r[1]) for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{_sq(f)}', hive_partitioning = false)"
            ).fetchall()]
        except duckdb.Error as e:
            problems.append(f"unreadable file {shown_rel}: "
                            f"{str(e).splitlines()[0]}")
            bad.add(rel)
            continue
        if got != want:
            diff = sorted(set(got) ^ set(want))
            shown = ", ".join(" ".join(d) for d in diff[:6]) or "column order"
            problems.append(f"schema mismatch in {shown_rel}: {shown}")
            bad.add(rel)
    return problems, bad


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
    con.execute("SET VARIABLE part_files = $1", [_files(store, ds.name, good)])
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
        con.execute("SET VARIABLE dup_files = $1", [_files(store, name, present[name])])
        dups = con.execute(
            "SELECT uid, count(*) AS n FROM read_parquet(getvariable('dup_files'), "
            "hive_partitioning = false) GROUP BY uid HAVING n > 1 ORDER BY uid").fetchall()
        for uid, n in dups[:MAX_LISTED]:
            problems.append(f"duplicate uid in {name}: {uid} stored {n} times")
        if len(dups) > MAX_LISTED:
            problems.append(f"... and {len(dups) - MAX_LISTED} more duplicate uids in {name}")
    return problems


def _rows(con, store: Store, name: str, rels: list[str]) -> int:
    return _count(con, _files(store, name, rels)) if rels else 0


def _check_counts(con, store: Store, present: dict[str, list[str]]) -> list[str]:
    problems = []
    log = present[INGEST_LOG.name]
    if log:
        con.execute("SET VARIABLE log_files = $1", [_files(store, INGEST_LOG.name, log)])
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
        con.execute("SET VARIABLE snap_files = $1", [_files(store, SNAPSHOT_LOG.name, snaps)])
        by_kind = dict(con.execute(
            "SELECT kind, sum(rows) FROM read_parquet(getvariable('snap_files')) GROUP BY kind"
        ).fetchall())
    for kind, name in (("nodes", "node_snapshots"), ("user_tasks", "user_task_snapshots")):
        have, want = _rows(con, store, name, present[name]), int(by_kind.get(kind, 0) or 0)
        if have != want:
            problems.append(f"row count mismatch: {name} holds {have} rows, snapshot_log "
                            f"records {want}")
    return problems
