"""Ingest audit events into the store: stream, validate in bulk, dedup on uid, commit atomically.

Pass 1 (`staging`) runs every line through the bulk validator (`stage.stage_sql`) and writes the
verdicts and typed fields to scratch Parquet. Pass 2 judges each uid against the input and the
store (narrow columns only; the uid index names where the store may hold it). Pass 3 writes the
fresh rows into the store's partitions, one plain COPY per partition, and their uid index
entries; one manifest commit publishes them with the quarantine and the ingest log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from pipeline import models
from pipeline.ingest import staging
from pipeline.ingest.dedup import judge
from pipeline.sources.base import Source, resolve
from pipeline.store import Store, uidbuild, uidindex
from pipeline.store.layout import JOINS, QUARANTINE, RUNS, derived
from pipeline.store.manifest import Writer
from pipeline.store.write import copy_partition, sql_str, write_dataset, write_log

Progress = Callable[[str, int], None]


@dataclass
class IngestSummary:
    """What one ingest did; `read == stored + duplicates + skipped + quarantined` always."""

    ingest_id: str
    sources: list[str] = field(default_factory=list)
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    quarantined: int = 0
    runs: int = 0
    joins: int = 0
    conflicts: int = 0
    files_added: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.stored + self.duplicates + self.skipped + self.quarantined

    def conservation_line(self) -> str:
        """The one line every ingest prints."""
        return (
            f"read {self.read} = stored {self.stored} + duplicates {self.duplicates}"
            f" + skipped {self.skipped} + quarantined {self.quarantined}"
            + ("" if self.balanced else "  (MISMATCH: please report)")
        )

    def to_dict(self) -> dict:
        return asdict(self)


def ingest_events(
    store: Store,
    paths: Sequence[str | Source],
    *,
    window: tuple[datetime, datetime] | None = None,
    record_coverage: bool = False,
    progress: Progress | None = None,
    lock_timeout: float = 60.0,
    time_key: str = models.DEFAULT_TIME_KEY,
) -> IngestSummary:
    """Read every event under `paths` (files, folders, globs, URLs, or Source objects such as
    `sources.dynamo.dynamo_days(...)`) into the store. Events outside the half-open `window`
    [start, end), if given, are skipped. Re-ingesting the same input stores nothing new.
    A record's time is its `time_key`, else its `time`, else the Fluentd time column of its
    line (Fluentd's out_file format); a record with none is quarantined.

    With `record_coverage`, the commit also records `window` as held whole by the store (the
    watermark reports wait for, `pipeline.store.coverage`): pass it only when `paths` are every
    source that can hold events of the window, as the scheduled ingest's are."""
    if record_coverage and window is None:
        raise ValueError("record_coverage needs the window the paths cover")
    files = resolve(paths)
    with store.writer(timeout=lock_timeout) as w:
        summary = IngestSummary(ingest_id=w.ingest_id, sources=[f.name for f in files])
        con = scratch_connection(w)
        store.register(con)
        try:
            uidbuild.ensure(con, w)  # a store written before the index: built once, here
            # bounded batches, each judged against the store and what earlier ones wrote
            for batch in staging.batches(files):
                staged = staging.stage_all(con, w, batch, progress, time_key)
                summary.read += staged.read
                staging.define_staged(con, staged, window)
                for ds, kind in ((RUNS, "run"), (JOINS, "join")):
                    v = judge(con, store, w, ds, kind)
                    summary.duplicates += v.duplicates
                    summary.conflicts += v.conflicts
                    summary.stored += v.fresh
                    setattr(summary, f"{kind}s", getattr(summary, f"{kind}s") + v.fresh)
                    if v.fresh:
                        summary.files_added += _write_fresh(con, w, ds, kind)
                        _index_fresh(con, w, ds, kind)
                summary.skipped += _count(con, "kind IN ('skip', 'blank')")
                summary.quarantined += _store_quarantine(con, w, store, summary, files, time_key)
                staging.drop(staged)
            # the index tiers, merged once, beside no batch's tables (a new connection logs)
            con.close()
            for ds in (RUNS, JOINS):
                uidindex.merge_tiers(w, ds.name, uidindex.live_parts(w, ds.name))
            con = scratch_connection(w)
            if record_coverage:
                w.cover(*window)
            if w.changed:
                log_ingest(con, w, summary, "events")
            w.commit()
        finally:
            con.close()
    return summary


def scratch_connection(w: Writer) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded in memory, spilling into the writer's scratch folder."""
    con = duckdb.connect()
    con.execute("SET memory_limit = '512MB'")
    con.execute("SET preserve_insertion_order = false")
    # partitioned COPY buffers this many rows per partition: wide rows need a small number
    con.execute("SET partitioned_write_flush_threshold = 32768")
    con.execute(f"SET temp_directory = {sql_str(w.scratch('spill'))}")
    return con


def _count(con, where: str) -> int:
    return con.execute(f"SELECT count(*) FROM staged WHERE {where}").fetchall()[0][0]


def _fresh_rows(ds, kind: str, w: Writer) -> str:
    cols = ", ".join(f"{sql_str(w.ingest_id) if c == 'ingest_id' else derived(c)} AS {c}"
                     for c, _ in ds.columns + ds.partition)
    # anti-join the (usually few) rows that are not fresh: cheaper than joining the fresh ones
    return (f"SELECT {cols} FROM staged ANTI JOIN verdict_{kind} f USING (source, line_no) "
            f"WHERE kind = '{kind}'")


def _write_fresh(con, w: Writer, ds, kind: str) -> int:
    """Pass 3: the fresh rows into their partitions, one plain COPY per partition (a
    partitioned COPY spills and costs twice as much here), `staging.WORKERS` at a time; the staged row
    groups of other days are skipped by their statistics on the plain column `event_date`."""
    keys = [c for c, _ in ds.partition]
    parts = con.execute(f"SELECT DISTINCT {', '.join(keys)} FROM judged ORDER BY ALL").fetchall()
    # staged.event_date, a plain column (not derived from time): its statistics prune
    column = {"event_date": "staged.event_date"}
    jobs = []
    for values in parts:
        key = dict(zip(keys, values, strict=True))
        where = " AND ".join(f"{column.get(k) or derived(k)} = {_literal(v)}" for k, v in key.items())
        jobs.append((f"{_fresh_rows(ds, kind, w)} AND {where}", key))
    with ThreadPoolExecutor(staging.WORKERS) as pool:
        outs = list(pool.map(lambda job: _copy(con, w, ds, *job), jobs))
    return sum(len(w.add_tree(ds.name, out)) for out in outs)  # in order, from this thread


def _index_fresh(con, w: Writer, ds, kind: str) -> None:
    """One uid index file of the fresh rows of `kind`: each uid's hash and its partition (from
    `judged`, dedup's narrow table of this kind, less the rows that are not fresh), sorted by
    DuckDB, the partition as a code into the batch's few folders (not a string per row: the
    index upkeep was what took a 10M-line ingest over 1 GiB, issue 18.1). The tiers are merged
    after the last batch (`ingest_events`)."""
    keys = [c for c, _ in ds.partition]
    part = uidindex.part_sql((c, c) for c in keys)
    fresh = f"judged ANTI JOIN verdict_{kind} USING (source, line_no)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE index_parts AS SELECT *, (row_number() OVER (ORDER BY part)"
        f" - 1)::UBIGINT AS code FROM (SELECT DISTINCT {', '.join(keys)}, {part} AS part "
        f"FROM {fresh})")
    try:
        parts = [r[0] for r in con.execute("SELECT part FROM index_parts ORDER BY code").fetchall()]
        if not parts:
            return
        code = "USMALLINT" if len(parts) <= 0xFFFF else "UINTEGER"
        on = " AND ".join(f"j.{k} IS NOT DISTINCT FROM p.{k}" for k in keys)
        got = con.execute(
            f"SELECT j.uid_hash, CAST(p.code AS {code}) AS code FROM (SELECT * FROM {fresh}) j "
            f"JOIN index_parts p ON {on} ORDER BY j.uid_hash, code").fetchnumpy()
    finally:
        con.execute("DROP TABLE IF EXISTS index_parts")
    uidindex.add_sorted(w, ds.name, np.asarray(got["uid_hash"], np.uint64),
                        np.asarray(got["code"]), parts)


def _copy(con, w: Writer, ds, query: str, key: dict) -> Path:
    with con.cursor() as cur:
        return copy_partition(cur, w, ds, query, key)


def _literal(value) -> str:
    return f"DATE '{value}'" if isinstance(value, date) else sql_str(str(value))


def _store_quarantine(con, w: Writer, store: Store, summary: IngestSummary, files,
                      time_key: str = models.DEFAULT_TIME_KEY) -> int:
    """Quarantine rejected lines and uid conflicts (reason explained by the models);
    a line already quarantined by an earlier ingest of the same input is not stored again."""
    rows = con.execute(
        "SELECT source, line_no, reason, raw_bytes FROM staged WHERE kind = 'quarantine' "
        "UNION ALL SELECT v.source, v.line_no, 'uid ' || v.uid || ' already seen with different "
        "content; first copy kept', encode(s.raw) FROM (SELECT * FROM verdict_run UNION ALL "
        "SELECT * FROM verdict_join) v JOIN staged s USING (source, line_no) "
        "WHERE v.verdict = 'conflict' ORDER BY 1, 2"
    ).fetchall()
    if not rows:
        return 0
    missing = {(r[0], r[1]) for r in rows if r[3] is None and r[2].startswith("uid ")}
    if missing:  # pass 1 did not keep these lines' text: read them again
        found = staging.raw_lines(files, missing)
        rows = [(r[0], r[1], r[2], found.get((r[0], r[1]), r[3])) for r in rows]
    now = datetime.now(UTC).replace(tzinfo=None)
    con.register("q_items", pa.table({
        "ingest_id": [w.ingest_id] * len(rows),
        "source": [r[0] for r in rows],
        "line_no": pa.array([r[1] for r in rows], pa.int64()),
        "reason": [_explained(r[2], r[3], time_key) for r in rows],
        "raw": pa.array([bytes(r[3] or b"") for r in rows], pa.binary()),
        "quarantined_at": pa.array([now] * len(rows), pa.timestamp("ns")),
    }))
    con.execute("SET VARIABLE q_files = $1", [store.files(QUARANTINE.name, w.base)])
    fresh = (
        "SELECT q.*, CAST(q.quarantined_at AS DATE) AS ingest_date FROM q_items q ANTI JOIN "
        "(SELECT source, line_no, md5(raw) AS h FROM read_parquet(getvariable('q_files'), "
        "hive_partitioning = true, union_by_name = true)) e "
        "ON e.source = q.source AND e.line_no = q.line_no AND e.h = md5(q.raw)"
    )
    if con.execute(f"SELECT count(*) FROM ({fresh})").fetchall()[0][0]:
        summary.files_added += write_dataset(con, w, QUARANTINE, fresh)
    return len(rows)


def _explained(reason: str, raw, time_key: str = models.DEFAULT_TIME_KEY) -> str:
    """The pydantic explanation of a rejected line, where it has one."""
    if raw is None or reason.startswith(("unreadable", "truncated", "read error", "not a Teleport",
                                         "uid ")):
        return reason
    return models.explain(bytes(raw).rstrip(b"\r"), time_key) or reason


def log_ingest(con, w: Writer, s: IngestSummary, kind: str) -> None:
    """Add this write's row to `ingest_log` (what `verify` checks the stored counts against)."""
    write_log(con, w, kind, s.sources,
              started=datetime.strptime(w.ingest_id[:16], "%Y%m%dT%H%M%SZ"), read=s.read,
              stored=s.stored, duplicates=s.duplicates, skipped=s.skipped,
              quarantined=s.quarantined, files_added=s.files_added)
