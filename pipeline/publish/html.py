"""The report's pages: `render_html` (one self-contained file: inline CSS, charts as data: URIs,
no scripts, a Content-Security-Policy forbidding any) and `render_report_markdown` (same sections,
charts as sibling PNG files). Every text from events is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import re
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

INSTANCE_COLUMNS = (  # the cloud shows in the label (Azure: `<rg>/<vm-id>`) and the account
    Column("Instance", "instance"), Column("Account / region", "where"),
    Column("Failures", "failures", "int"), Column("Retries", "retries", "int"),
    Column("Streak", "failure_streak", "int"), Column("Dup. runs", "duplicate_runs", "int"),
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
    Column("Change", "change"), Column("Instance", "instance"),
    Column("Account / region", "where"),
    Column("Failures before", "failures_a", "int"), Column("Failures now", "failures_b", "int"),
    Column("Reason before", "reason_a"), Column("Reason now", "reason_b"),
)
WRAP = ("remedy", "Details", "Status", "last_reason", "reason_a", "reason_b")  # long text cells
BREAK = ("Instance", "instance", "Account", "where", "exit_codes")  # long ids may break
NUMBER = ("int", "rate")  # short cells that never wrap
NO_CHARTS = "Charts need matplotlib: pip install 'discovery-history[report]'."
# The page fits its viewport (checked at 1280 and 800 px in Chromium): tables take the page's
# width and wrap their cells, words at spaces and hyphens, long ids and output anywhere, times
# after their `T`; numbers never wrap. No scrolling box: mail clients drop them.
_CSS = """
body{font:14px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.sub{color:#555}
h1,h2,p{overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px;max-width:100%;
box-sizing:border-box}
.card b{display:block;font-size:22px}.card span{color:#555;font-size:12px}
table{border-collapse:collapse;margin:4px 0 12px;width:100%}
th,td{border:1px solid #ddd;padding:3px 4px;text-align:left;vertical-align:top;font-size:12px}
th{background:#f4f4f4}td.n,span.n{white-space:nowrap}
td.b{white-space:pre-line;overflow-wrap:anywhere}
td.w{white-space:pre-wrap;overflow-wrap:anywhere;min-width:7em}
img{max-width:100%;height:auto}
.note{color:#666;font-size:12px}"""
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT)(\S+)$")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def figures(rep: HistoryReport) -> list[tuple[str, str]]:
    """The headline figures as (value, label) pairs, from the 'all' summary row and changes."""
    all_row = records(rep.summary)[-1]
    changes = [r["change"] for r in records(rep.changes)]
    per_cloud = " · ".join(f"{r['cloud']} {r['attempts']:,}" for r in records(rep.summary)[:-1])
    median = all_row["median_time_to_enroll"]
    if rep.previous_has_data:
        compared = [(f"{changes.count('newly failing'):,}", "newly failing vs previous period"),
                    (f"{changes.count('still failing'):,}", "still failing"),
                    (f"{changes.count('recovered'):,}", "recovered")]
    else:  # every failing instance would read "newly failing": say why there is no comparison
        compared = [("–", f"newly failing: {no_previous(rep)}")]
    from datetime import timedelta

    from pipeline.query.analytics import DUP_WINDOW

    dup = go_duration(DUP_WINDOW // timedelta(microseconds=1) * 1000)
    return [
        (f"{all_row['attempts']:,}", f"install attempts ({per_cloud or 'none'})"),
        (f"{all_row['failures']:,}", f"failed attempts ({cell(all_row['failure_rate'], 'rate')})"),
        (f"{all_row['instances']:,}", "instances attempted"),
        (f"{all_row['failing_instances']:,}", "instances with a failure"),
        (f"{all_row['failing_now']:,}", "failing now (newest attempt failed)"),
        *compared,
        (f"{all_row['retries']:,}", "retries (attempts after an instance's first failure)"),
        (f"{all_row['duplicate_runs']:,}",
         f"duplicate runs (started less than {dup} after the previous attempt)"),
        (go_duration(median) if median is not None else "–",
         f"median time to enroll after a failure ({all_row['enrolled_after_failure']} inst.)"),
    ]


def no_previous(rep: HistoryReport) -> str:
    """Why the report compares with nothing: no data is stored for the previous period."""
    return (f"no data stored for the previous period ({rfc3339(rep.previous[0])} – "
            f"{rfc3339(rep.previous[1])})")


def _shown(r: dict) -> dict:
    """A row with its display label (tctl's Instance text) and account over region."""
    return r | {"instance": instance_label(r), "where": f"{r['account_id']}\n{r['region']}"}


def top_instances(rep: HistoryReport, top: int) -> list[dict]:
    """The `top` instances with the most failures, as shown."""
    return [_shown(r) for r in records(rep.instances) if r["failures"]][:top]


def changes(rep: HistoryReport, top: int) -> list[dict]:
    """The first `top` changes since the previous period, as shown."""
    return [_shown(r) for r in records(rep.changes)[:top]]


def _title(rep: HistoryReport) -> str:
    return f"Teleport auto-discovery history, {rfc3339(rep.start_ns)} – {rfc3339(rep.end_ns)}"


def _table(columns: Sequence[Column], rows: Sequence[dict], empty: str) -> str:
    head = "".join(f"<th>{_e(c.header)}</th>" for c in columns)
    if not rows:
        return f'<table><tr>{head}</tr><tr><td colspan="{len(columns)}">{_e(empty)}</td></tr></table>'
    tds = [' class="w"' if c.field in WRAP else ' class="b"' if c.field in BREAK
           else ' class="n"' if c.kind in NUMBER else "" for c in columns]
    body = "".join("<tr>" + "".join(f"<td{td}>{_text(cell(r[c.field], c.kind))}</td>"
                                    for c, td in zip(columns, tds, strict=True)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value: str) -> str:
    """A cell's text, escaped; an RFC 3339 time may break after its `T`."""
    m = _TIME.match(value)
    if m:  # the date and the time each stay whole
        return f'<span class="n">{_e(m.group(1))}</span><wbr>{_e(m.group(2))}'
    return _e(value)


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
        f'<p class="sub">Windows are half-open, UTC. {_e(_compared(rep))}</p>',
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
        "" if rep.previous_has_data else f'<p class="note">{_e(_no_comparison(rep))}</p>',
        _table(CHANGE_COLUMNS, changes(rep, top), "No instance failed in either period."),
        f"<h2>Nodes ({_e(scope)}, as <code>tctl discovery nodes</code>)</h2>",
        _table(nodes_cols, nodes, "No instances found."),
        '<p class="note">Full data: instances.csv, trends.csv, reasons.csv, changes.csv and the '
        "nodes table as CSV next to this page.</p>",
        "</body></html>",
    ]
    return go_bytes("\n".join(parts) + "\n")


def _compared(rep: HistoryReport) -> str:
    if rep.previous_has_data:
        return (f"Compared with the previous period {rfc3339(rep.previous[0])} – "
                f"{rfc3339(rep.previous[1])}.")
    return f"Not compared: {no_previous(rep)}."


def _no_comparison(rep: HistoryReport) -> str:
    return (f"No data is stored for the previous period ({rfc3339(rep.previous[0])} – "
            f"{rfc3339(rep.previous[1])}): every instance failing now shows as newly failing.")


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
              *([] if rep.previous_has_data else [_no_comparison(rep), ""]),
              md(CHANGE_COLUMNS, changes(rep, top), "No instance failed in either period."),
              "## Nodes", "", md(nodes_cols, nodes, "No instances found."),
              f"Every column untruncated: `{nodes_file}`.", ""]
    return go_bytes("\n".join(parts))
