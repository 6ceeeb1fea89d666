"""Plain local JSON-lines files read by DuckDB's parallel CSV reader, one VARCHAR per line.

The bulk of a file log is plain UTF-8 text with `\\n` line ends: DuckDB splits it in parallel,
several times faster than Python can. Anything else takes the Arrow reader in `files.py`, which
keeps every line and explains the bad ones: gzip, Parquet, URLs, FIFOs; a file holding a byte
this reader treats specially (`\\r`, its column delimiter 0x01) or starting with a byte-order
mark; a file it refuses (invalid UTF-8, a line over `MAX_LINE`); and a file for which it returns
another number of rows than the file has lines (one grown meanwhile).

Rows come back one per line exactly like `files.read_lines`, each numbered by its position:
`row_number() OVER ()` counts in the order the reader returns them (a streaming window fixes the
order of its pipeline whatever `preserve_insertion_order` says: files in the order listed, lines
in file order).

A large file is cut into byte ranges at line ends (`split`), each read as a file of its own
(a copy of its bytes) and numbered from its first line's number, so that both cores work on one
file; a range this reader cannot take is read by the Arrow reader alone, numbered the same.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from pipeline.sources.files import GZIP_MAGIC, SourceFile, is_url, read_lines

BOM = b"\xef\xbb\xbf"
DELIM = b"\x01"  # the reader's column delimiter: a byte a JSON line cannot hold unescaped
_BLOCK = 16 * 1024 * 1024
MAX_LINE = 64 * 1024 * 1024  # longer lines: the Arrow reader (they are quarantined anyway)


def candidate(f: object) -> bool:
    """Whether `f` may be plain (a local file, not named .parquet); `plain_lines` decides."""
    return isinstance(f, SourceFile) and not is_url(f.url) and not f.url.endswith(".parquet")


def plain_lines(f: object) -> int | None:
    """How many lines `f` holds if it is a plain local file this reader takes (regular, not
    gzip, no byte-order mark, no `\r` anywhere); None otherwise, or if it cannot be read (the
    Arrow reader then reports why). The caller checks DuckDB returned exactly that many rows."""
    if not candidate(f):
        return None
    try:
        if not stat.S_ISREG(os.stat(f.url).st_mode):
            return None
        with open(f.url, "rb", buffering=0) as fh:
            return _count_lines(fh)
    except OSError:
        return None


def _count_lines(fh) -> int | None:
    buf = bytearray(_BLOCK)
    lines, last, first = 0, b"\n", True
    while n := fh.readinto(buf):
        if first and (buf.startswith(GZIP_MAGIC) or buf.startswith(BOM)):
            return None  # DuckDB would drop a byte-order mark; the Arrow reader keeps it
        if buf.find(b"\r", 0, n) >= 0 or buf.find(DELIM, 0, n) >= 0:
            return None  # the reader treats a lone \r as a line end, and cuts at its delimiter
        lines += buf.count(b"\n", 0, n)
        last, first = buf[n - 1 : n], False
    return lines + (last != b"\n")


@dataclass(frozen=True)
class ByteRange:
    """Whole lines of a large local file: bytes [offset, offset + length), the first numbered
    `first_line`; `plain` if this reader takes them (no `\r`, no delimiter byte, not starting
    with a byte-order mark, which it would drop)."""

    file: SourceFile
    offset: int
    length: int
    first_line: int
    lines: int
    plain: bool

    @property
    def name(self) -> str:
        return self.file.name

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The range's lines through the Arrow reader (the `sources.base.Source` protocol)."""
        return read_lines(self.file, start=self.offset, length=self.length,
                          first_line_no=self.first_line)

    def copy_to(self, path: str) -> SourceFile:
        """The range's bytes copied (in the kernel) to `path`, read under the file's name."""
        src = os.open(self.file.url, os.O_RDONLY | os.O_CLOEXEC)
        try:
            dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                try:
                    _copy_range(src, dst, self.offset, self.length, os.copy_file_range)
                except (AttributeError, OSError):  # not Linux, or across filesystems (EXDEV)
                    os.ftruncate(dst, 0)
                    os.lseek(dst, 0, os.SEEK_SET)
                    _copy_range(src, dst, self.offset, self.length, _pread_write)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return SourceFile(name=self.file.name, url=path)


def _copy_range(src: int, dst: int, offset: int, length: int, copy) -> None:
    while length > 0:
        n = copy(src, dst, length, offset)
        if n == 0:  # shrunk meanwhile: the row count check refuses the copy
            break
        offset, length = offset + n, length - n


def _pread_write(src: int, dst: int, length: int, offset: int) -> int:
    data = memoryview(os.pread(src, min(length, 1 << 20), offset))
    done = 0
    while done < len(data):
        done += os.write(dst, data[done:])
    return len(data)


def split(f: SourceFile, target: int, pieces_of: int = 1) -> Iterator[ByteRange] | None:
    """Cut the local file `f` into ranges of whole lines of about `target` bytes (their count a
    multiple of `pieces_of`, so that as many workers finish together), yielded as the file is
    scanned; None if it is not a local regular file or is gzip (the Arrow reader's). Lines are
    counted as `plain_lines` and `files.read_lines` count them."""
    if not candidate(f):
        return None
    try:
        st = os.stat(f.url)
        if not stat.S_ISREG(st.st_mode):
            return None
        with open(f.url, "rb") as fh:
            if fh.read(2) == GZIP_MAGIC:
                return None
    except OSError:
        return None
    pieces = -(-st.st_size // target)
    pieces = -(-pieces // pieces_of) * pieces_of
    return _ranges(f, st.st_size, -(-st.st_size // pieces))


def _ranges(f: SourceFile, total: int, target: int) -> Iterator[ByteRange]:
    with open(f.url, "rb", buffering=0) as fh:
        offset, line = 0, 1
        while offset < total:
            length = _line_end(fh, offset + target, total) - offset
            fh.seek(offset)
            lines, plain = _scan(fh, length)
            yield ByteRange(f, offset, length, line, lines, plain)
            offset, line = offset + length, line + lines


def _line_end(fh, at: int, total: int) -> int:
    """The offset just past the first \n at or after `at` (or `total`)."""
    if at >= total:
        return total
    fh.seek(at - 1)
    pos = at - 1
    while chunk := fh.read(1 << 16):
        i = chunk.find(b"\n")
        if i >= 0:
            return min(pos + i + 1, total)
        pos += len(chunk)
    return total


def _scan(fh, length: int) -> tuple[int, bool]:
    """(lines, plain) of the next `length` bytes of `fh`, which start a line."""
    buf = bytearray(min(_BLOCK, max(length, 1)))
    lines, left, last, plain, start = 0, length, b"\n", True, True
    view = memoryview(buf)
    while left > 0 and (n := fh.readinto(view[: min(len(buf), left)])):
        if start and buf.startswith(BOM):
            plain = False  # DuckDB would drop it (at a file's start, or a range's)
        if plain and (buf.find(b"\r", 0, n) >= 0 or buf.find(DELIM, 0, n) >= 0):
            plain = False
        lines += buf.count(b"\n", 0, n)
        last, left, start = buf[n - 1 : n], left - n, False
    return lines + (length > 0 and last != b"\n"), plain


def lines_sql(files: list[SourceFile]) -> str:
    """A relation (`source`, `l`): every line of `files`, in order; an empty line is ''.
    Running it raises duckdb.Error for a file the reader refuses."""
    listed = "[" + ", ".join(_lit(f.url) for f in files) + "]"
    names = {f.url: f.name for f in files}
    source = "filename"
    if any(k != v for k, v in names.items()):  # display names differ from paths: map them
        pairs = ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in names.items())
        source = f"MAP {{{pairs}}}[filename]"
    return (
        f"SELECT {source} AS source, coalesce(l, '') AS l FROM read_csv({listed}, "
        "columns = {'l': 'VARCHAR'}, delim = '\x01', quote = '', escape = '', comment = '', "
        "header = false, auto_detect = false, new_line = '\\n', "
        f"max_line_size = {MAX_LINE}, filename = true)"
    )


def numbered_sql(files: list[SourceFile], lines: list[int], first_line: int = 1) -> str:
    """A relation (`source`, `line_no`, `l`): every line of `files` with its 1-based number in its
    file, given `lines`, how many lines each file holds (`plain_lines`); one file may be a
    range of a larger one whose first line is number `first_line`."""
    before = itertools.accumulate(lines[:-1], initial=1 - first_line)
    starts = ", ".join(f"{_lit(f.name)}: {n}" for f, n in zip(files, before, strict=True))
    return (f"SELECT source, row_number() OVER () - MAP {{{starts}}}[source] AS line_no, l "
            f"FROM ({lines_sql(files)})")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
