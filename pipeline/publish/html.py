"""The report's pages: `render_html` (one self-contained file: inline CSS, charts as data: URIs,
no scripts, a Content-Security-Policy forbidding any) and `render_report_markdown` (same sections,
charts as sibling PNG files). Every text from events is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from pipeline.publish.history import (
    Column,
    HistoryReport,
    cell,
    go_duration,
    instance_label,
    records,
    render_markdown,
)
from pipeline.report.gofmt import go_bytes, rfc3339

INSTANCE_COLUMNS = (
    Column("Instance", "instance"), Column("Cloud", "cloud"), Column("Account", "account_id"),
    Column("Region", "region"), Column("Retries", "retries", "int"),
    Column("Failures", "failures", "int"), Column("Streak", "failure_streak", "int"),
    Column("Dup. runs", "duplicate_runs", "int"),
    Column("First failure", "first_failure", "time"),
    Column("Last failure", "last_failure", "time"), Column("Exit codes", "exit_codes", "list"),
    Column("Last reason", "last_reason"), Column("Online", "is_online"),
)
REASON_COLUMNS = (
    Column("Reason", "reason"), Column("Failures", "failures", "int"),
    Column("Share", "share", "rate"), Column("Instances", "failing_instances", "int"),
    Column("Exit codes", "exit_codes", "list"), Column("Remedy", "remedy"),
)
CHANGE_COLUMNS = (
    Column("Change", "change"), Column("Instance", "instance_key"), Column("Cloud", "cloud"),
    Column("Account", "account_id"), Column("Region", "region"),
    Column("Failures before", "failures_a", "int"), Column("Failures now", "failures_b", "int"),
    Column("Reason before", "reason_a"), Column("Reason now", "reason_b"),
)
WRAP = ("remedy", "Details", "Status", "last_reason", "reason_a", "reason_b")  # long text cells
BREAK = ("Instance", "instance", "instance_key")  # long ids (Azure `<rg>/<vm-id>`) may break
NO_CHARTS = "Charts need matplotlib: pip install 'discovery-history[report]'."
_CSS = """
body{font:14px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.sub{color:#555}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#555;font-size:12px}
table{border-collapse:collapse;margin:4px 0 12px}th,td{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top;font-size:12px}th{background:#f4f4f4}
td{white-space:nowrap}td.w{white-space:pre-wrap;word-break:break-word;min-width:12em;max-width:40em}
td.b{white-space:normal;word-break:break-all;min-width:11.5em}
img{max-width:100%}
.note{color:#666;font-size:12px}"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def figures(rep: HistoryReport) -> list[tuple[str, str]]:
    """The headline figures as (value, label) pairs, from the 'all' summary row and changes."""
    all_row = records(rep.summary)[-1]
    changes = [r["change"] for r in records(rep.changes)]
    per_cloud = " · ".join(f"{r['cloud']} {r['attempts']:,}" for r in records(rep.summary)[:-1])
    median = all_row["median_time_to_enroll"]
    return [
        (f"{all_row['attempts']:,}", f"install attempts ({per_cloud or 'none'})"),
        (f"{all_row['failures']:,}", f"failed attempts ({cell(all_row['failure_rate'], 'rate')})"),
        (f"{all_row['instances']:,}", "instances attempted"),
        (f"{all_row['failing_instances']:,}", "instances with a failure"),
        (f"{all_row['failing_now']:,}", "failing now (newest attempt failed)"),
        (f"{changes.count('newly failing'):,}", "newly failing vs previous period"),
        (f"{changes.count('still failing'):,}", "still failing"),
        (f"{changes.count('recovered'):,}", "recovered"),
        (f"{all_row['duplicate_runs']:,}", "duplicate runs (overlapping matchers)"),
        (go_duration(median) if median is not None else "–",
         f"median time to enroll after a failure ({all_row['enrolled_after_failure']} inst.)"),
    ]


def top_instances(rep: HistoryReport, top: int) -> list[dict]:
    """The `top` instances with the most failures, with display label and retry count."""
    rows = [r for r in records(rep.instances) if r["failures"]][:top]
    return [r | {"instance": instance_label(r), "retries": r["attempts"] - 1} for r in rows]


def _title(rep: HistoryReport) -> str:
    return f"Teleport auto-discovery history, {rfc3339(rep.start_ns)} – {rfc3339(rep.end_ns)}"


def _table(columns: Sequence[Column], rows: Sequence[dict], empty: str) -> str:
    head = "".join(f"<th>{_e(c.header)}</th>" for c in columns)
    if not rows:
        return f'<table><tr>{head}</tr><tr><td colspan="{len(columns)}">{_e(empty)}</td></tr></table>'
    tds = [' class="w"' if c.field in WRAP else ' class="b"' if c.field in BREAK else ""
           for c in columns]
    body = "".join("<tr>" + "".join(f"<td{td}>{_e(cell(r[c.field], c.kind))}</td>"
                                    for c, td in zip(columns, tds, strict=True)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _nodes_rows(rep: HistoryReport) -> tuple[list[Column], list[dict]]:
    from pipeline.report.render import TEXT_COLUMNS, text_cells

    columns = [Column(h, h) for h in TEXT_COLUMNS]
    return columns, [dict(zip(TEXT_COLUMNS, text_cells(r), strict=True)) for r in rep.nodes]


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def render_html(rep: HistoryReport, pngs: dict[str, bytes], *, top: int = 20) -> bytes:
    """The self-contained page: figures, trend chart, reasons, top instances, changes, nodes."""
    from pipeline.publish.charts import REASONS_PNG, TREND_PNG

    cards = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                    for v, k in figures(rep))
    nodes_cols, nodes = _nodes_rows(rep)
    scope = "failures only" if rep.failures_only else "every instance"
    trend = (f"{rfc3339(rep.trend_start_ns)} – {rfc3339(rep.end_ns)}, per {rep.bucket}")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'img-src data:; style-src \'unsafe-inline\'">',
        f"<title>{_e(_title(rep))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(_title(rep))}</h1>",
        f'<p class="sub">Windows are half-open, UTC. Compared with the previous period '
        f"{_e(rfc3339(rep.previous[0]))} – {_e(rfc3339(rep.previous[1]))}.</p>",
        f'<div class="cards">{cards}</div>',
        f"<h2>Failure trend ({_e(trend)})</h2>",
        _img(pngs[TREND_PNG], "failure trend") if TREND_PNG in pngs
        else f'<p class="note">{_e(NO_CHARTS)}</p>',
        "<h2>Top failure reasons</h2>",
        _img(pngs[REASONS_PNG], "top failure reasons") if REASONS_PNG in pngs else "",
        _table(REASON_COLUMNS, records(rep.reasons), "No failed attempts."),
        f"<h2>Top failing instances (of {sum(1 for r in records(rep.instances) if r['failures'])})"
        "</h2>",
        _table(INSTANCE_COLUMNS, top_instances(rep, top), "No failing instances."),
        "<h2>Changes since the previous period</h2>",
        _table(CHANGE_COLUMNS, records(rep.changes)[:top], "No instance failed in either period."),
        f"<h2>Nodes ({_e(scope)}, as <code>tctl discovery nodes</code>)</h2>",
        _table(nodes_cols, nodes, "No instances found."),
        '<p class="note">Full data: instances.csv, trends.csv, reasons.csv, changes.csv and the '
        "nodes table as CSV next to this page.</p>",
        "</body></html>",
    ]
    return go_bytes("\n".join(parts) + "\n")


def render_report_markdown(rep: HistoryReport, png_names: Sequence[str], *, top: int = 20,
                           nodes_file: str = "failures.csv") -> bytes:
    """The report as Markdown, charts linked as the sibling PNG files in `png_names`."""
    from pipeline.publish.charts import REASONS_PNG, TREND_PNG

    nodes_cols, nodes = _nodes_rows(rep)
    md = lambda cols, rows, empty: render_markdown(cols, rows, empty).decode()  # noqa: E731
    parts = [f"# {_title(rep)}", ""]
    parts += [f"* **{v}** {k}" for v, k in figures(rep)] + [""]
    charts = {n: f"![{n}]({n})" for n in png_names}
    parts += ["## Failure trend", "", charts.get(TREND_PNG, NO_CHARTS), ""]
    parts += ["## Top failure reasons", "", charts.get(REASONS_PNG, ""), "",
              md(REASON_COLUMNS, records(rep.reasons), "No failed attempts."),
              "## Top failing instances", "",
              md(INSTANCE_COLUMNS, top_instances(rep, top), "No failing instances."),
              "## Changes since the previous period", "",
              md(CHANGE_COLUMNS, records(rep.changes)[:top], "No instance failed in either period."),
              "## Nodes", "", md(nodes_cols, nodes, "No instances found."),
              f"Every column untruncated: `{nodes_file}`.", ""]
    return go_bytes("\n".join(parts))
