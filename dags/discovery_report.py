"""The daily failures report: Markdown, CSV and an HTML page under `<store>/reports/<label>/`,
mailed (HTML body, CSV attached) when an SMTP connection and recipients are configured.

Runs when the history Asset updates (`discovery-history://runs`, from `discovery_ingest`) OR
daily at 00:30 UTC (`AssetOrTimeSchedule`):
* after an ingest whose window ends at midnight: the report of that UTC day, mailed once;
* after any other ingest: the rolling last 24 h in `reports/latest/` (not mailed);
* the daily run (a safety net when ingestion stalled) and manual runs: the previous UTC day;
  a manual run's conf `{"date": "2026-05-30"}` or `{"start": ..., "end": ...}` picks the window.
Each report also summarises the `report_summary_days` (7) days before its end. A report folder
is mailed once (`sent.json`); delivery failures fail the `mail_report` task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

HISTORY = Asset("discovery-history://runs")  # updated by dags/discovery_ingest.py
DEFAULT_ARGS = {
    "owner": "discovery-history",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(minutes=30),
}


def _window():
    """The report's window and folder, from the Airflow context: the one place it is read."""
    from airflow.sdk import get_current_context

    from pipeline.schedule.windows import report_window, utc

    ctx = get_current_context()
    events = ctx.get("triggering_asset_events") or {}
    ends = [utc(datetime.fromisoformat(e.extra["window_end"]))
            for evs in events.values() for e in evs if (e.extra or {}).get("window_end")]
    return report_window(conf=ctx["dag_run"].conf, asset_ends=ends,
                         interval_end=ctx.get("data_interval_end"),
                         run_after=ctx["dag_run"].run_after)


@dag(
    dag_id="discovery_report",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 0 * * *", timezone="UTC"), assets=HISTORY),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["discovery-history", "report"],
    doc_md=__doc__,
)
def discovery_report():
    @task
    def render_report() -> dict:
        """The window's report folder by the one builder (pipeline.publish.history): the failures
        nodes table as failures.md/.csv, index.html, the 7-day trend and reasons (CSV, PNG)."""
        from pipeline.publish.build import build_report
        from pipeline.schedule.config import airflow_settings, report_dir
        from pipeline.store import Store

        settings = airflow_settings()
        window = _window()
        out = build_report(Store(settings.store), report_dir(settings, window),
                           start=window.start, end=window.end,
                           summary_days=settings.report_summary_days)
        return {**out, "label": window.label, "mail": window.mail}

    @task
    def mail_report(report: dict) -> dict:
        """Mail the page with the CSV attached, once per report folder."""
        from pipeline.publish.mail import send_report
        from pipeline.schedule.config import airflow_settings, smtp_from_airflow

        settings = airflow_settings()
        if not report["mail"]:
            return {"sent": False, "reason": "rolling report: mailed with the day's report"}
        if not settings.report_recipients:
            return {"sent": False, "reason": "no report_recipients configured"}
        smtp = smtp_from_airflow(settings)
        if smtp is None:
            return {"sent": False, "reason": f"no SMTP connection {settings.smtp_conn_id!r}"}
        subject = (f"Teleport discovery failures {report['label']}: "
                   f"{report['failures']} instance(s)")
        return send_report(report["dir"], smtp=smtp, sender=settings.report_sender,
                           recipients=settings.report_recipients, subject=subject,
                           now=datetime.now(UTC))

    mail_report(render_report())


discovery_report()
