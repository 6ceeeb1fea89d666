"""Teleport Athena-backend layout: Snappy Parquet at `<prefix>/<YYYY-MM-DD>/<uuidv7>.parquet`.

Columns (spec §4): uid, session_id, event_type, event_time (timestamp ms, UTC), user,
event_data (the event JSON). One file per UTC day per auth server (each server flushes its
own batches), so the cross-server duplicates become duplicate deliveries across files.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.gen.events import Shape, lines_query
from pipeline.gen.plan import DAY, NS

SCHEMA = pa.schema([("uid", pa.string()), ("session_id", pa.string()),
                    ("event_type", pa.string()), ("event_time", pa.timestamp("ms", tz="UTC")),
                    ("user", pa.string()), ("event_data", pa.string())])


def uuid7(ms: int, rng: random.Random) -> str:
    """A UUID v7 for Unix time `ms`, random bits from `rng` (deterministic file names)."""
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0x2 << 62 | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def _day_query(s: Shape, lo: int, hi: int) -> str:
    return f"""
    SELECT file_idx, uid::VARCHAR AS uid,
           coalesce(json_extract_string(line, '$.sid'), '') AS session_id,
           json_extract_string(line, '$.event') AS event_type,
           make_timestamp(ts // 1000000 * 1000)::TIMESTAMP_MS AS event_time,
           coalesce(json_extract_string(line, '$.user'), '') AS "user", line AS event_data
    FROM ({lines_query(s, lo, hi, newline=False)})"""


def write_athena(con: duckdb.DuckDBPyConnection, s: Shape, prefix: Path, seed: int) -> list[Path]:
    """Write every day's events under `prefix`; return the files in (day, server) order."""
    written = []
    for day in range(s.n_days):
        lo = s.day0_ns + day * DAY
        table = con.sql(_day_query(s, lo, lo + DAY)).to_arrow_table()
        folder = prefix / datetime.fromtimestamp(lo // NS, UTC).strftime("%Y-%m-%d")
        for server in range(s.servers):
            part = table.filter(pc.equal(table["file_idx"], server * s.n_days + day))
            if not part.num_rows:
                continue
            part = part.drop_columns(["file_idx"]).cast(SCHEMA)
            flushed = pc.max(part["event_time"]).cast(pa.int64()).as_py()
            name = uuid7(flushed + 1000, random.Random(f"athena:{seed}:{day}:{server}"))
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, folder / f"{name}.parquet", compression="snappy")
            written.append(folder / f"{name}.parquet")
    return written
