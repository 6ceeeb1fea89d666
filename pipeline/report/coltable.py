"""`table.truncated_table` over Arrow columns of cells: the same bytes, built a column at a time.

A 100k-row report is cut, measured and padded by Arrow kernels; a table holding a tabwriter
control byte (rare: a tab or newline in an account, region or instance id) takes the per-cell
TabWriter of `table`, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report.table import (
    TABWRITER_CONTROL,
    check_limits,
    limits_of,
    rune_count,
    tabwriter_table,
)

BIN = pa.binary()
_CONTROL = "[\t\n\x0b\x0c]"  # (no 0xff: valid UTF-8, and cuts of it, never hold one)


def _longest(col: pa.Array) -> int:
    return pc.max(pc.binary_length(col)).as_py() or 0


def _cut(col: pa.Array, limit: int) -> pa.Array:
    """asciitable's truncateCell: cut to `limit` bytes + "..." (0: never)."""
    if limit == 0 or _longest(col) <= limit:
        return col
    long = pc.greater(pc.binary_length(col), limit)
    return pc.if_else(long, pc.binary_join_element_wise(pc.binary_slice(col, 0, limit),
                                                        b"...", b""), col)


def _widths(col: pa.Array) -> pa.Array:
    """Each cell's width in runes (Go's utf8.RuneCount: an invalid byte is one)."""
    try:
        return pc.utf8_length(col.cast(pa.string()))
    except pa.ArrowInvalid:  # a cell cut inside a character: count those cells one by one
        return pa.array([rune_count(b) for b in col.to_pylist()], pa.int64())


def joined(cells: pa.Array, prefix: bytes = b"", suffix: bytes = b"", drop: int = 0) -> bytes:
    """`prefix`, the cells of a string or binary array concatenated but their last `drop`
    bytes, `suffix` (one copy of the cells' bytes)."""
    cells = cells.cast(pa.large_binary())
    offsets = memoryview(cells.buffers()[1]).cast("q")
    lo, hi = offsets[cells.offset], offsets[cells.offset + len(cells)]
    return b"".join((prefix, memoryview(cells.buffers()[2])[lo:hi - drop], suffix))


def truncated_table(columns: Sequence[bytes], cells: Sequence[pa.Array], truncated: bytes,
                    width: int = 80) -> bytes:
    """`table.truncated_table(columns, rows, truncated, width)` where `cells` are the rows'
    columns (string or binary arrays of equal length, at least one row)."""
    cols = [pc.cast(c, BIN) for c in cells]
    longest = [max(len(title), _longest(col)) for title, col in zip(columns, cols, strict=True)]
    limits = limits_of(columns, longest, truncated, width)
    check_limits(limits, width, True)
    cut = [_cut(col, limit) for col, limit in zip(cols, limits, strict=True)]
    dashes = [b"-" * max(len(title), _longest(col)) for title, col in zip(columns, cut, strict=True)]
    if any(pc.any(pc.match_substring_regex(col, _CONTROL)).as_py() for col in cut) or any(
            TABWRITER_CONTROL.search(t) for t in columns):
        return tabwriter_table([[title, dash, *col.to_pylist()]
                                for title, dash, col in zip(columns, dashes, cut, strict=True)])
    padded, head, rule = [], [], []
    for title, dash, col in zip(columns, dashes, cut, strict=True):
        widths = _widths(col)
        cell_width = max(5, max(pc.max(widths).as_py(), rune_count(title), len(dash)) + 1)
        spaces = pa.array([b" " * n for n in range(cell_width + 1)], BIN)
        padded.append(pc.binary_join_element_wise(
            col, spaces.take(pc.subtract(cell_width, widths)), b""))
        head.append(title + b" " * (cell_width - rune_count(title)))
        rule.append(dash + b" " * (cell_width - len(dash)))
    lines = pc.binary_join_element_wise(*padded, b"\n", b"")
    return joined(lines, prefix=b"".join(head) + b"\n" + b"".join(rule) + b"\n")
