"""JSON-lines sources: Teleport's file log, event-handler / Fluentd exports, globs, fsspec URLs.

Streaming: files are read in blocks and split into lines by Arrow, never whole into memory.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.sources import LINE_SCHEMA, SourceError

BLOCK_SIZE = 16 * 1024 * 1024
EVENT_SUFFIXES = (".log", ".json", ".jsonl", ".ndjson")
# Teleport's file log names one file per UTC day: 2026-05-04.00:00:00.log
DAY_FILE_RE = re.compile(r"^(\d{4}-\d\d-\d\d)\.\d\d:\d\d:\d\d\.log(\.gz)?$")
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SourceFile:
    """One readable file: its display name and how to open it."""

    name: str
    url: str  # local path or fsspec URL

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The file's events as LINE_SCHEMA batches (the `sources.base.Source` protocol)."""
        return read_batches(self)

    def day(self) -> date | None:
        """The UTC day a Teleport file-log file covers, from its name (None if not named so)."""
        m = DAY_FILE_RE.match(os.path.basename(self.url))
        return date.fromisoformat(m.group(1)) if m else None


def _is_event_file(name: str) -> bool:
    if name.endswith(".parquet"):
        return True  # Teleport's Athena backend: <prefix>/<YYYY-MM-DD>/<uuid>.parquet
    # any .gz: exporters name objects freely (fluent-plugin-s3: 20260504-10_0.gz)
    return name.endswith(".gz") or name.endswith(EVENT_SUFFIXES)


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def expand(paths: list[str]) -> list[SourceFile]:
    """Resolve files, folders (recursive) and globs to distinct files, in a stable order.

    Symlinks (Teleport's `events.log`) are followed but a file reached twice is read once.
    Raises SourceError naming a path that matches nothing.
    """
    found: dict[str, SourceFile] = {}
    for raw in paths:
        if is_url(raw):
            for f in _expand_url(raw):
                found.setdefault(f.url, f)
            continue
        path = raw[len("file://") :] if raw.startswith("file://") else raw
        # an existing path is taken as it is, even when its name holds glob characters ([1], *)
        pattern = glob.has_magic(path) and not os.path.lexists(path)
        matches = sorted(glob.glob(path, recursive=True)) if pattern else [path]
        if not matches or not any(os.path.lexists(m) for m in matches):
            raise SourceError(f"no such file or folder: {raw}")
        for m in matches:
            for f in _expand_local(m):
                found.setdefault(os.path.realpath(f), SourceFile(name=f, url=f))
    return sorted(found.values(), key=lambda f: f.name)


def _expand_local(path: str) -> Iterator[str]:
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                if _is_event_file(name):
                    yield os.path.join(root, name)
    elif os.path.lexists(path):
        yield path


def _expand_url(url: str) -> Iterator[SourceFile]:
    import fsspec

    fs, _, roots = fsspec.get_fs_token_paths(url)
    for root in roots:
        if fs.isdir(root):
            for p in sorted(fs.find(root)):
                if _is_event_file(p):
                    yield SourceFile(name=fs.unstrip_protocol(p), url=fs.unstrip_protocol(p))
        else:
            yield SourceFile(name=fs.unstrip_protocol(root), url=fs.unstrip_protocol(root))


def _open(f: SourceFile):
    if is_url(f.url):
        import fsspec

        raw = fsspec.open(f.url, "rb").open()
    else:
        raw = _open_local(f.url)
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if not head:
        head = raw.read(2)
        raw.seek(0)
    if head == GZIP_MAGIC:
        return _Gunzip(raw)
    return raw


_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def _open_local(path: str):
    """Open a regular file for reading; OSError for anything else, without blocking (a FIFO
    nobody writes to would otherwise hang the ingest, and the store's lock, forever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((k for test, k in _NOT_REGULAR if test(mode)), "not a file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")  # noqa: SIM115 - closed by the caller


class _Gunzip:
    """Streaming gunzip of one or more members that hands out every byte it could decompress
    before reporting a truncated or corrupt stream (on the next read)."""

    def __init__(self, raw):
        self._raw = raw
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._pending: Exception | None = None
        self._in_member = False
        self._out = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._raw.close()

    def read(self, n: int) -> bytes:
        if self._pending is not None and not self._out:
            raise self._pending
        while len(self._out) < n and self._pending is None:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                if self._in_member and not self._z.eof:
                    self._pending = EOFError("compressed data ended before the end-of-stream marker")
                break
            self._decompress(chunk)
        if not self._out and self._pending is not None:
            raise self._pending
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def _decompress(self, chunk: bytes) -> None:
        """Append what `chunk` decompresses to; a corrupt member keeps what came before it."""
        self._in_member = True
        try:
            self._out += self._z.decompress(chunk)
            while self._z.eof:
                rest = self._z.unused_data
                self._z = zlib.decompressobj(zlib.MAX_WBITS | 32)
                self._in_member = bool(rest)
                if not rest:
                    break
                self._out += self._z.decompress(rest)
        except zlib.error as e:
            self._pending = e


def read_batches(f: SourceFile) -> Iterator[pa.RecordBatch]:
    """Yield the file's events as LINE_SCHEMA batches, whatever its format."""
    if f.url.endswith(".parquet"):
        return read_athena(f)
    return read_lines(f)


def read_athena(f: SourceFile, batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
    """Rows of a Teleport Athena-backend Parquet file; the event is the `event_data` JSON."""
    import pyarrow.parquet as pq

    try:
        if is_url(f.url):
            import fsspec

            handle = fsspec.open(f.url, "rb").open()
        else:
            handle = _open_local(f.url)
    except OSError as e:
        yield _error_batch(f, 1, b"", f"unreadable: {e.strerror or e}")
        return
    with handle:
        try:
            pf = pq.ParquetFile(handle)
            if "event_data" not in pf.schema_arrow.names:
                yield _error_batch(f, 1, b"", "not a Teleport Athena file: no event_data column")
                return
            row = 1
            for batch in pf.iter_batches(batch_size=batch_rows, columns=["event_data"]):
                text = batch.column(0).cast(pa.large_string())
                data = text.cast(pa.large_binary())
                n = len(data)
                null = pc.is_null(text)
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.repeat(f.name, n).cast(pa.string()),
                        pa.array(range(row, row + n), pa.int64()),
                        data,
                        pc.if_else(null, pa.scalar("event_data is null", pa.string()),
                                   pa.scalar(None, pa.string())),
                    ],
                    schema=LINE_SCHEMA,
                )
                row += n
        except (OSError, pa.ArrowException) as e:
            yield _error_batch(f, 1, b"", f"unreadable Parquet: {e}")


def read_lines(f: SourceFile, block_size: int = BLOCK_SIZE, *, start: int = 0,
               length: int | None = None, first_line_no: int = 1) -> Iterator[pa.RecordBatch]:
    """Yield batches of the file's lines (split on \\n, a trailing \\r kept for the parser).
    With `length`, only the plain local bytes [start, start + length), the lines numbered from
    `first_line_no` (a range of a large file cut at line ends, `sources.duck.split`)."""
    try:
        stream = _open(f) if length is None else _open_local(f.url)
        if start:
            stream.seek(start)
    except OSError as e:
        yield _error_batch(f, first_line_no, b"", f"unreadable: {e.strerror or e}")
        return
    line_no = first_line_no
    left = -1 if length is None else length
    tail = b""
    with stream:
        while left:
            try:
                block = stream.read(block_size if left < 0 else min(block_size, left))
                left -= 0 if left < 0 else len(block)
            except (EOFError, zlib.error) as e:
                # complete lines read so far are kept; the partial one is quarantined
                yield _error_batch(f, line_no, tail, f"truncated or corrupt gzip stream ({e})")
                return
            except OSError as e:
                yield _error_batch(f, line_no, tail, f"read error: {e.strerror or e}")
                return
            if not block:
                break
            data = tail + block
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            batch = _lines_batch(f, data[:cut], line_no)
            line_no += batch.num_rows
            tail = data[cut + 1 :]
            yield batch
    if tail:
        yield _lines_batch(f, tail, line_no)


def _lines_batch(f: SourceFile, data: bytes, first_line_no: int) -> pa.RecordBatch:
    lines = pc.split_pattern(pa.array([data], pa.large_binary()), b"\n").flatten()
    n = len(lines)
    return pa.RecordBatch.from_arrays(
        [
            pa.repeat(f.name, n).cast(pa.string()),
            pa.array(range(first_line_no, first_line_no + n), pa.int64()),
            lines,
            pa.nulls(n, pa.string()),
        ],
        schema=LINE_SCHEMA,
    )


def _error_batch(f: SourceFile, line_no: int, raw: bytes, reason: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"source": f.name, "line_no": line_no, "line": raw, "error": reason}], schema=LINE_SCHEMA
    )
