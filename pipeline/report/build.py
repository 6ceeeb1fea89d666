"""The report folder of the Airflow DAG: a thin adapter over the one report builder,
`pipeline.report.history.write_history_report` (the same as `discovery-history report` and the
notebook, all on the `sql/1xx_*` relations), plus the headline figures of the `summary_days`
days before the window end.

    build_report(store, "lake/reports/2026-05-30", start=day, end=day + timedelta(days=1))

The folder holds `index.html` (self-contained, every event text escaped), `report.md`, the
failures-only nodes table as `failures.md` and `failures.csv`, the analytics CSVs and the PNG
charts; its failure trend covers the summary period. `pipeline.report.mail` mails `index.html`
with `failures.csv` attached.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta


def build_report(store, out_dir: str | os.PathLike[str], *, start: datetime, end: datetime,
                 summary_days: int = 7) -> dict:
    """Write the report of [start, end) into `out_dir` (failures only; each file replaced
    atomically), its failure trend from `end − summary_days`. Returns `write_history_report`'s
    summary (folder, window, counts, file names) plus the figures of [end − summary_days, end):
    `summary_attempts` (SSM steps folded into one attempt), `summary_failures`,
    `summary_failing_instances` and `summary_still_failing` (newest attempt failed)."""
    from pipeline import analytics
    from pipeline.report.history import records, write_history_report

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
