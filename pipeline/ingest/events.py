"""Ingest audit events into the store: stream, validate in bulk, dedup on uid, commit atomically.

Pass 1 streams every source through the bulk validator (`stage.stage_sql`) in chunks and writes
the verdicts to scratch Parquet. Pass 2 judges each uid against the input and the store (narrow
columns only). Pass 3 writes the fresh rows into the store's partitions; one manifest commit
publishes them with the quarantine and the ingest log.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from pipeline import models
from pipeline.ingest.dedup import judge
from pipeline.ingest.stage import run_stage
from pipeline.ingest.write import sql_str, write_dataset, write_table
from pipeline.sources import LINE_SCHEMA
from pipeline.sources.base import Source, resolve
from pipeline.store import Store
from pipeline.store.layout import INGEST_LOG, JOINS, QUARANTINE, RUNS
from pipeline.store.manifest import Writer

Progress = Callable[[str, int], None]
CHUNK_BYTES = 32 * 1024 * 1024  # lines validated per DuckDB statement (bounded memory)


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
    progress: Progress | None = None,
    lock_timeout: float = 60.0,
) -> IngestSummary:
    """Read every event under `paths` (files, folders, globs, URLs, or Source objects such as
    `sources.dynamo.dynamo_days(...)`) into the store. Events outside the half-open `window`
    [start, end), if given, are skipped. Re-ingesting the same input stores nothing new."""
    files = resolve(paths)
    with store.writer(timeout=lock_timeout) as w:
        summary = IngestSummary(ingest_id=w.ingest_id, sources=[f.name for f in files])
        con = scratch_connection(w)
        store.register(con)
        try:
            _stage(con, w, files, summary, progress)
            _define_staged(con, w, window)
            for ds, kind in ((RUNS, "run"), (JOINS, "join")):
                v = judge(con, store, w, ds, kind)
                summary.duplicates += v.duplicates
                summary.conflicts += v.conflicts
                summary.stored += v.fresh
                setattr(summary, f"{kind}s", v.fresh)
                if v.fresh:
                    summary.files_added += write_dataset(con, w, ds, _fresh_rows(ds, kind, w))
            summary.skipped = _count(con, "kind IN ('skip', 'blank')")
            summary.quarantined = _store_quarantine(con, w, store, summary)
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


def _chunks(files: list[Source], summary: IngestSummary, progress) -> Iterator[pa.Table]:
    batches, size = [], 0
    for f in files:
        for batch in f.batches():
            summary.read += batch.num_rows
            if progress:
                progress(f.name, batch.num_rows)
            batches.append(batch)
            size += batch.nbytes
            if size >= CHUNK_BYTES:
                yield pa.Table.from_batches(batches)
                batches, size = [], 0
    if batches:
        yield pa.Table.from_batches(batches)


def _stage(con, w: Writer, files, summary: IngestSummary, progress) -> None:
    """Pass 1: every line's verdict and typed fields, to scratch Parquet, chunk by chunk."""
    out = w.scratch("staged")
    out.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(files, summary, progress)
    first = next(chunks, None)
    if first is None:  # nothing read: one empty file keeps the schema
        first = LINE_SCHEMA.empty_table()
    options = "(FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE 16384)"
    for n, chunk in enumerate(itertools.chain([first], chunks)):
        target = sql_str(out / f"part-{n}.parquet")
        run_stage(con, chunk, lambda q, t=target: con.execute(f"COPY ({q}) TO {t} {options}"))


def _define_staged(con, w: Writer, window: tuple[datetime, datetime] | None) -> None:
    """View `staged`: pass-1 rows with derived uids and the window applied."""
    # the parts by name, not by a glob: the store's path may hold glob characters ([, *, ?)
    parts = sorted(str(p) for p in w.scratch("staged").glob("*.parquet"))
    con.execute("SET VARIABLE staged_files = $1", [parts])
    files = "getvariable('staged_files')"
    missing = con.execute(
        f"SELECT source, line_no, raw FROM read_parquet({files}) "
        "WHERE kind IN ('run', 'join') AND uid = ''"
    ).fetchall()
    con.register("uid_fix", pa.table({
        "source": pa.array([m[0] for m in missing], pa.string()),
        "line_no": pa.array([m[1] for m in missing], pa.int64()),
        "fixed_uid": [_derived_uid(m[2]) for m in missing],
    }))
    in_window = "true"
    if window is not None:
        lo, hi = (models.parse_time_ns(_rfc3339(t)) for t in window)
        in_window = f"time >= make_timestamp_ns({lo}) AND time < make_timestamp_ns({hi})"
    con.execute(
        f"""CREATE OR REPLACE VIEW staged AS
        SELECT s.* REPLACE (
            CASE WHEN s.kind IN ('run', 'join') AND NOT ({in_window}) THEN 'skip' ELSE s.kind END
                AS kind,
            coalesce(f.fixed_uid, s.uid) AS uid)
        FROM read_parquet({files}) s LEFT JOIN uid_fix f USING (source, line_no)"""
    )


def _derived_uid(raw: str) -> str:
    """`models.derived_uid` of an event without uid; of its text when DuckDB reads it but
    Python's json cannot (a trailing comma, nesting deeper than the recursion limit)."""
    try:
        return models.derived_uid(json.loads(raw))
    except (ValueError, RecursionError):
        return models.derived_uid(raw)  # a JSON string: cannot equal an object's canonical form


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count(con, where: str) -> int:
    return con.execute(f"SELECT count(*) FROM staged WHERE {where}").fetchall()[0][0]


_DERIVED = {
    "cloud": "CASE event WHEN 'ssm.run' THEN 'aws' ELSE 'azure' END",
    "instance_key": "CASE event WHEN 'ssm.run' THEN instance_id ELSE lower(vm_id) END",
    "account_id": "CASE event WHEN 'ssm.run' THEN account_id ELSE subscription_id END",
    "is_failure": "right(code, 1) IN ('W', 'E')",
    "event_date": "CAST(time AS DATE)",
}


def derived(column: str) -> str:
    """The expression of a stored column over `staged` (most are stored as read)."""
    return _DERIVED.get(column, column)


def extra_keys(kind: str) -> str:
    """`extra` over `staged`: the event's keys the `kind` models do not define, as a JSON
    object; NULL when there are none (almost always)."""
    fields = sorted({f for ev, m in models.MODELS.items()
                     if (ev == models.INSTANCE_JOIN) == (kind == "join") for f in m.model_fields})
    unknown = f"list_filter(json_keys(raw), lambda k: NOT list_contains({fields}, k))"
    value = "json_extract(raw, '$.\"' || replace(k, '\"', '\\\"') || '\"')"
    return (f"CASE WHEN len({unknown}) > 0 THEN CAST(to_json(map_from_entries(list_transform("
            f"{unknown}, lambda k: struct_pack(k := k, v := {value})))) AS VARCHAR) END")


def _fresh_rows(ds, kind: str, w: Writer) -> str:
    special = {"ingest_id": f"'{w.ingest_id}'", "extra": extra_keys(kind)}
    cols = ", ".join(f"{special.get(c) or derived(c)} AS {c}" for c, _ in ds.columns + ds.partition)
    # anti-join the (usually few) rows that are not fresh: cheaper than joining the fresh ones
    return (
        f"SELECT {cols} FROM staged ANTI JOIN (SELECT source, line_no FROM verdict_{kind} "
        f"WHERE verdict <> 'fresh') f USING (source, line_no) WHERE kind = '{kind}'"
    )


def _store_quarantine(con, w: Writer, store: Store, summary: IngestSummary) -> int:
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
    now = datetime.now(UTC).replace(tzinfo=None)
    con.register("q_items", pa.table({
        "ingest_id": [w.ingest_id] * len(rows),
        "source": [r[0] for r in rows],
        "line_no": pa.array([r[1] for r in rows], pa.int64()),
        "reason": [_explained(r[2], r[3]) for r in rows],
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


def _explained(reason: str, raw) -> str:
    """The pydantic explanation of a rejected line, where it has one."""
    if raw is None or reason.startswith(("unreadable", "truncated", "read error", "not a Teleport",
                                         "uid ")):
        return reason
    return models.explain(bytes(raw).rstrip(b"\r")) or reason


def log_ingest(con, w: Writer, s: IngestSummary, kind: str) -> None:
    """Add this write's row to `ingest_log` (what `verify` checks the stored counts against)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    started = datetime.strptime(w.ingest_id[:16], "%Y%m%dT%H%M%SZ")
    write_table(con, w, INGEST_LOG, pa.table({
        "ingest_id": [w.ingest_id], "kind": [kind],
        "started_at": pa.array([started], pa.timestamp("ns")),
        "finished_at": pa.array([now], pa.timestamp("ns")),
        "sources": pa.array([s.sources], pa.list_(pa.string())),
        "read": [s.read], "stored": [s.stored], "duplicates": [s.duplicates],
        "skipped": [s.skipped], "quarantined": [s.quarantined], "files_added": [s.files_added],
    }))
