"""Pass 1 of an ingest: every input line's verdict and typed fields, staged to scratch Parquet.

Plain local files are read by DuckDB itself (`sources.duck`: parallel, in order) and staged one
group per statement, each line numbered as DuckDB reads it; a file over `SPLIT_BYTES` is cut into
ranges of whole lines staged side by side (`duck.split`), each numbered from its first line.
Every other source (gzip, Parquet, URLs, DynamoDB, a file or range DuckDB refuses) streams through
Arrow in bounded chunks. Both give the same staged rows (`stage.stage_sql`).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import models
from pipeline.ingest.stage import run_stage, stage_sql
from pipeline.sources import LINE_SCHEMA, duck
from pipeline.sources.base import Source
from pipeline.sources.files import GZIP_MAGIC, SourceFile, read_lines
from pipeline.store.manifest import Writer
from pipeline.store.write import sql_str

Progress = Callable[[str, int], None]
CHUNK_BYTES = 32 * 1024 * 1024  # Arrow path: lines validated per DuckDB statement
GROUP_BYTES = 128 * 1024 * 1024  # DuckDB path: input bytes per statement
ARROW_GROUP_BYTES = 8 * 1024 * 1024  # Arrow path: input bytes per job (gzip: compressed)
WORKERS = 2  # statements side by side: a numbered (in-order) read keeps about one core busy
SPLIT_BYTES = 16 * 1024 * 1024  # a larger plain file is staged as WORKERS or more ranges
# bytes per range: each staged from a scratch copy of its bytes, WORKERS copies at a time
RANGE_BYTES = 32 * 1024 * 1024
# input bytes per batch of one ingest (staged, judged and written before the next is read): its
# scratch space and memory follow the batch, not the input; a compressed file counts by its
# uncompressed size (`input_bytes`)
BATCH_BYTES = 2 * 1024**3
_PARQUET = "(FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE 16384)"


@dataclass
class Staged:
    """What pass 1 wrote: the part files, and how many lines they hold."""

    parts: list[str] = field(default_factory=list)
    read: int = 0


def stage_all(con, w: Writer, files: list[Source], progress: Progress | None,
              time_key: str = models.DEFAULT_TIME_KEY) -> Staged:
    """Stage every line of `files` into the writer's scratch folder; a record's time is its
    `time_key`, else its `time`, else the line's Fluentd time column (`stage.stage_sql`)."""
    out = w.scratch("staged")
    out.mkdir(parents=True, exist_ok=True)
    staged = Staged()
    seq = itertools.count()
    fast = [f for f in files if duck.candidate(f) or isinstance(f, duck.ByteRange)]
    slow = [f for f in files if not (duck.candidate(f) or isinstance(f, duck.ByteRange))]
    with ThreadPoolExecutor(WORKERS) as pool:
        jobs = []
        for g in _groups(fast):  # a large file is scanned here while the workers stage
            if not isinstance(g, duck.ByteRange):
                jobs.append(pool.submit(_stage_group, con.cursor(), out, g, seq, time_key))
            elif g.plain:
                jobs.append(pool.submit(_stage_range, con.cursor(), out, g, seq, time_key))
            else:
                slow.append(g)
        for job in jobs:  # in submission order: parts and progress stay deterministic
            done, refused = job.result()
            slow += refused
            for part, counts in done:
                staged.parts.append(part)
                for name, n in counts:
                    staged.read += n
                    if progress:
                        progress(name, n)
    stage_arrow(con, out, slow, staged, seq, progress, time_key)
    if not staged.parts:  # nothing read: one empty file keeps the schema
        stage_arrow(con, out, [], staged, seq, progress, time_key, empty=True)
    return staged


def _groups(files: list) -> Iterator[list | duck.ByteRange]:
    """Groups of about GROUP_BYTES of files, and the ranges of each file over SPLIT_BYTES."""
    group, size = [], 0
    for f in files:
        if isinstance(f, duck.ByteRange):  # cut by `batches`
            yield f
            continue
        n = _size(f.url)
        ranges = duck.split(f, RANGE_BYTES, WORKERS) if n > SPLIT_BYTES else None
        if ranges is not None:
            yield from ranges
            continue
        group.append(f)
        size += n
        if size >= GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def batches(files: list[Source]) -> Iterator[list]:
    """`files` in batches of about BATCH_BYTES of input, in order; a plain file larger than that
    is cut into ranges (`duck.split`, scanned as the batches are taken) spread over batches.
    Always at least one batch (maybe empty)."""
    batch, size = [], 0
    for f in files:
        n = input_bytes(f.url) if isinstance(f, SourceFile) else 0
        ranges = duck.split(f, RANGE_BYTES, WORKERS) if n > BATCH_BYTES else None
        for item in ranges if ranges is not None else [f]:
            if batch and size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += item.length if isinstance(item, duck.ByteRange) else n
    yield batch


def input_bytes(path: str) -> int:
    """What a local file counts toward BATCH_BYTES: the bytes of text it holds, which is what a
    batch's staging, dedup and memory follow. A gzip file by its ISIZE trailer (the size of its
    last member, modulo 2**32: raised by 2**32 while well under the compressed size, which stored
    data exceeds by a header and 5 bytes per 64 KiB only); a Parquet file
    (`.parquet`) by its row groups' uncompressed size from the footer; any other, or one that
    cannot be read so, by its size on disk (0 if none: a URL)."""
    n = _size(path)
    if n < 18:  # smaller than any gzip member
        return n
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            md = pq.read_metadata(path)
            return max(n, sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups)))
        with open(path, "rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                return n
            fh.seek(-4, os.SEEK_END)
            size = int.from_bytes(fh.read(4), "little")
    except (OSError, pa.ArrowException):
        return n
    while size + size // 1024 + 1024 < n:  # a stream over 4 GiB: its ISIZE wrapped
        size += 2**32
    return size


def drop(staged: Staged) -> None:
    """Remove a batch's staged parts (its rows are judged and written)."""
    for part in staged.parts:
        Path(part).unlink(missing_ok=True)


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _stage_group(cur, out: Path, group: list, seq, time_key: str) -> tuple[list, list]:
    """Stage the plain files of `group` in one statement on the cursor `cur` (closed after); if
    DuckDB refuses it or returns other line counts, each file alone. Returns the parts written,
    each with (source, lines) per file, and the files refused (they take the Arrow
    path). The line count runs here, beside the other worker's statement."""
    lines = [duck.plain_lines(f) for f in group]
    plain = [(f, n) for f, n in zip(group, lines, strict=True) if n is not None]
    refused = [f for f, n in zip(group, lines, strict=True) if n is None]
    with cur:
        if not plain:
            return [], refused
        done, bad = _stage_files(cur, out, [f for f, _ in plain], [n for _, n in plain], seq,
                                 time_key)
    return done, refused + bad


def _stage_range(cur, out: Path, r: duck.ByteRange, seq, time_key: str) -> tuple[list, list]:
    """Stage the range `r` of a large file from a copy of its bytes (removed after) on the cursor
    `cur` (closed after); refused, it takes the Arrow path."""
    copy = out.parent / "ranges" / f"range-{next(seq)}.log"
    copy.parent.mkdir(exist_ok=True)
    with cur:
        try:
            done, bad = _stage_files(cur, out, [r.copy_to(str(copy))], [r.lines], seq, time_key,
                                     r.first_line)
        except OSError:
            done, bad = [], [r]
        finally:
            copy.unlink(missing_ok=True)
    return done, [r] if bad else []


def _stage_files(cur, out: Path, group: list, lines: list[int], seq,
                 time_key: str, first_line: int = 1) -> tuple[list, list]:
    part = out / f"part-{next(seq)}.parquet"
    query = stage_sql(safe=True, raw_bytes="encode(l)", keep_raw=False, time_key=time_key, source=(
        "(SELECT source, line_no, NULL::BLOB AS line, NULL::VARCHAR AS error, l "
        f"FROM ({duck.numbered_sql(group, lines, first_line)}))"))
    try:
        cur.execute(f"COPY ({query}) TO {sql_str(part)} {_PARQUET}")
        counts = dict(cur.execute(
            f"SELECT source, count(*) FROM read_parquet({sql_str(part)}) GROUP BY source").fetchall())
        refused = [counts.get(f.name, 0) for f in group] != lines  # e.g. grown meanwhile
    except (duckdb.Error, UnicodeDecodeError):  # (a quoted line cut inside a character: stage.py)
        refused = True
    if refused:
        part.unlink(missing_ok=True)
        if len(group) == 1:
            return [], group
        done, bad = [], []
        for one, n in zip(group, lines, strict=True):
            d, b = _stage_files(cur, out, [one], [n], seq, time_key)
            done += d
            bad += b
        return done, bad
    return [(str(part), [(f.name, n) for f, n in zip(group, lines, strict=True)])], []


def stage_arrow(con, out: Path, files: list, staged: Staged, seq, progress, time_key: str,
                 empty=False) -> None:
    """Stage `files` through Arrow: groups of about ARROW_GROUP_BYTES, WORKERS side by side on
    cursors (reading, gunzip, splitting and DuckDB all release the GIL); parts and progress in
    input order."""
    groups = [None] if empty else list(_arrow_groups(files))
    with ThreadPoolExecutor(WORKERS) as pool:
        jobs = [pool.submit(_stage_arrow_group, con.cursor(), out, g, seq, time_key)
                for g in groups]
        for job in jobs:
            parts, counts = job.result()
            staged.parts += parts
            for name, n in counts:
                staged.read += n
                if progress:
                    progress(name, n)


def _arrow_groups(files: list) -> Iterator[list]:
    group, size = [], 0
    for f in files:
        group.append(f)
        size += (f.length if isinstance(f, duck.ByteRange) else
                 _size(f.url) if isinstance(f, SourceFile) else ARROW_GROUP_BYTES)
        if size >= ARROW_GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _stage_arrow_group(cur, out: Path, files: list | None, seq, time_key: str) -> tuple[list, list]:
    """Stage `files` (None: one empty part) on the cursor `cur` (closed after): the parts
    written, and (source, lines) per batch read."""
    counts: list[tuple[str, int]] = []
    parts: list[str] = []
    chunks = iter([LINE_SCHEMA.empty_table()]) if files is None else _chunks(files, counts)
    with cur:
        for chunk in chunks:
            part = out / f"part-{next(seq)}.parquet"
            target = sql_str(part)
            run_stage(cur, chunk, lambda q, t=target: cur.execute(f"COPY ({q}) TO {t} {_PARQUET}"),
                      time_key)
            parts.append(str(part))
    return parts, counts


def _chunks(files: list, counts: list) -> Iterator[pa.Table]:
    batches, size = [], 0
    for f in files:
        for batch in f.batches():
            counts.append((f.name, batch.num_rows))
            batches.append(batch)
            size += batch.nbytes
            if size >= CHUNK_BYTES:
                yield pa.Table.from_batches(batches)
                batches, size = [], 0
    if batches:
        yield pa.Table.from_batches(batches)


def define_staged(con, staged: Staged, window: tuple[datetime, datetime] | None) -> None:
    """View `staged`: pass-1 rows with derived uids and the window applied."""
    # the parts by name, not by a glob: the store's path may hold glob characters ([, *, ?);
    # tables, not registered Arrow or variables: the view is read from other cursors too
    parts = "[" + ", ".join(sql_str(p) for p in staged.parts) + "]"
    con.execute(f"CREATE OR REPLACE VIEW staged_lines AS SELECT * FROM read_parquet({parts})")
    missing = con.execute(
        "SELECT source, line_no, raw, time_text FROM staged_lines WHERE kind IN ('run', 'join') "
        "AND uid = ''"
    ).fetchall()
    _table(con, "uid_fix", pa.table({
        "source": pa.array([m[0] for m in missing], pa.string()),
        "line_no": pa.array([m[1] for m in missing], pa.int64()),
        "fixed_uid": [_derived_uid(m[2], m[3]) for m in missing],
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
        FROM staged_lines s LEFT JOIN uid_fix f USING (source, line_no)"""
    )


def _table(con, name: str, table: pa.Table) -> None:
    con.register("arrow_in", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM arrow_in")
    finally:
        con.unregister("arrow_in")


def raw_lines(files: list[Source], wanted: set[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    """The raw bytes of `wanted` (source, line_no) lines of DuckDB-read files, read again by the
    Arrow reader (pass 1 keeps only what it needs; this serves the rare uid conflicts). Only lines
    of files (or ranges) staged by DuckDB lack their text: every wanted source is a local file."""
    out: dict[tuple[str, int], bytes] = {}
    by_name = {f.name: f for f in files}
    for name in sorted({s for s, _ in wanted}):
        f = by_name.get(name)
        if f is None:
            continue
        lines = pa.array(sorted(n for s, n in wanted if s == name), pa.int64())
        for batch in read_lines(f):
            hit = batch.filter(pc.is_in(batch.column("line_no"), lines))
            out.update(zip(((name, n) for n in hit.column("line_no").to_pylist()),
                           hit.column("line").to_pylist(), strict=True))
    return out


def _derived_uid(raw: str, time_text: str) -> str:
    """`models.derived_uid` of an event without uid: of its record, with the time it was read
    with (a Fluentd record has none of its own); of its text when DuckDB reads it but Python's
    json cannot (a trailing comma, nesting deeper than the recursion limit)."""
    column, body = models.split_fluentd_line(raw)
    try:
        record = json.loads(body)
    except (ValueError, RecursionError):
        return models.derived_uid(raw)  # a JSON string: cannot equal an object's canonical form
    if column is not None and record.get("time") is None:
        record = {**record, "time": time_text}
    return models.derived_uid(record)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
