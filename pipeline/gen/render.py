"""Column-wise assembly of the event lines (pyarrow.compute, no Python per event).

A line is `seg0 v1 seg1 v2 … v6 seg6`: the segments come from the line's template (taken by
template id `g`), each slot value is chosen per row among the per-event columns by the
template's slot code (`pipeline.gen.templates.SLOTS`). Literal lines (noise, malformed) use
an appended template whose only slot is the row's `line`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.gen.plan import DAY, NS
from pipeline.gen.templates import MAX_SLOTS, SLOTS

_HMS: list[pa.Array] = []  # "HH:MM:SS" of every second of a day, built on first use
_LINE = SLOTS.index("line")


def calendar(day0_ns: int, n_days: int) -> pa.Array:
    """"YYYY-MM-DDT" of each day from the UTC midnight `day0_ns` on."""
    return pa.array([datetime.fromtimestamp((day0_ns + d * DAY) // NS, UTC).strftime("%Y-%m-%dT")
                     for d in range(n_days)])


def rfc3339_times(ts: pa.Array, day0_ns: int, days: pa.Array) -> pa.Array:
    """RFC 3339 UTC text of epoch-ns times, trailing fractional zeros trimmed (Go's
    RFC3339Nano), for times within `days` (a `calendar` from `day0_ns`)."""
    if not _HMS:
        two = [f"{i:02d}" for i in range(60)]
        mmss = [m + ":" + s for m in two for s in two]
        _HMS.append(pa.array([h + ":" + x for h in two[:24] for x in mmss]))
    rel = pc.subtract(ts, day0_ns)
    in_day = pc.modulo(rel, DAY)
    frac = pc.modulo(in_day, NS)
    # "1" + nine digits, zeros trimmed, the "1" made the dot ("." alone when frac is 0)
    digits = pc.utf8_rtrim(pc.cast(pc.add(frac, NS), pa.string()), characters="0")
    digits = pc.utf8_replace_slice(digits, start=0, stop=1, replacement=".")
    return pc.binary_join_element_wise(
        days.take(pc.divide(rel, DAY)), _HMS[0].take(pc.divide(in_day, NS)),
        pc.if_else(pc.equal(frac, 0), "", digits), "Z", "")


class Renderer:
    """Templates of one fleet (the `tpl` table) plus the calendar of its day files."""

    def __init__(self, tpl: pa.Table, day0_ns: int, n_days: int) -> None:
        self.lit = tpl.num_rows  # id of the literal-line template
        self.segs = [pa.concat_arrays([tpl[f"seg{j}"].combine_chunks().cast(pa.string()),
                                       pa.array([""])]) for j in range(MAX_SLOTS + 1)]
        self.codes = [pa.concat_arrays([tpl[f"c{j}"].combine_chunks().cast(pa.int8()),
                                        pa.array([_LINE if j == 1 else 0], pa.int8())])
                      for j in range(1, MAX_SLOTS + 1)]
        self.day0_ns = day0_ns
        self.days = calendar(day0_ns, n_days)

    def times(self, ts: pa.Array) -> pa.Array:
        """`rfc3339_times` over this fleet's calendar."""
        return rfc3339_times(ts, self.day0_ns, self.days)

    def lines(self, rows: pa.Table | pa.RecordBatch, newline: bool = False) -> pa.Array:
        """The text of each row (a `rows_query` row), with a trailing newline if asked."""
        g = rows["g"]
        if isinstance(g, pa.ChunkedArray):
            g = g.combine_chunks()
        values = [pa.scalar(""), rows["uid"], self.times(rows["ts"]), rows["cmd"],
                  rows["status"], rows["pid"], rows["line"]]
        parts = [self.segs[0].take(g)]
        for j in range(1, MAX_SLOTS + 1):
            code = self.codes[j - 1].take(g)
            lo, hi = pc.min_max(code).values()
            if hi.as_py() == lo.as_py():  # one slot kind in this batch: no per-row choice
                parts.append(values[lo.as_py() or 0])
            else:
                parts.append(pc.choose(code, *values))
            parts.append(self.segs[j].take(g))
        if newline:
            parts.append("\n")
        out = pc.binary_join_element_wise(*parts, "")
        return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
