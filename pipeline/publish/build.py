"""The one builder of report folders: `write_history_report` (CLI `report`, the notebook) and
`build_report`, the Airflow DAG's thin adapter over it plus the headline figures of the
`summary_days` days before the window end; all on the `sql/1xx_*` relations.

    build_report(store, "lake/reports/2026-05-30", start=day, end=day + timedelta(days=1))

The folder holds `index.html` (self-contained, every event text escaped), `report.md`, the
failures-only nodes table as `failures.md` and `failures.csv`, the analytics CSVs and the PNG
charts; its failure trend covers the summary period. `pipeline.publish.mail` mails `index.html`
with `failures.csv` attached.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.publish import charts
from pipeline.publish.history import collect, records, render_csv, schema_columns
from pipeline.publish.html import render_html, render_report_markdown
from pipeline.query import analytics
from pipeline.report.gofmt import rfc3339
from pipeline.report.render import RENDERERS


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_history_report(store, out_dir: str | os.PathLike[str], *, start: datetime | int,
                         end: datetime | int, trend_from: datetime | int | None = None,
                         bucket: str | None = None, failures_only: bool = True, top: int = 20,
                         progress: Callable[[str], None] = lambda _: None) -> dict:
    """Write the report of [start, end) into `out_dir`, each file replaced atomically:
    index.html, report.md, failures.{csv,md} (nodes.{csv,md} with failures_only=False),
    instances.csv, trends.csv, reasons.csv, changes.csv and the PNG charts. The trend covers
    [min(trend_from, start), end). Returns a small summary: folder, window, counts, files."""
    with analytics.connect(store) as con:
        rep = collect(con, start, end, trend_from=trend_from, bucket=bucket,
                      failures_only=failures_only, progress=progress)
    progress("charts")
    pngs = charts.report_charts(rep)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "failures" if failures_only else "nodes"
    files = {
        "index.html": render_html(rep, pngs, top=top),
        "report.md": render_report_markdown(rep, list(pngs), top=top, nodes_file=f"{stem}.csv"),
        f"{stem}.csv": RENDERERS["csv"](rep.nodes),
        f"{stem}.md": RENDERERS["markdown"](rep.nodes),
        **{f"{name}.csv": render_csv(schema_columns(t), records(t)) for name, t in (
            ("instances", rep.instances), ("trends", rep.trends), ("reasons", rep.reasons),
            ("changes", rep.changes))},
        **pngs,
    }
    progress("writing files")
    for name, data in files.items():
        _write(out / name, data)
    total = records(rep.summary)[-1]
    return {"dir": str(out), "start": rfc3339(rep.start_ns), "end": rfc3339(rep.end_ns),
            "failures": len(rep.nodes), "attempts": total["attempts"],
            "failed_attempts": total["failures"], "failing_instances": total["failing_instances"],
            "files": sorted(files)}


def build_report(store, out_dir: str | os.PathLike[str], *, start: datetime, end: datetime,
                 summary_days: int = 7) -> dict:
    """Write the report of [start, end) into `out_dir` (failures only; each file replaced
    atomically), its failure trend from `end − summary_days`. Returns `write_history_report`'s
    summary (folder, window, counts, file names) plus the figures of [end − summary_days, end):
    `summary_attempts` (SSM steps folded into one attempt), `summary_failures`,
    `summary_failing_instances` and `summary_still_failing` (newest attempt failed)."""
    if end <= start:
        raise ValueError(f"report window end {end.isoformat()} is not after start {start.isoformat()}")
    if summary_days < 1:
        raise ValueError(f"summary_days must be at least 1, not {summary_days}")
    summary_start = end - timedelta(days=summary_days)
    out = write_history_report(store, out_dir, start=start, end=end, trend_from=summary_start)
    with analytics.connect(store) as con:
        total = records(analytics.summary(con, summary_start, end))[-1]  # the 'all' row
    return {**out, "summary_days": summary_days, "summary_attempts": total["attempts"],
            "summary_failures": total["failures"],
            "summary_failing_instances": total["failing_instances"],
            "summary_still_failing": total["failing_now"]}
