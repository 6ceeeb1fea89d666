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
"""

from __future__ import annotations

import itertools
import os
import stat

from pipeline.sources.files import GZIP_MAGIC, SourceFile, is_url

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


def numbered_sql(files: list[SourceFile], lines: list[int]) -> str:
    """A relation (`source`, `line_no`, `l`): every line of `files` with its 1-based number in its
    file, given `lines`, how many lines each file holds (`plain_lines`)."""
    before = itertools.accumulate(lines[:-1], initial=0)
    starts = ", ".join(f"{_lit(f.name)}: {n}" for f, n in zip(files, before, strict=True))
    return (f"SELECT source, row_number() OVER () - MAP {{{starts}}}[source] AS line_no, l "
            f"FROM ({lines_sql(files)})")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
