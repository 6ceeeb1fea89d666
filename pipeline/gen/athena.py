"""Teleport Athena-backend layout: Snappy Parquet at `<prefix>/<YYYY-MM-DD>/<uuidv7>.parquet`.

Columns (spec §4): uid, session_id, event_type, event_time (timestamp ms, UTC), user,
event_data (the event JSON). One file per UTC day per auth server (each server flushes its
own batches), so the cross-server duplicates become duplicate deliveries across files.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.gen.plan import DAY, NS
from pipeline.gen.render import Renderer
from pipeline.gen.writer import PIECE_ROWS, per_file

SCHEMA = pa.schema([("uid", pa.string()), ("session_id", pa.string()),
                    ("event_type", pa.string()), ("event_time", pa.timestamp("ms", tz="UTC")),
                    ("user", pa.string()), ("event_data", pa.string())])
ROW_GROUP_ROWS = 65_536  # rows per Parquet row group (rendered in PIECE_ROWS pieces)
_OPTIONS = {"compression": "snappy", "use_dictionary": ["session_id", "event_type", "user"],
            "write_statistics": ["uid", "session_id", "event_type", "event_time", "user"]}


def uuid7(ms: int, rng: random.Random) -> str:
    """A UUID v7 for Unix time `ms`, random bits from `rng` (deterministic file names)."""
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0x2 << 62 | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def _columns(render: Renderer, batch: pa.RecordBatch) -> pa.Table:
    ms = pc.divide(batch["ts"], 1_000_000).cast(pa.timestamp("ms", tz="UTC"))
    return pa.Table.from_arrays(
        [batch["uid"], batch["session_id"], batch["event_type"], ms, batch["user"],
         render.lines(batch)], schema=SCHEMA)


def write_athena(chunks: Iterable[pa.Table], render: Renderer, prefix: Path, seed: int,
                 n_days: int, tick: Callable[[int], None] | None = None) -> list[Path]:
    """Write one Parquet file per (day, server) under `prefix` from `rows_query(athena=True)`
    chunks of whole days; return the files in (day, server) order."""

    def task(idx: int, rows: pa.Table) -> tuple[int, int, Path]:
        server, day = divmod(idx, n_days)
        flushed = rows["ts"][-1].as_py() // 1_000_000  # the last event of the day's batch
        lo = render.day0_ns + day * DAY
        folder = prefix / datetime.fromtimestamp(lo // NS, UTC).strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid7(flushed + 1000, random.Random(f"athena:{seed}:{day}:{server}"))
        path = folder / f"{name}.parquet"
        with pq.ParquetWriter(path, SCHEMA, **_OPTIONS) as w:
            for start in range(0, rows.num_rows, ROW_GROUP_ROWS):
                group = rows.slice(start, ROW_GROUP_ROWS).to_batches(max_chunksize=PIECE_ROWS)
                w.write_table(pa.concat_tables([_columns(render, b) for b in group]),
                              row_group_size=ROW_GROUP_ROWS)
        return day, server, path

    return [path for *_, path in sorted(per_file(chunks, task, tick))]
