"""Ingest audit events into the store: stream, validate in bulk, dedup on uid, commit atomically."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from pipeline import models
from pipeline.ingest.stage import stage_sql
from pipeline.sources import LINE_SCHEMA
from pipeline.sources.files import expand, read_batches
from pipeline.store import Store
from pipeline.store.layout import INGEST_LOG, JOINS, QUARANTINE, RUNS, Dataset
from pipeline.store.manifest import Writer

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

    def conservation_line(self) -> str:
        """The one line every ingest prints."""
        ok = self.read == self.stored + self.duplicates + self.skipped + self.quarantined
        return (
            f"read {self.read} = stored {self.stored} + duplicates {self.duplicates}"
            f" + skipped {self.skipped} + quarantined {self.quarantined}"
            + ("" if ok else "  (MISMATCH: please report)")
        )

    def to_dict(self) -> dict:
        return asdict(self)


_CLOUD = "CASE event WHEN 'ssm.run' THEN 'aws' ELSE 'azure' END"
_DERIVED = {
    "cloud": _CLOUD,
    "instance_key": "CASE event WHEN 'ssm.run' THEN instance_id ELSE lower(vm_id) END",
    "account_id": "CASE event WHEN 'ssm.run' THEN account_id ELSE subscription_id END",
    "is_failure": "right(code, 1) IN ('W', 'E')",
    "event_date": "CAST(time AS DATE)",
}


def ingest_events(
    store: Store,
    paths: Sequence[str],
    *,
    window: tuple[datetime, datetime] | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 60.0,
) -> IngestSummary:
    """Read every event under `paths` into the store. Events outside the half-open `window`
    [start, end), if given, are skipped. Re-ingesting the same input stores nothing new."""
    files = expand(list(paths))
    with store.writer(timeout=lock_timeout) as w:
        summary = IngestSummary(ingest_id=w.ingest_id, sources=[f.name for f in files])
        con = _stage_connection(w)
        try:
            _stage(con, files, summary, progress)
            _assign_uids(con)
            if window is not None:
                _skip_outside(con, window)
            _store_events(con, w, store, summary)
            _store_quarantine(con, w, store, summary)
            if w.changed:
                _log(con, w, summary, "events")
            w.commit()
        finally:
            con.close()
    return summary


def _stage_connection(w: Writer) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(w.scratch("stage.duckdb")))
    con.execute("SET memory_limit = '768MB'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{_sq(str(w.scratch('spill')))}'")
    con.register("batch_lines", LINE_SCHEMA.empty_table())
    con.execute(f"CREATE TABLE staged AS {stage_sql()} LIMIT 0")
    return con


def _stage(con, files, summary: IngestSummary, progress: Progress | None) -> None:
    insert = f"INSERT INTO staged {stage_sql()}"
    for f in files:
        for batch in read_batches(f):
            con.register("batch_lines", batch)
            con.execute(insert)
            summary.read += batch.num_rows
            if progress:
                progress(f.name, batch.num_rows)
    con.unregister("batch_lines")


def _assign_uids(con) -> None:
    """Events without a uid get a stable one derived from their canonical JSON."""
    rows = con.execute(
        "SELECT rowid, raw FROM staged WHERE kind IN ('run', 'join') AND uid = ''"
    ).fetchall()
    if not rows:
        return
    fixed = pa.table(
        {
            "rid": [r[0] for r in rows],
            "uid": [models.derived_uid(json.loads(r[1])) for r in rows],
        }
    )
    con.register("fixed_uids", fixed)
    con.execute("UPDATE staged SET uid = f.uid FROM fixed_uids f WHERE staged.rowid = f.rid")
    con.unregister("fixed_uids")


def _skip_outside(con, window: tuple[datetime, datetime]) -> None:
    con.execute(
        "UPDATE staged SET kind = 'skip', reason = 'outside window' "
        "WHERE kind IN ('run', 'join') AND NOT (time >= $1 AND time < $2)",
        [_naive_utc(window[0]), _naive_utc(window[1])],
    )


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _select(ds: Dataset, kind: str, ingest_id: str) -> str:
    cols = []
    for c, _ in ds.columns + ds.partition:
        if c in _DERIVED:
            cols.append(f"{_DERIVED[c]} AS {c}")
        elif c == "ingest_id":
            cols.append(f"'{ingest_id}' AS ingest_id")
        else:
            cols.append(c)
    return (
        f"SELECT {', '.join(cols)}, line_no, {_signature(kind)} AS sig "
        f"FROM staged WHERE kind = '{kind}'"
    )


def _signature(kind: str) -> str:
    """What makes two events with one uid "the same": type, code, time, key, exit code."""
    key = "instance_id || vm_id" if kind == "run" else "host_id"
    code = "exit_code" if kind == "run" else "''"
    return f"md5(concat_ws(chr(31), event, code, time_text, {key}, {code}))"


def _store_events(con, w: Writer, store: Store, summary: IngestSummary) -> None:
    for ds, kind, keys in ((RUNS, "run", ("cloud", "event_date")), (JOINS, "join", ("event_date",))):
        con.execute(f"CREATE OR REPLACE TEMP TABLE incoming AS {_select(ds, kind, w.ingest_id)}")
        # first copy of a uid in this input wins (file order, then line order)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE ranked AS SELECT *, row_number() OVER w AS rn, "
            "first_value(sig) OVER w AS first_sig FROM incoming "
            "WINDOW w AS (PARTITION BY uid ORDER BY source, line_no)"
        )
        existing = _existing(con, store, w, ds, keys)
        new_rows, dups, conflicts = _classify(con, existing)
        summary.duplicates += dups
        summary.conflicts += conflicts
        summary.quarantined += conflicts
        if kind == "run":
            summary.runs = new_rows
        else:
            summary.joins = new_rows
        summary.stored += new_rows
        if new_rows:
            out = w.scratch(ds.name)
            cols = ", ".join(ds.column_names + [c for c, _ in ds.partition])
            con.execute(
                f"COPY (SELECT {cols} FROM fresh ORDER BY {', '.join(keys)}, time) "
                f"TO '{_sq(str(out))}' (FORMAT parquet, COMPRESSION zstd, "
                f"PARTITION_BY ({', '.join(keys)}), FILENAME_PATTERN 'part-{w.ingest_id}-{{i}}')"
            )
            summary.files_added += len(w.add_tree(ds.name, out))
    summary.skipped += con.execute(
        "SELECT count(*) FROM staged WHERE kind IN ('skip', 'blank')"
    ).fetchall()[0][0]


def _existing(con, store: Store, w: Writer, ds: Dataset, keys) -> str | None:
    """A relation of (uid, sig) already stored in the partitions this input touches."""
    touched = con.execute(f"SELECT DISTINCT {', '.join(keys)} FROM ranked").fetchall()
    prefixes = {
        "/".join(f"{k}={v}" for k, v in zip(keys, row, strict=True)) + "/" for row in touched
    }
    rels = [r for r in w.base.datasets.get(ds.name, []) if r[: r.rfind("/") + 1] in prefixes]
    if not rels:
        return None
    files = [str(store.root / ds.name / r) for r in rels]
    con.execute("SET VARIABLE existing_files = $1", [files])
    sig = _signature("run" if ds is RUNS else "join")
    return f"SELECT uid, {sig} AS sig FROM read_parquet(getvariable('existing_files'))"


def _classify(con, existing: str | None) -> tuple[int, int, int]:
    """Split ranked input into fresh rows, duplicates and conflicts (quarantined)."""
    ex = existing or "SELECT NULL::VARCHAR AS uid, NULL::VARCHAR AS sig WHERE false"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE verdict AS
        SELECT r.*, CASE
            WHEN e.uid IS NOT NULL AND e.sig = r.sig THEN 'duplicate'
            WHEN e.uid IS NOT NULL THEN 'conflict'
            WHEN r.rn > 1 AND r.sig = r.first_sig THEN 'duplicate'
            WHEN r.rn > 1 THEN 'conflict'
            ELSE 'fresh' END AS verdict
        FROM ranked r LEFT JOIN (SELECT DISTINCT ON (uid) uid, sig FROM ({ex})) e USING (uid)"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE fresh AS SELECT * FROM verdict WHERE verdict = 'fresh'")
    con.execute(
        "UPDATE staged SET kind = 'quarantine', raw_bytes = encode(staged.raw), reason = "
        "'uid ' || v.uid || ' already seen with different content; first copy kept' "
        "FROM verdict v WHERE v.verdict = 'conflict' AND staged.source = v.source "
        "AND staged.line_no = v.line_no"
    )
    counts = dict(con.execute("SELECT verdict, count(*) FROM verdict GROUP BY 1").fetchall())
    return counts.get("fresh", 0), counts.get("duplicate", 0), counts.get("conflict", 0)


def _store_quarantine(con, w: Writer, store: Store, summary: IngestSummary) -> None:
    rows = con.execute(
        "SELECT source, line_no, reason, raw_bytes FROM staged WHERE kind = 'quarantine' "
        "AND reason NOT LIKE 'uid % already seen%' ORDER BY source, line_no"
    ).fetchall()
    conflicts = con.execute(
        "SELECT source, line_no, reason, raw_bytes FROM staged WHERE reason LIKE 'uid % already seen%'"
    ).fetchall()
    summary.quarantined += len(rows)
    items = [(s, n, _better_reason(reason, raw), raw) for s, n, reason, raw in rows] + conflicts
    if not items:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    table = pa.table(
        {
            "ingest_id": [w.ingest_id] * len(items),
            "source": [i[0] for i in items],
            "line_no": pa.array([i[1] for i in items], pa.int64()),
            "reason": [i[2] for i in items],
            "raw": pa.array([i[3] or b"" for i in items], pa.binary()),
            "quarantined_at": pa.array([now] * len(items), pa.timestamp("ns")),
        }
    )
    con.register("q_items", table)
    seen = store.files(QUARANTINE.name, w.base)
    con.execute("SET VARIABLE q_files = $1", [seen])
    # a line quarantined by an earlier ingest of the same input is not stored twice
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_new AS SELECT q.*, CAST(q.quarantined_at AS DATE) AS ingest_date "
        "FROM q_items q ANTI JOIN (SELECT source, line_no, md5(raw) AS h FROM "
        "read_parquet(getvariable('q_files'), hive_partitioning = true, union_by_name = true)) e "
        "ON e.source = q.source AND e.line_no = q.line_no AND e.h = md5(q.raw)"
    )
    if con.execute("SELECT count(*) FROM q_new").fetchall()[0][0]:
        out = w.scratch(QUARANTINE.name)
        con.execute(
            f"COPY (SELECT * FROM q_new) TO '{_sq(str(out))}' (FORMAT parquet, COMPRESSION zstd, "
            f"PARTITION_BY (ingest_date), FILENAME_PATTERN 'part-{w.ingest_id}-{{i}}')"
        )
        summary.files_added += len(w.add_tree(QUARANTINE.name, out))
    con.unregister("q_items")


def _better_reason(reason: str, raw: bytes | None) -> str:
    """The pydantic explanation of a rejected line, when it has one."""
    if raw is None or reason.startswith(("unreadable", "truncated", "read error", "not a Teleport")):
        return reason
    detail = models.explain(bytes(raw).rstrip(b"\r"))
    return detail or reason


def _log(con, w: Writer, summary: IngestSummary, kind: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    started = datetime.strptime(w.ingest_id[:16], "%Y%m%dT%H%M%SZ")
    table = pa.table(
        {
            "ingest_id": [w.ingest_id],
            "kind": [kind],
            "started_at": pa.array([started], pa.timestamp("ns")),
            "finished_at": pa.array([now], pa.timestamp("ns")),
            "sources": pa.array([summary.sources], pa.list_(pa.string())),
            "read": [summary.read],
            "stored": [summary.stored],
            "duplicates": [summary.duplicates],
            "skipped": [summary.skipped],
            "quarantined": [summary.quarantined],
            "files_added": [summary.files_added],
        }
    )
    write_table(con, w, INGEST_LOG, table)


def write_table(con, w: Writer, ds: Dataset, table: pa.Table) -> int:
    """Write a small Arrow table as one new file of an unpartitioned (or partitioned) dataset."""
    con.register("w_table", table)
    out = w.scratch(ds.name)
    cols = ", ".join(ds.column_names + [c for c, _ in ds.partition])
    part = (
        f", PARTITION_BY ({', '.join(c for c, _ in ds.partition)})" if ds.partition else ""
    )
    target = out if ds.partition else out / f"part-{w.ingest_id}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT {cols} FROM w_table) TO '{_sq(str(target))}' (FORMAT parquet, "
        f"COMPRESSION zstd{part}, FILENAME_PATTERN 'part-{w.ingest_id}-{{i}}')"
        if ds.partition
        else f"COPY (SELECT {cols} FROM w_table) TO '{_sq(str(target))}' (FORMAT parquet, COMPRESSION zstd)"
    )
    con.unregister("w_table")
    return len(w.add_tree(ds.name, out))


def _sq(s: str) -> str:
    return s.replace("'", "''")
