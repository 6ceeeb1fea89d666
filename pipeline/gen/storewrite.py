"""Generated run events as the store's `runs` Parquet files, assembled column-wise in Arrow.

A column constant per (instance, outcome kind) is a dictionary array over the `rt` rows its
row group uses: each long text (stdout, stderr, ...) is held once per row group, never copied
per event, and the Parquet writer takes the dictionary as it is instead of hashing and
compressing every event's copy (DuckDB's COPY of the same rows, materialised, was 3-5x
slower). Per-event values come from `storecols.run_events_sql`; the columns built from them
(status, invocation URL, filled output texts, RFC 3339 time) are assembled here. One file per
(cloud, day) partition, `cloud=…/event_date=…/part-<ingest id>-0.parquet` as the ingest names them.
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
_DICT_COLUMNS = [c for c, t in RUNS.columns
                 if t == "VARCHAR" and (c in CONSTANT or c in _SLOTTED or c == "status")]
SCHEMA = pa.schema([(c, _DICT if c in _DICT_COLUMNS else _ARROW[t]) for c, t in RUNS.columns])
# min/max only where readers filter by value (time, keys, outcome): statistics of the long
# texts cost about 0.1 us per row to write and prune nothing
_STATISTICS = ("event", "code", "time", "is_failure", "instance_key", "instance_id", "vm_id",
               "account_id", "subscription_id", "region", "exit_code")
_OPTIONS = {"compression": "zstd", "compression_level": 1,  # as the ingest's files
            "use_dictionary": _DICT_COLUMNS,
            "write_statistics": [c for c in SCHEMA.names if c in _STATISTICS],
            "store_schema": False}  # readers see plain VARCHAR columns, as in DuckDB's files


def _slotted(idx: pa.Array, texts: pa.Array, has: pa.Array, values: pa.Array
             ) -> pa.DictionaryArray:
    """`texts` by `idx`, except at the rows where `has` is true: `values` (one per such row,
    in order; appended to the dictionary)."""
    if not len(values):
        return pa.DictionaryArray.from_arrays(idx, texts)
    pos = pc.add(pc.subtract(pc.cumulative_sum(has.cast(pa.int32())), 1), len(texts))
    return pa.DictionaryArray.from_arrays(pc.if_else(has, pos, idx).cast(pa.int32()),
                                          pa.concat_arrays([texts, values]))


class RunFiles:
    """Writes the runs files of one fleet under `out` from `rt` (its rows by `g`)."""

    def __init__(self, rt: pa.Table, day0_ns: int, n_days: int, out: Path,
                 ingest_id: str) -> None:
        # each text column as (distinct value id per `rt` row, distinct values): many rows
        # share a text (same platform, same outcome), so a row group's dictionary is small
        self.texts = {c: rt[c].combine_chunks().dictionary_encode()
                      for c in _DICT_COLUMNS if c != "status"}
        # status: the statuses an event of `rt` row g may draw, st-th of them
        opts = rt["status_opts"].combine_chunks()
        self.texts["status"] = opts.flatten().dictionary_encode()
        self.status_at = opts.offsets[:-1]
        self.rt = {c: rt[c].combine_chunks() for c in CONSTANT if c not in _DICT_COLUMNS}
        self.url = {c: rt[c].combine_chunks() for c in ("url_head", "url_tail")}
        self.cut = {f"{c}_{part}": rt[f"{c}_{part}"].combine_chunks()
                    for c in _SLOTTED for part in ("pre", "post")}
        self.day0_ns, self.n_days, self.out, self.ingest_id = day0_ns, n_days, out, ingest_id
        self.days = calendar(day0_ns, n_days)

    def path(self, file_idx: int) -> Path:
        cloud, day = divmod(file_idx, self.n_days)
        date = datetime.fromtimestamp((self.day0_ns + day * DAY) // NS, UTC).date()
        return (self.out / f"cloud={CLOUDS[cloud]}" / f"event_date={date}"
                / f"part-{self.ingest_id}-0.parquet")

    def _text(self, c: str, at: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(index into the dictionary, dictionary) of text column `c` for the value ids
        `self.texts[c].indices.take(at)`: only the distinct values used."""
        ids = self.texts[c].indices.take(at)
        used = pc.unique(ids)
        return pc.index_in(ids, used), self.texts[c].dictionary.take(used)

    def _url(self, g: pa.Array, local: pa.Array, ug: pa.Array, cmd: pa.Array) -> pa.Array:
        """head, command id, tail; '' where the `rt` row has no head (no URL)."""
        head = self.url["url_head"].take(ug)
        head = pc.if_else(pc.equal(head, ""), pa.scalar(None, pa.string()), head).take(local)
        url = pc.binary_join_element_wise(head, cmd, self.url["url_tail"].take(g), "")
        return pc.fill_null(url, "")

    def _filled(self, c: str, g: pa.Array, values: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(has, texts): the rows whose `c` has a per-event value, and those texts."""
        has = pc.is_valid(values)
        if not values.null_count < len(values):
            return has, pa.array([], pa.string())
        sel = pc.indices_nonzero(has)
        gs = g.take(sel)
        return has, pc.binary_join_element_wise(self.cut[f"{c}_pre"].take(gs), values.take(sel),
                                                self.cut[f"{c}_post"].take(gs), "")

    def columns(self, rows: pa.Table) -> pa.Table:
        """One row group's table in SCHEMA from `run_events_sql` rows."""
        g = rows["g"].combine_chunks()
        ts = rows["ts"].combine_chunks()
        ug = pc.unique(g)  # the `rt` rows this row group uses, and each row's among them
        local = pc.index_in(g, ug)
        arrays = []
        for f in SCHEMA:
            c = f.name
            if c == "status":
                at = pc.add(self.status_at.take(g), rows["st"].combine_chunks().cast(pa.int32()))
                arrays.append(pa.DictionaryArray.from_arrays(*self._text(c, at)))
            elif c in _DICT_COLUMNS:
                ids, texts = self._text(c, ug)
                idx = ids.take(local)
                if c in _SLOTTED:
                    arrays.append(_slotted(idx, texts, *self._filled(
                        c, g, rows[c].combine_chunks())))
                else:
                    arrays.append(pa.DictionaryArray.from_arrays(idx, texts))
            elif c in CONSTANT:
                arrays.append(self.rt[c].take(g))
            elif c == "time":
                arrays.append(ts.cast(f.type))
            elif c == "time_text":
                arrays.append(rfc3339_times(ts, self.day0_ns, self.days))
            elif c == "invocation_url":
                arrays.append(self._url(g, local, ug, rows["command_id"].combine_chunks()))
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
