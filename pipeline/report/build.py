"""The failures report of a window as files: `failures.md`, `failures.csv` and a self-contained
`index.html` (every event text HTML-escaped), plus a summary of the days before the window end.

    build_report(store, "lake/reports/2026-05-30", start=day, end=day + timedelta(days=1))
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.report.gofmt import go_bytes, go_string
from pipeline.report.rows import CLOUD_NAMES, NodeRow

FILES = ("failures.md", "failures.csv", "index.html")

# Attempts, failures and failing instances per cloud, and per cloud and exit code ("API error"
# when the Run Command API call failed), over runs in [from, to); `still_failing` counts
# instances whose newest attempt in the period failed.
_BY_CLOUD = """
WITH last AS (SELECT cloud, count(*) FILTER (WHERE is_failure) AS still_failing
              FROM latest_runs(make_timestamp_ns($1), make_timestamp_ns($2)) GROUP BY cloud)
SELECT r.cloud, count(*) AS attempts, count(*) FILTER (WHERE r.is_failure) AS failures,
       count(DISTINCT r.instance_key) FILTER (WHERE r.is_failure) AS failing_instances,
       coalesce(any_value(last.still_failing), 0) AS still_failing
FROM runs_in_window(make_timestamp_ns($1), make_timestamp_ns($2)) r
LEFT JOIN last USING (cloud)
GROUP BY r.cloud ORDER BY r.cloud
"""
_BY_CODE = """
SELECT cloud, CASE WHEN coalesce(api_error, '') <> '' THEN 'API error'
                   ELSE CAST(exit_code AS VARCHAR) END AS exit_code,
       count(*) AS attempts, count(*) FILTER (WHERE is_failure) AS failures,
       count(DISTINCT instance_key) FILTER (WHERE is_failure) AS failing_instances
FROM runs_in_window(make_timestamp_ns($1), make_timestamp_ns($2))
GROUP BY ALL ORDER BY failures DESC, attempts DESC, cloud, exit_code
"""
CLOUD_COLUMNS = ("cloud", "attempts", "failures", "failing_instances", "still_failing")
CODE_COLUMNS = ("cloud", "exit_code", "attempts", "failures", "failing_instances")


def failure_summary(con, start: datetime, end: datetime) -> dict[str, list[dict]]:
    """Counts by cloud and by (cloud, exit code) over runs in [start, end), as plain rows."""
    from pipeline.query import to_ns

    args = [to_ns(start), to_ns(end)]
    by_cloud = [dict(zip(CLOUD_COLUMNS, r, strict=True)) for r in con.execute(_BY_CLOUD, args).fetchall()]
    by_code = [dict(zip(CODE_COLUMNS, r, strict=True)) for r in con.execute(_BY_CODE, args).fetchall()]
    return {"by_cloud": by_cloud, "by_exit_code": by_code}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_report(store, out_dir: str | os.PathLike[str], *, start: datetime, end: datetime,
                 summary_days: int = 7) -> dict:
    """Write the failures-only nodes report of [start, end) and the `summary_days` summary of
    [end − summary_days, end) into `out_dir` (each file replaced atomically). Rows are in
    tctl's order. Returns a small summary: folder, window, counts, file names."""
    from pipeline.query import connect, nodes_report
    from pipeline.report.render import RENDERERS

    if end <= start:
        raise ValueError(f"report window end {end.isoformat()} is not after start {start.isoformat()}")
    summary_start = end - timedelta(days=summary_days)
    with connect(store) as con:
        rows = nodes_report(con, start, end, failures_only=True)
        summary = failure_summary(con, summary_start, end)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "failures.md", RENDERERS["markdown"](rows))
    _write(out / "failures.csv", RENDERERS["csv"](rows))
    _write(out / "index.html", render_html(rows, summary, start=start, end=end,
                                           summary_start=summary_start))
    totals = {k: sum(r[k] for r in summary["by_cloud"]) for k in CLOUD_COLUMNS[1:]}
    return {"dir": str(out), "start": _iso(start), "end": _iso(end), "failures": len(rows),
            "summary_days": summary_days, **{f"summary_{k}": v for k, v in totals.items()},
            "files": list(FILES)}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _e(value: object) -> str:
    return html.escape(go_string(str(value)), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    if not rows:
        return f'<table><tr>{head}</tr><tr><td colspan="{len(headers)}">{_e(empty)}</td></tr></table>'
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top;font-size:13px}th{background:#f3f3f3}
td{white-space:pre-wrap;word-break:break-word;max-width:40em}h1{font-size:20px}h2{font-size:16px}"""


def _cloud(name: str) -> str:
    return CLOUD_NAMES.get(name, name)


def render_html(rows: Sequence[NodeRow], summary: dict[str, list[dict]], *, start: datetime,
                end: datetime, summary_start: datetime) -> bytes:
    """A self-contained page (inline CSS, no scripts, no external resources); all text escaped."""
    from pipeline.report.render import TEXT_COLUMNS, text_cells

    window = f"{_iso(start)} – {_iso(end)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Discovery failures {_e(window)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Teleport auto-discovery failures, {_e(window)}</h1>",
        f"<p>{len(rows)} instance(s) whose last install attempt failed or that have an open user "
        "task (the <code>tctl discovery nodes --failures-only</code> view of the window).</p>",
        _table(TEXT_COLUMNS, [text_cells(r) for r in rows], "No instances found."),
        f"<h2>Summary, {_e(_iso(summary_start))} – {_e(_iso(end))}</h2>",
        _table(("Cloud", "Attempts", "Failures", "Failing instances", "Still failing"),
               [[_cloud(r["cloud"]), *(r[c] for c in CLOUD_COLUMNS[1:])]
                for r in summary["by_cloud"]], "No attempts."),
        "<h2>By exit code</h2>",
        _table(("Cloud", "Exit code", "Attempts", "Failures", "Failing instances"),
               [[_cloud(r["cloud"]), *(r[c] for c in CODE_COLUMNS[1:])]
                for r in summary["by_exit_code"]], "No attempts."),
        "<p>Full output of every failure: <code>failures.csv</code>.</p>",
        "</body></html>",
    ]
    return go_bytes("\n".join(parts) + "\n")
