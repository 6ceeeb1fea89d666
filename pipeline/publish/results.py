"""Results of people's own SQL (`discovery-history sql`), written as they stream: Arrow batches in,
bytes out, one batch at a time, so no result is ever held whole.

* text: an aligned table (two spaces between columns, dashes under the header, `(N rows)` after)
  that fits a width: the widest columns are cut (`...`) until a line fits. Column widths are
  those of the rows seen so far (they only grow), as psql does with FETCH_COUNT.
* csv: RFC 4180 with a header; NULL empty. json: an array of objects. markdown: a GitHub table.
* parquet: the batches as they come (a file only).

Values: times as RFC 3339 with nanoseconds in UTC, lists/structs/maps as JSON, BLOBs with
non-printable bytes as `\\xNN`, NULL as `NULL` in text and Markdown.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Iterable
from typing import BinaryIO

import pyarrow as pa

from pipeline.publish.history import DAY_NS, cut, go_duration, md_cell
from pipeline.report.gofmt import go_bytes, rfc3339nano

FORMATS = ("text", "csv", "json", "markdown", "parquet")
MIN_COLUMN = 5  # a column is never cut narrower than this (`ab...`)
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def write_results(reader: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: str, out: BinaryIO,
                  *, width: int | None = None) -> int:
    """Write the batches of `reader` to `out` in `fmt` (FORMATS); returns the row count.
    `width` applies to text only (None: never cut)."""
    if fmt == "parquet":
        return _write_parquet(reader, schema, out)
    writer = {"text": _Text, "csv": _Csv, "json": _Json, "markdown": _Markdown}[fmt](schema, out)
    if fmt == "text":
        writer.width = width
    rows = 0
    for batch in reader:
        if batch.num_rows:
            writer.batch(columns_of(batch))
            rows += batch.num_rows
    writer.close(rows)
    return rows


def columns_of(batch: pa.RecordBatch) -> list[list]:
    """Each column of `batch` as Python values; timestamps as integer ns since the epoch (UTC)."""
    out = []
    for field, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            mult = _UNIT_NS[field.type.unit]
            out.append([None if v is None else _Instant(v * mult)
                        for v in col.cast(pa.int64()).to_pylist()])
        else:
            out.append(col.to_pylist())
    return out


class _Instant(int):
    """Nanoseconds since the epoch, UTC (a timestamp value, told apart from integers)."""


def text_value(v, *, null: str = "NULL") -> str:
    """One value as text (see the module docstring)."""
    if v is None:
        return null
    if isinstance(v, str):
        return v
    if isinstance(v, _Instant):
        return _instant_text(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return blob_text(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return go_duration(round(v.total_seconds() * 10**9))
    if isinstance(v, pa.MonthDayNano):
        rest = go_duration(v.days * DAY_NS + v.nanoseconds)
        return f"{v.months} months {rest}" if v.months else rest
    if isinstance(v, list | dict | tuple):
        return json.dumps(json_value(v), ensure_ascii=False)
    return str(v)


def json_value(v):
    """One value as JSON data: numbers and booleans as they are, nested values recursively, the
    rest as its text."""
    if v is None or isinstance(v, bool | str) or (isinstance(v, int) and not isinstance(v, _Instant)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, pa.MonthDayNano):
        return text_value(v)
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return text_value(v)


def blob_text(b: bytes) -> str:
    """BLOB bytes as DuckDB shows them: printable ASCII as is, the rest `\\xNN`."""
    return "".join(chr(c) if 32 <= c < 127 and c != 92 else f"\\x{c:02X}" for c in b)


def _instant_text(ns: int) -> str:
    try:
        return rfc3339nano(ns)
    except (ValueError, OverflowError, KeyError, IndexError):
        return f"{ns} ns since 1970"


def fit(widths: list[int], width: int | None, gap: int = 2) -> list[int]:
    """Column widths that make a line fit `width`: the widest are capped at one level, no column
    below MIN_COLUMN (or its own width); unchanged when they fit or `width` is None."""
    total = sum(widths) + gap * (len(widths) - 1)
    if width is None or total <= width:
        return list(widths)
    budget = width - gap * (len(widths) - 1)
    lo, hi = MIN_COLUMN, max(widths)
    while lo < hi:  # the largest cap whose capped widths fit the budget
        mid = (lo + hi + 1) // 2
        if sum(min(w, mid) for w in widths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return [min(w, lo) for w in widths]


class _Text:
    def __init__(self, schema: pa.Schema, out: BinaryIO):
        self.out, self.names, self.width = out, schema.names, None
        self.widths = [len(n) for n in self.names]
        self.started = False

    def batch(self, columns: list[list]) -> None:
        cells = [[" ".join(text_value(v).splitlines()) for v in col] for col in columns]
        self.widths = [max([w, *map(len, col)]) for w, col in zip(self.widths, cells, strict=True)]
        caps = fit(self.widths, self.width)
        lines = []
        if not self.started:
            self.started = True
            lines += [self._line(self.names, caps), self._line(["-" * c for c in caps], caps)]
        lines += [self._line(row, caps) for row in zip(*cells, strict=True)]
        self.out.write(go_bytes("".join(lines)))

    def _line(self, cells, caps) -> str:
        texts = [cut(c, cap) if len(c) > cap else c for c, cap in zip(cells, caps, strict=True)]
        padded = [t.ljust(cap) for t, cap in zip(texts[:-1], caps, strict=False)] + [texts[-1]]
        return "  ".join(padded).rstrip() + "\n"

    def close(self, rows: int) -> None:
        if not self.started:
            self.batch([[] for _ in self.names])
        self.out.write(f"({rows} row{'' if rows == 1 else 's'})\n".encode())


class _Csv:
    def __init__(self, schema: pa.Schema, out: BinaryIO):
        self.out = out
        self._write([schema.names])

    def _write(self, rows) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        self.out.write(go_bytes(buf.getvalue()))

    def batch(self, columns: list[list]) -> None:
        self._write(zip(*([text_value(v, null="") for v in col] for col in columns), strict=True))

    def close(self, rows: int) -> None:
        pass


class _Json:
    def __init__(self, schema: pa.Schema, out: BinaryIO):
        self.out, self.names, self.first = out, schema.names, True
        out.write(b"[")

    def batch(self, columns: list[list]) -> None:
        parts = []
        for row in zip(*columns, strict=True):
            obj = {n: (text_value(v) if isinstance(v, _Instant) else json_value(v))
                   for n, v in zip(self.names, row, strict=True)}
            parts.append(("\n  " if self.first else ",\n  ") + json.dumps(obj, ensure_ascii=False))
            self.first = False
        self.out.write(go_bytes("".join(parts)))

    def close(self, rows: int) -> None:
        self.out.write(b"]\n" if self.first else b"\n]\n")


class _Markdown:
    def __init__(self, schema: pa.Schema, out: BinaryIO):
        self.out = out
        out.write(go_bytes("| " + " | ".join(map(md_cell, schema.names)) + " |\n"
                           + "|" + "---|" * len(schema.names) + "\n"))

    def batch(self, columns: list[list]) -> None:
        self.out.write(go_bytes("".join(
            "| " + " | ".join(md_cell(text_value(v)) for v in row) + " |\n"
            for row in zip(*columns, strict=True))))

    def close(self, rows: int) -> None:
        pass


def _write_parquet(reader: Iterable[pa.RecordBatch], schema: pa.Schema, out: BinaryIO) -> int:
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows
