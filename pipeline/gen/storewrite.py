"""Generated run events as the store's `runs` Parquet files, assembled column-wise in Arrow.

A column constant per (instance, outcome kind) is a dictionary array over the `rt` rows its
row group uses: each long text (stdout, stderr, ...) is held once per row group, never copied
per event, and the Parquet writer takes the dictionary as it is instead of hashing and
compressing every event's copy (DuckDB's COPY of the same rows, materialised, was 3-5x
slower). Per-event columns come from `storecols.run_events_sql`. One file per (cloud, day)
partition, `cloud=…/event_date=…/part-<ingest id>-0.parquet` as the ingest names them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.gen.plan import DAY, NS
from pipeline.gen.render import calendar, rfc3339_times
from pipeline.gen.storecols import CLOUDS, CONSTANT
from pipeline.store.layout import RUNS

ROW_GROUP_ROWS = 32_768  # as the ingest's COPY writes them
_SLOTTED = ("stdout", "stderr")  # dictionary columns whose value some events fill in
_DICT = pa.dictionary(pa.int32(), pa.string())
_ARROW = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(),
          "TIMESTAMP_NS": pa.timestamp("ns")}
_DICT_COLUMNS = [c for c, t in RUNS.columns if t == "VARCHAR" and (c in CONSTANT or c in _SLOTTED)]
SCHEMA = pa.schema([(c, _DICT if c in _DICT_COLUMNS else _ARROW[t]) for c, t in RUNS.columns])
# min/max of these unique random texts prunes nothing (no reader filters on them by value)
_NO_STATS = ("uid", "time_text", "command_id", "invocation_url")
_OPTIONS = {"compression": "zstd", "compression_level": 1,  # as the ingest's files
            "use_dictionary": [*_DICT_COLUMNS, "status"],
            "write_statistics": [c for c in SCHEMA.names if c not in _NO_STATS],
            "store_schema": False}  # readers see plain VARCHAR columns, as in DuckDB's files


def _slotted(idx: pa.Array, texts: pa.Array, per_event: pa.Array) -> pa.DictionaryArray:
    """`texts` by `idx`, except where `per_event` has a value: that value (appended to the
    dictionary)."""
    if per_event.null_count == len(per_event):
        return pa.DictionaryArray.from_arrays(idx, texts)
    has = pc.is_valid(per_event)
    pos = pc.add(pc.subtract(pc.cumulative_sum(has.cast(pa.int32())), 1), len(texts))
    return pa.DictionaryArray.from_arrays(pc.if_else(has, pos, idx).cast(pa.int32()),
                                          pa.concat_arrays([texts, per_event.drop_null()]))


class RunFiles:
    """Writes the runs files of one fleet under `out` from `rt` (its rows by `g`)."""

    def __init__(self, rt: pa.Table, day0_ns: int, n_days: int, out: Path,
                 ingest_id: str) -> None:
        # each text column as (distinct value id per `rt` row, distinct values): many rows
        # share a text (same platform, same outcome), so a row group's dictionary is small
        self.texts = {c: rt[c].combine_chunks().dictionary_encode() for c in _DICT_COLUMNS}
        self.rt = {c: rt[c].combine_chunks() for c in CONSTANT if c not in _DICT_COLUMNS}
        self.day0_ns, self.n_days, self.out, self.ingest_id = day0_ns, n_days, out, ingest_id
        self.days = calendar(day0_ns, n_days)

    def _text(self, c: str, g: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(index into the dictionary, dictionary) of text column `c` at `rt` rows `g`: the
        distinct values those rows use."""
        ids = self.texts[c].indices.take(g)
        used = pc.unique(ids)
        return pc.index_in(ids, used), self.texts[c].dictionary.take(used)

    def path(self, file_idx: int) -> Path:
        cloud, day = divmod(file_idx, self.n_days)
        date = datetime.fromtimestamp((self.day0_ns + day * DAY) // NS, UTC).date()
        return (self.out / f"cloud={CLOUDS[cloud]}" / f"event_date={date}"
                / f"part-{self.ingest_id}-0.parquet")

    def columns(self, rows: pa.Table) -> pa.Table:
        """One row group's table in SCHEMA from `run_events_sql` rows."""
        g = rows["g"].combine_chunks()
        ts = rows["ts"].combine_chunks()
        arrays = []
        for f in SCHEMA:
            c = f.name
            if c in _SLOTTED:
                arrays.append(_slotted(*self._text(c, g), rows[c].combine_chunks()))
            elif c in _DICT_COLUMNS:
                arrays.append(pa.DictionaryArray.from_arrays(*self._text(c, g)))
            elif c in CONSTANT:
                arrays.append(self.rt[c].take(g))
            elif c == "time":
                arrays.append(ts.cast(f.type))
            elif c == "time_text":
                arrays.append(rfc3339_times(ts, self.day0_ns, self.days))
            elif c == "extra":  # run lines hold no key the models leave out
                arrays.append(pa.nulls(len(g), pa.string()))
            else:
                arrays.append(rows[c])
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    def write(self, file_idx: int, rows: pa.Table) -> Path:
        """Write one partition's file from its rows (in file order); returns its path."""
        path = self.path(file_idx)
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, SCHEMA, **_OPTIONS) as w:
            for start in range(0, rows.num_rows, ROW_GROUP_ROWS):
                w.write_table(self.columns(rows.slice(start, ROW_GROUP_ROWS)),
                              row_group_size=ROW_GROUP_ROWS)
        return path
