"""The history report, the one builder of report folders (CLI `report`, the Airflow DAG):
summary figures, failure trend, top reasons, top failing instances, changes against the previous
period and the nodes table, as index.html (self-contained), report.md, CSVs and PNG charts.

Also the renderers of history tables (`render_table`: text, csv, json, markdown) that the CLI's
`history` and `trends` use. Renderers are pure `rows -> bytes`; only `write_history_report`
writes files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.report.gofmt import go_bytes, rfc3339, rfc3339nano
from pipeline.report.table import TabWriter

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("text", "csv", "json", "markdown")
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
RATE_FIELDS = ("failure_rate", "share")
DURATION_FIELDS = ("since_previous", "time_to_enroll", "median_time_to_enroll")  # integer ns


@dataclass(frozen=True)
class Column:
    """One output column: header (text/markdown), record field (csv/json keys) and value kind:
    text | int | time | duration | rate | list."""

    header: str
    field: str
    kind: str = "text"


def schema_columns(table: pa.Table) -> list[Column]:
    """Every column of an analytics table, headed by its field name, kinds from its Arrow types."""
    import pyarrow as pa

    def kind(f: pa.Field) -> str:
        if pa.types.is_timestamp(f.type):
            return "time"
        if pa.types.is_interval(f.type) or pa.types.is_duration(f.type):
            return "duration"
        if pa.types.is_list(f.type):
            return "list"
        if f.name in RATE_FIELDS:
            return "rate"
        if f.name in DURATION_FIELDS:
            return "duration"
        return "int" if pa.types.is_integer(f.type) else "text"
    return [Column(f.name, f.name, kind(f)) for f in table.schema]


def records(table: pa.Table) -> list[dict]:
    """Rows as plain dicts: timestamps and intervals as integer nanoseconds, lists as lists."""
    import pyarrow as pa

    cols = {}
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_timestamp(f.type):
            cols[f.name] = col.cast(pa.timestamp("ns")).cast(pa.int64()).to_pylist()
        elif pa.types.is_interval(f.type):
            cols[f.name] = [None if v is None else (v.months * 30 + v.days) * DAY_NS + v.nanoseconds
                            for v in col.to_pylist()]
        else:
            cols[f.name] = col.to_pylist()
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)] \
        if cols else []


def go_duration(ns: int) -> str:
    """Nanoseconds as a duration cut to whole seconds (toward zero), in Go's style: `0s`, `45s`,
    `12m5s`, `26h3m0s` (1m59.999999999s is `1m59s`, as times are cut to seconds beside it)."""
    sign, s = ("-", -ns // 10**9) if ns < 0 else ("", ns // 10**9)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{sec}s"
    return f"{sign}{m}m{sec}s" if m else f"{sign}{sec}s"


def go_duration_exact(ns: int) -> str:
    """Nanoseconds exactly as Go's time.Duration prints them: `1m59.999999999s`, `1.5s`,
    `250ms`, `1.5µs`, `7ns`, `0s`."""
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u == 0:
        return "0s"
    if u < 10**9:
        unit, div = ("ns", 1) if u < 1000 else ("µs", 1000) if u < 10**6 else ("ms", 10**6)
        return sign + _decimal(u, div) + unit
    secs, frac = divmod(u, 10**9)
    h, rem = divmod(secs, 3600)
    m, sec = divmod(rem, 60)
    text = _decimal(sec * 10**9 + frac, 10**9) + "s"
    if h:
        return f"{sign}{h}h{m}m{text}"
    return f"{sign}{m}m{text}" if m else sign + text


def _decimal(value: int, div: int) -> str:
    """value / div in decimal, trailing zeros of the fraction dropped."""
    whole, frac = divmod(value, div)
    digits = f"{frac:0{len(str(div)) - 1}d}".rstrip("0") if div > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)


def cell(value, kind: str, *, exact: bool = False) -> str:
    """A value as text: times RFC 3339 and durations (integer ns) Go-style, both to the second,
    or to the nanosecond when `exact`; rates as percent (a plain number when `exact`), lists
    comma-joined, NULL as empty."""
    if value is None:
        return ""
    if kind == "time":
        return rfc3339nano(value) if exact else rfc3339(value)
    if kind == "duration":
        return go_duration_exact(value) if exact else go_duration(value)
    if kind == "rate":
        return repr(float(value)) if exact else f"{float(value) * 100:.1f}%"
    if kind == "list":
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _json_value(value, kind: str):
    if value is None or kind in ("int", "list"):
        return value
    if kind == "rate":
        return float(value)
    return value if isinstance(value, bool) else cell(value, kind, exact=True)


def cut(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with "..." when longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def render_text(columns: Sequence[Column], rows: Sequence[dict], width: int | None = None,
                empty: str = "Nothing found.") -> bytes:
    """An aligned table (two spaces between columns, dashes under the header); with `width`, the
    last column is cut so that lines fit (at least 20 characters of it stay)."""
    if not rows:
        return go_bytes(empty + "\n")
    cells = [[" ".join(cell(r[c.field], c.kind).splitlines()) for c in columns] for r in rows]
    widths = [max(len(c.header), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if width:
        limit = max(width - sum(w + 2 for w in widths[:-1]), 20)
        cells = [[*row[:-1], cut(row[-1], limit)] for row in cells]
        widths[-1] = max(len(columns[-1].header), *(len(row[-1]) for row in cells))
    tw = TabWriter(minwidth=0, tabwidth=0, padding=2)
    lines = [[c.header for c in columns], ["-" * w for w in widths], *cells]
    for line in lines:
        tw.write(go_bytes("\t".join(line) + "\n"))
    return tw.flush()


def render_csv(columns: Sequence[Column], rows: Sequence[dict]) -> bytes:
    """RFC 4180 CSV keyed by field names; times with nanoseconds, rates as fractions."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.field for c in columns])
    w.writerows([cell(r[c.field], c.kind, exact=True) for c in columns] for r in rows)
    return go_bytes(buf.getvalue())


def render_json(columns: Sequence[Column], rows: Sequence[dict]) -> bytes:
    """A JSON array of objects keyed by field names (2-space indent; `[]` when empty)."""
    objs = [{c.field: _json_value(r[c.field], c.kind) for c in columns} for r in rows]
    return go_bytes(json.dumps(objs, indent=2, ensure_ascii=False) + "\n")


def md_cell(text: str) -> str:
    """Text safe in a GitHub table cell: `\\`, `|`, `<`, `>` escaped, line breaks as <br>."""
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(text.splitlines())


def render_markdown(columns: Sequence[Column], rows: Sequence[dict],
                    empty: str = "Nothing found.") -> bytes:
    """A GitHub table (headers, escaped cells); the `empty` notice under the header when empty."""
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(md_cell(cell(r[c.field], c.kind)) for c in columns) + " |"
              for r in rows]
    if not rows:
        lines += ["", empty]
    return go_bytes("\n".join(lines) + "\n")


def render_table(fmt: str, columns: Sequence[Column], rows: Sequence[dict], *,
                 width: int | None = None, empty: str = "Nothing found.") -> bytes:
    """Dispatch on `fmt` (text|csv|json|markdown); rows are rendered in the order given."""
    if fmt == "text":
        return render_text(columns, rows, width, empty)
    if fmt == "markdown":
        return render_markdown(columns, rows, empty)
    return {"csv": render_csv, "json": render_json}[fmt](columns, rows)


def auto_bucket(start_ns: int, end_ns: int) -> str:
    """'hour' for windows up to three days, else 'day'."""
    return "hour" if end_ns - start_ns <= 3 * DAY_NS else "day"


def excerpt(rec: dict) -> str:
    """The telling line of an attempt: the API error, else the first line of stderr, else the
    last line of stdout, else the status; banner lines (one word or none, like `---ERROR---`)
    only when nothing else is there."""
    for text, last in ((rec.get("api_error"), False), (rec.get("stderr"), False),
                       (rec.get("stdout"), True), (rec.get("status"), False)):
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        telling = [ln for ln in lines if len(re.findall(r"\w+", ln)) > 1] or lines
        if telling:
            return telling[-1] if last else telling[0]
    return ""


def instance_label(rec: dict) -> str:
    """tctl's Instance text: the EC2 id, or `<resource-group>/<vm-id>` for Azure."""
    if rec["cloud"] == "aws":
        return rec.get("instance_id") or rec["instance_key"]
    vm = rec.get("vm_id") or rec["instance_key"]
    return f"{rec['resource_group']}/{vm}" if rec.get("resource_group") else vm


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryReport:
    """Everything a report shows, as plain rows; windows are [start, end) in ns."""

    start_ns: int
    end_ns: int
    trend_start_ns: int  # the trend covers [trend_start, end); everything else [start, end)
    bucket: str
    previous: tuple[int, int]  # the period compared with: as long as the window, just before
    previous_has_data: bool  # run events are stored for `previous` (else: nothing to compare)
    summary: pa.Table
    trends: pa.Table  # failure_trends by category
    reasons: pa.Table
    instances: pa.Table  # instance_history, most failures first
    changes: pa.Table
    nodes: list  # NodeRow, tctl's order
    failures_only: bool


def collect(con, start: datetime | int, end: datetime | int, *, trend_from=None,
            bucket: str | None = None, failures_only: bool = True,
            progress: Callable[[str], None] = lambda _: None) -> HistoryReport:
    """Query every part of the report of [start, end) on an analytics connection."""
    from pipeline.query import analytics as an
    from pipeline.report.nodes import nodes_report
    from pipeline.timeutil import to_ns

    lo, hi = to_ns(start), to_ns(end)
    trend_lo = min(lo, to_ns(trend_from)) if trend_from is not None else lo
    bucket = bucket or auto_bucket(trend_lo, hi)
    previous = (2 * lo - hi, lo)
    progress("summary")
    summary = an.summary(con, lo, hi)
    progress("failure trend")
    trends = an.failure_trends(con, trend_lo, hi, bucket=bucket, by="category")
    progress("reasons and instances")
    reasons = an.top_reasons(con, lo, hi)
    instances = an.instance_history(con, lo, hi)
    progress("changes since the previous period")
    changes = an.compare_periods(con, previous, (lo, hi))
    previous_has_data = an.has_runs(con, *previous)
    progress("nodes table")
    nodes = nodes_report(con, lo, hi, failures_only=failures_only)
    return HistoryReport(lo, hi, trend_lo, bucket, previous, previous_has_data, summary, trends,
                         reasons, instances, changes, nodes, failures_only)
