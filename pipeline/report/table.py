"""Go's `text/tabwriter` and Teleport's `asciitable.MakeTableWithTruncatedColumn`, bytes in/out.

Reimplemented from their documented behaviour (cells end at tab, width counted in UTF-8 runes with
each invalid byte as one, column blocks of consecutive lines formatted recursively); only the
settings asciitable uses are supported: no flags, padding with a non-tab character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter


class TableWidthError(ValueError):
    """The table is too narrow for asciitable's budgeting (tctl panics there): widen it."""


_ESCAPE = 0xFF  # tabwriter.Escape: text between two of these is passed through, width minus 2


def rune_count(b: bytes) -> int:
    """Go utf8.RuneCount: UTF-8 runes, each byte of an invalid sequence counting as one."""
    return len(b.decode("utf-8", "surrogateescape"))


@dataclass(slots=True)
class _Cell:
    size: int = 0  # bytes
    width: int = 0  # runes
    htab: bool = False  # terminated by '\t'


class TabWriter:
    """Go's tabwriter.Writer with flags=0: `write` bytes, then `flush`; output in `out`."""

    def __init__(self, minwidth: int, tabwidth: int, padding: int, padchar: bytes = b" ") -> None:
        if padchar == b"\t" or len(padchar) != 1:
            raise ValueError(f"TabWriter: padchar {padchar!r} unsupported; use one non-tab byte")
        self.minwidth, self.tabwidth, self.padding, self.padchar = minwidth, tabwidth, padding, padchar
        self.out = bytearray()
        self._reset()

    def _reset(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.cell = _Cell()
        self.end_char = 0
        self.lines: list[list[_Cell]] = [[]]
        self.widths: list[int] = []

    def _append(self, text: bytes) -> None:
        self.buf += text
        self.cell.size += len(text)

    def _update_width(self) -> None:
        self.cell.width += rune_count(bytes(self.buf[self.pos:]))
        self.pos = len(self.buf)

    def _terminate_cell(self, htab: bool) -> int:
        self.cell.htab = htab
        line = self.lines[-1]
        line.append(self.cell)
        self.cell = _Cell()
        return len(line)

    def _end_escape(self) -> None:
        self._update_width()
        self.cell.width -= 2  # the two Escape bytes are kept but not counted
        self.pos = len(self.buf)
        self.end_char = 0

    def write(self, data: bytes) -> None:
        """Split `data` into cells and lines; a line of one cell (or '\\f') flushes the block."""
        n = 0
        for i, ch in enumerate(data):
            if self.end_char == 0:
                if ch in b"\t\v\n\f":
                    self._append(data[n:i])
                    self._update_width()
                    n = i + 1
                    ncells = self._terminate_cell(ch == 0x09)
                    if ch in b"\n\f":
                        self.lines.append([])
                        if ch == 0x0C or ncells == 1:
                            self._flush()
                elif ch == _ESCAPE:
                    self._append(data[n:i])
                    self._update_width()
                    n = i
                    self.end_char = _ESCAPE
            elif ch == self.end_char:
                self._append(data[n:i + 1])
                n = i + 1
                self._end_escape()
        self._append(data[n:])

    def flush(self) -> bytes:
        """Format everything buffered (Go's Flush) and return all output so far."""
        self._flush()
        return bytes(self.out)

    def _flush(self) -> None:
        if self.cell.size > 0:
            if self.end_char != 0:
                self._end_escape()
            self._terminate_cell(False)
        self._format(0, 0, len(self.lines))
        self._reset()

    def _padding(self, textw: int, cellw: int) -> None:
        self.out += self.padchar * (cellw - textw)

    def _write_lines(self, pos: int, line0: int, line1: int) -> int:
        for i in range(line0, line1):
            for j, c in enumerate(self.lines[i]):
                if c.size > 0:
                    self.out += self.buf[pos:pos + c.size]
                    pos += c.size
                if j < len(self.widths):
                    self._padding(c.width, self.widths[j])
            if i + 1 == len(self.lines):  # the last buffered line has no newline yet
                self.out += self.buf[pos:pos + self.cell.size]
                pos += self.cell.size
            else:
                self.out += b"\n"
        return pos

    def _format(self, pos: int, line0: int, line1: int) -> int:
        """Go's format: each maximal run of lines having a cell in this column is one block."""
        column = len(self.widths)
        this = line0
        while this < line1:
            if column < len(self.lines[this]) - 1:
                pos = self._write_lines(pos, line0, this)
                line0 = this
                width = self.minwidth
                while this < line1 and column < len(self.lines[this]) - 1:
                    width = max(width, self.lines[this][column].width + self.padding)
                    this += 1
                self.widths.append(width)
                pos = self._format(pos, line0, this)
                self.widths.pop()
                line0 = this
            this += 1  # Go's loop post statement runs after a block too (that line ends no block)
        return self._write_lines(pos, line0, line1)


def _go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def truncate_column(cells: Sequence[bytes], limit: int) -> Sequence[bytes]:
    """asciitable's truncateCell on each cell: cut to `limit` bytes + "..." (0 means never cut)."""
    if limit == 0 or not cells or max(map(len, cells)) <= limit:
        return cells
    if limit < 0:
        raise TableWidthError(f"table too narrow: column limit {limit} < 0 (tctl panics here); "
                              "use a width of at least 11")
    return [cell[:limit] + b"..." if len(cell) > limit else cell for cell in cells]


def column_limits(columns: Sequence[bytes], rows: Sequence[Sequence[bytes]], truncated: bytes,
                  width: int) -> list[int]:
    """MakeTableWithTruncatedColumn's MaxCellLength per column for a terminal `width`."""
    longest = [max([len(title), *map(len, cells)])
               for title, cells in zip(columns, _columns_of(rows, len(columns)), strict=True)]
    return limits_of(columns, longest, truncated, width)


def limits_of(columns: Sequence[bytes], longest: Sequence[int], truncated: bytes,
              width: int) -> list[int]:
    """`column_limits` given each column's longest cell in bytes (its title included)."""
    max_col_width = _go_div(width - 16, len(columns) - 1)
    limits, total = [], 0
    for title, limit in zip(columns, longest, strict=True):
        if title != truncated:
            if limit > max_col_width:
                limit, total = max_col_width, total + max_col_width + 4  # "...<space>"
            else:
                total += limit + 1
        limits.append(limit)
    return [max(width - total - 4, 0) if t == truncated else lim for t, lim in zip(columns, limits, strict=True)]


def _columns_of(rows: Sequence[Sequence[bytes]], ncolumns: int) -> list[list[bytes]]:
    # a pass per column: zip(*rows) would take ~4x as long, with a row per argument
    return [list(map(itemgetter(i), rows)) for i in range(ncolumns)]


def truncated_table(columns: Sequence[bytes], rows: Sequence[Sequence[bytes]], truncated: bytes,
                    width: int = 80) -> bytes:
    """asciitable.MakeTableWithTruncatedColumn(...).AsBuffer(): header, dashes, rows, tabwriter'd."""
    if rows and set(map(len, rows)) != {len(columns)}:
        raise ValueError(f"truncated_table: every row needs {len(columns)} cells")
    limits = column_limits(columns, rows, truncated, width)
    check_limits(limits, width, bool(rows))
    cells = _columns_of(rows, len(columns))
    cut = [truncate_column(col, lim) for col, lim in zip(cells, limits, strict=True)]
    table = [[title, b"-" * max([len(title), *map(len, col)]), *col]
             for title, col in zip(columns, cut, strict=True)]
    if any(TABWRITER_CONTROL.search(b"".join(col)) for col in table):
        return tabwriter_table(table)
    return _aligned(table, minwidth=5, padding=1)


def check_limits(limits: list[int], width: int, any_rows: bool) -> None:
    if any_rows and min(limits) < 0:  # asciitable would slice cell[:-n]: tctl panics (W <= 10)
        raise TableWidthError(f"table too narrow for width {width}: column limit {min(limits)} < 0 "
                              "(tctl panics here); use a width of at least 11, or --format json")


def tabwriter_table(table: Sequence[Sequence[bytes]]) -> bytes:
    tw = TabWriter(minwidth=5, tabwidth=0, padding=1, padchar=b" ")
    for line in zip(*table, strict=True):
        tw.write(b"".join(cell + b"\t" for cell in line) + b"\n")
    return tw.flush()


# bytes that make tabwriter end a cell or line, or start an escape
TABWRITER_CONTROL = re.compile(b"[\t\n\v\f\xff]")


def _aligned(table: Sequence[Sequence[bytes]], minwidth: int, padding: int) -> bytes:
    """What TabWriter makes of `table` (columns of cells, each cell + "\\t", each line + "\\n") when
    no cell holds a tabwriter control byte: every line has every column, so each column is one
    block, its cells padded to its widest cell (in runes) + `padding`, at least `minwidth`."""
    padded = []
    for col in table:
        # surrogateescape turns each invalid byte into one character, as rune_count counts it
        texts = b"\n".join(col).decode("utf-8", "surrogateescape").split("\n")
        cell_width = max(minwidth, max(map(len, texts)) + padding)
        padded.append([text.ljust(cell_width) for text in texts])
    lines = map("".join, zip(*padded, strict=True))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
