"""Full copies (schema 1-2), frozen from commit 9b3117e: the rows `ingest_snapshot` stored per
capture, a store written that way (for the migration tests), and a connection whose snapshot
relations are that commit's SQL over full copies (the differential tests' oracle)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from pipeline.ingest.events import IngestSummary, log_ingest
from pipeline.ingest.snapshots import Node, UserTask, node_row, task_rows
from pipeline.store import Store
from pipeline.store.layout import LEGACY, SNAPSHOT_LOG
from pipeline.store.manifest import MANIFEST, SCHEMA_DIR
from pipeline.store.write import write_table

HERE = Path(__file__).resolve().parent
RELATIONS = ("010_snapshot_at", "015_registered_nodes", "020_online_nodes", "030_user_tasks_at",
             "125_instance_joins", "130_instance_history")
TABLES = {"nodes": "node_snapshots", "user_tasks": "user_task_snapshots"}
_ARROW = {"VARCHAR": pa.string(), "TIMESTAMP_NS": pa.timestamp("ns")}


def capture_rows(kind: str, items: list, at: datetime) -> list[dict]:
    """The rows commit 9b3117e stored for one capture (`at`: naive UTC): one per node, one per
    (task, instance), each node's expiry as nanoseconds (`expires_ns`); items that are not
    resources of the kind, or invalid, are left out."""
    model, want = (Node, "node") if kind == "nodes" else (UserTask, "user_task")
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("kind", want) != want:
            continue
        try:
            res = model.model_validate(item)
            made = [node_row(res)] if kind == "nodes" else task_rows(res)
        except (ValidationError, ValueError):
            continue
        raw = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        for r in made:
            exp = r.pop("expires", None)
            out.append({**r, "expires_ns": exp, "raw": raw, "captured_at": at})
    return out


def capture_table(kind: str, rows: list[dict]) -> pa.Table:
    """The rows as the legacy dataset's Arrow table (with `capture_date`)."""
    ds = LEGACY[TABLES[kind]]
    cols = {}
    for c, t in ds.columns:
        if c == "expires":  # integer nanoseconds, exactly
            cols[c] = pa.array([r.get("expires_ns") for r in rows], pa.int64()).cast(
                pa.timestamp("ns"))
        else:
            cols[c] = pa.array([r.get(c) for r in rows], _ARROW[t])
    cols["capture_date"] = pa.array([r["captured_at"].date() for r in rows], pa.date32())
    return pa.table(cols)


def write_capture(store: Store, kind: str, items: list, at: datetime, source: str) -> int:
    """Store one capture as a full copy, as commit 9b3117e's ingest did (same files, log rows);
    a capture of the same kind and instant already stored is skipped. Returns rows stored."""
    ds = LEGACY[TABLES[kind]]
    with store.writer() as w:
        con = duckdb.connect()
        try:
            con.execute("SET VARIABLE log_files = $1", [store.files(SNAPSHOT_LOG.name, w.base)])
            taken = con.execute(
                "SELECT count(*) FROM read_parquet(getvariable('log_files')) WHERE kind = $1 "
                "AND captured_at = $2", [kind, at]).fetchall()[0][0]
            if taken:
                return 0
            _schema_file(store, ds)
            rows = capture_rows(kind, items, at)
            s = IngestSummary(ingest_id=w.ingest_id, sources=[source], read=len(items),
                              stored=len(items))
            s.files_added += write_table(con, w, ds, capture_table(kind, rows))
            log = pa.table({"kind": [kind], "captured_at": pa.array([at], pa.timestamp("ns")),
                            "rows": [len(rows)], "source": [source],
                            "ingest_id": [w.ingest_id]})
            s.files_added += write_table(con, w, SNAPSHOT_LOG, log) + 1
            log_ingest(con, w, s, kind)
            w.commit()
        finally:
            con.close()
    stamp(store, 2)
    return len(rows)


def _schema_file(store: Store, ds) -> None:
    """The zero-row file anchoring a legacy dataset's schema (current writers make only theirs)."""
    path = store.root / SCHEMA_DIR / ds.name / ds.placeholder_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        duckdb.sql(f"COPY ({ds.empty_select()}) TO '{path}' (FORMAT parquet)")


def stamp(store: Store, version: int) -> None:
    """Set the manifest's schema_version (writers stamp the current one on every commit)."""
    path = store.root / MANIFEST
    doc = json.loads(path.read_text())
    doc["schema_version"] = version
    path.write_text(json.dumps(doc, indent=1))


def oracle(con: duckdb.DuckDBPyConnection, captures: dict[str, list[pa.Table]]) -> None:
    """Make `con` answer the snapshot relations as commit 9b3117e did: full copies as tables
    `node_snapshots` and `user_task_snapshots` (`captures`: Arrow tables per kind, as
    `capture_table` makes them), that commit's SQL for the relations reading them. Everything
    else (runs, snapshot_log, the other relations) stays the connection's own."""
    for kind, table in TABLES.items():
        con.execute(f"DROP VIEW IF EXISTS {table}")
        parts = captures.get(kind) or [capture_table(kind, [])]
        arrow = pa.concat_tables(parts)
        con.register("oracle_rows", arrow)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM oracle_rows")
        con.unregister("oracle_rows")
    for name in RELATIONS:
        con.execute((HERE / f"{name}.sql").read_text())
