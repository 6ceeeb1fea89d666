"""The daily failures report: Markdown, CSV and an HTML page under `<store>/reports/<label>/`,
mailed (HTML body, CSV attached) when an SMTP connection and recipients are configured.

Runs when the history Asset updates (`discovery-history://runs`, from `discovery_ingest`) OR
daily at 00:30 UTC (`AssetOrTimeSchedule`):
* after ingests whose history reaches a midnight: the report of that UTC day, mailed;
* after any other ingest: the rolling last 24 h in `reports/latest/` (not mailed; it only
  moves forward);
* the daily run (a safety net when ingestion stalled) and manual runs: the previous UTC day;
  a manual run's conf `{"date": "2026-05-30"}` or `{"start": ..., "end": ...}` picks the window.

`wait_for_history` (a sensor in reschedule mode: no worker slot between pokes) builds a window
only when the store holds it whole: the ingests record the windows they committed (the
watermark, `pipeline.store.coverage`). It waits while `discovery_ingest` has runs queued or
running, then until the window is covered (up to 6 h, naming what is missing and how to load
it); a rolling report that is not covered is skipped. An asset-triggered run that sees newer
history events than its own skips: the scheduler holds those events (max_active_runs=1) for
one next run, so a backfill's events render once, after its last interval.

A mailed report is immutable (`pipeline.publish.versions`): a later build that differs is a new
version `<label>.v2/`, mailed as a correction or kept (`report_corrections`); delivery failures
fail `mail_report`. Each report also summarises the `report_summary_days` (7) days before its end.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

HISTORY = Asset("discovery-history://runs")  # updated by dags/discovery_ingest.py
log = logging.getLogger(__name__)
DEFAULT_ARGS = {
    "owner": "discovery-history",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(minutes=30),
}


def _window(coverage):
    """The report's window and folder, from the Airflow context: the one place it is read. After
    history updates the window ends where the history is held whole up to (its newest covered
    end), not at whichever events this run consumed."""
    from airflow.sdk import get_current_context

    from pipeline.schedule.windows import report_window, utc
    from pipeline.store.coverage import newest

    ctx = get_current_context()
    events = ctx.get("triggering_asset_events") or {}
    ends = [utc(datetime.fromisoformat(e.extra["window_end"]))
            for evs in events.values() for e in evs if (e.extra or {}).get("window_end")]
    if ends and (held := newest(coverage)) is not None:
        ends.append(held)
    return report_window(conf=ctx["dag_run"].conf, asset_ends=ends,
                         interval_end=ctx.get("data_interval_end"),
                         run_after=ctx["dag_run"].run_after)


def _superseded() -> bool:
    """Whether this asset-triggered run is superseded: the history Asset has an event newer
    than the run's start. Such an event has queued the next run (the scheduler queues a run for
    every event after it created this one, and holds it while this one is active:
    max_active_runs=1), which renders instead. An event between this run's triggering events and
    its start may have queued nothing (Airflow queues once per run), so it does not count: this
    run's window already reaches it (the history's covered end)."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    started = ctx["dag_run"].start_date
    if not ctx.get("triggering_asset_events") or started is None:
        return False
    latest = list(ctx["inlet_events"][HISTORY].ascending(False).limit(1))
    return bool(latest) and latest[0].timestamp > started


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
    @task.sensor(poke_interval=180, timeout=6 * 3600, mode="reschedule", inlets=[HISTORY])
    def wait_for_history():
        """Ready when no ingest is pending and the store holds the whole window (module doc);
        returns the window for the tasks after it."""
        from airflow.sdk import PokeReturnValue, get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.schedule.config import airflow_settings
        from pipeline.schedule.windows import INGEST_DAG, report_readiness
        from pipeline.store import Store

        settings = airflow_settings()
        coverage = Store(settings.store).coverage()
        window = _window(coverage)
        ctx = get_current_context()
        ti, tlog = ctx["ti"], ctx["task"].log
        pending = ti.get_dr_count(dag_id=INGEST_DAG, states=["queued", "running"])
        verdict = report_readiness(window, coverage, ingest_pending=pending,
                                   superseded=_superseded())
        (tlog.info if verdict.state == "ready" else tlog.warning)(
            "report %s: %s: %s", window.label, verdict.state, verdict.reason)
        if verdict.state == "skip":
            raise AirflowSkipException(verdict.reason)
        return PokeReturnValue(is_done=verdict.state == "ready", xcom_value={
            "start": window.start.isoformat(), "end": window.end.isoformat(),
            "label": window.label, "mail": window.mail})

    @task
    def render_report(window: dict) -> dict:
        """The window's report folder by the one builder (pipeline.publish.history): the failures
        nodes table as failures.md/.csv, index.html, the 7-day trend and reasons (CSV, PNG);
        put in place by pipeline.publish.versions (a mailed report is never overwritten)."""
        from pipeline.publish.build import build_report
        from pipeline.publish.versions import publish_report
        from pipeline.schedule.config import airflow_settings, reports_root
        from pipeline.store import Store

        settings = airflow_settings()
        start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
        store = Store(settings.store)
        out = publish_report(
            reports_root(settings), label=window["label"], start=start, end=end,
            mail=window["mail"], corrections=settings.report_corrections,
            build=lambda folder: build_report(store, folder, start=start, end=end,
                                              summary_days=settings.report_summary_days))
        log.info("report %s: %s (%s)", window["label"], out["action"], out["dir"])
        return out

    @task
    def mail_report(report: dict) -> dict:
        """Mail the page with the CSV attached, once per report version."""
        from pipeline.publish.mail import send_report, smtp_connection_exists
        from pipeline.schedule.config import airflow_settings

        settings = airflow_settings()
        if not report["mail"]:
            reason = report.get("reason") or (
                "rolling report: mailed with the day's report" if report["label"] == "latest"
                else f"correction v{report['version']} kept (report_corrections=keep)")
            return {"sent": False, "reason": reason}
        if not settings.report_recipients:
            return {"sent": False, "reason": "no report_recipients configured"}
        if not smtp_connection_exists(settings.smtp_conn_id):
            return {"sent": False, "reason": f"no SMTP connection {settings.smtp_conn_id!r}"}
        what = (f"{report['label']} (correction, version {report['version']})"
                if report["correction"] else report["label"])
        subject = f"Teleport discovery failures {what}: {report['failures']} instance(s)"
        return send_report(report["dir"], conn_id=settings.smtp_conn_id,
                           sender=settings.report_sender,
                           recipients=settings.report_recipients, subject=subject,
                           now=datetime.now(UTC))

    mail_report(render_report(wait_for_history()))


discovery_report()
