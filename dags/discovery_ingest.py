"""Hourly ingest of Teleport discovery events (`ssm.run`, `azure.run`) into the history store.

* `ingest_events` reads [data_interval_start − lookback, data_interval_end) (lookback: late
  events; dedup on uid makes the overlap free), commits it atomically with the window recorded
  as covered (the store's watermark, `pipeline.store.coverage`: the report DAG builds a window
  only once it is covered), and updates the `discovery-history://runs` Asset (extra
  `window_end`) that triggers the report DAG.
* `snapshot_nodes` / `snapshot_user_tasks` store `tctl get nodes|user_tasks` (command or file)
  captured at the interval end. They run beside the ingest: a failed snapshot never blocks it.
  A snapshot is skipped when the run is older than `snapshot_max_lag` (backfills, catch-up).
* `write_metrics` writes enrollment health (`discovery-history metrics`) atomically to
  `metrics_textfile` (node_exporter's textfile collector) after `ingest_events`, whatever its
  outcome (snapshots still running show from the next run on); skipped when no file is set.
* Manual runs: conf `{"start": "...", "end": "..."}` (or `{"date": "YYYY-MM-DD"}`) ingests that
  window; without conf or interval, the hour before the run. Backfills (`airflow backfill create
  --dag-id discovery_ingest`) replay intervals; rerunning one leaves the store unchanged.

Configuration: `pipeline.schedule.config.Settings` (env `DISCOVERY_HISTORY_*`, Airflow Variable
`discovery_history`), read when a task starts, never at parse time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

HISTORY = Asset("discovery-history://runs")
log = logging.getLogger(__name__)
DEFAULT_ARGS = {
    "owner": "discovery-history",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(minutes=50),
}


def _window(lookback: timedelta):
    """The run's window [start, end), from the Airflow context: the one place it is read."""
    from airflow.sdk import get_current_context

    from pipeline.schedule.windows import ingest_window

    ctx = get_current_context()
    return ingest_window(
        conf=ctx["dag_run"].conf, interval_start=ctx.get("data_interval_start"),
        interval_end=ctx.get("data_interval_end"), run_after=ctx["dag_run"].run_after,
        lookback=lookback)


def _snapshot(kind: str) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from pipeline.ingest.snapshot_cmd import SnapshotStale, capture_snapshot
    from pipeline.schedule.config import airflow_settings
    from pipeline.store import Store

    settings = airflow_settings()
    window = _window(timedelta(0))
    try:
        summary = capture_snapshot(
            Store(settings.store), kind, at=window.at, now=datetime.now(UTC),
            command=settings.argv(kind),
            file=settings.snapshot_file(kind), timeout=settings.snapshot_timeout,
            max_lag=settings.snapshot_max_lag)
    except SnapshotStale as e:
        raise AirflowSkipException(str(e)) from None
    log.info("%s snapshot at %s: %s", kind, window.at, summary)
    return {"kind": kind, "at": window.at.isoformat(), "stored": summary["stored"],
            "duplicates": summary["duplicates"], "quarantined": summary["quarantined"]}


@dag(
    dag_id="discovery_ingest",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["discovery-history", "ingest"],
    doc_md=__doc__,
)
def discovery_ingest():
    @task(outlets=[HISTORY])
    def ingest_events() -> dict:
        """Events of the window into the store (one transaction); updates the history Asset."""
        from airflow.sdk import get_current_context

        from pipeline.ingest.events import ingest_events as ingest
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store

        settings = airflow_settings()
        window = _window(settings.lookback)
        store = Store(settings.store)
        if settings.source_kind == "spool":  # the receiver's spool: all closed files, archived
            from pipeline.ingest.drain import drain_spool
            from pipeline.ingest.events import IngestSummary
            from pipeline.sources.spool import receiving_since

            paths = []
            open_since = receiving_since(settings.source)  # taken before the drain
            summary = drain_spool(store, settings.source) or IngestSummary(ingest_id="")
            # held whole: the window up to the oldest spool file still being written
            covered_to = min(window.end, open_since) if open_since else window.end
            if covered_to > window.start:
                store.cover(window.start, covered_to)
        else:
            # every file that can hold the window's events: the commit records it as covered
            paths = settings.event_sources((window.start, window.end))
            summary = ingest(store, paths, window=(window.start, window.end),
                             record_coverage=True, time_key=settings.time_key)
        ctx = get_current_context()
        log.info("%s", summary.conservation_line())
        ctx["outlet_events"][HISTORY].extra = {"window_start": window.start.isoformat(),
                                               "window_end": window.end.isoformat()}
        return {"start": window.start.isoformat(), "end": window.end.isoformat(),
                "files": len(paths), "read": summary.read, "stored": summary.stored,
                "duplicates": summary.duplicates, "skipped": summary.skipped,
                "quarantined": summary.quarantined, "ingest_id": summary.ingest_id}

    @task(retries=1)
    def snapshot_nodes() -> dict:
        """`tctl get nodes` (or the configured file) captured at the interval end."""
        return _snapshot("nodes")

    @task(retries=1)
    def snapshot_user_tasks() -> dict:
        """`tctl get user_tasks` (or the configured file) captured at the interval end."""
        return _snapshot("user_tasks")

    @task(trigger_rule="all_done", retries=1)
    def write_metrics() -> dict:
        """Enrollment health written atomically to the textfile-collector file, if configured."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.publish.metrics import store_exposition, write_textfile
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store

        settings = airflow_settings()
        if not settings.metrics_textfile:
            raise AirflowSkipException("no metrics_textfile configured")
        data = store_exposition(Store(settings.store), datetime.now(UTC))
        return {"path": str(write_textfile(settings.metrics_textfile, data)), "bytes": len(data)}

    # after the ingest, whatever its outcome (a failed one shows as a stale last ingest); the
    # snapshots stay leaves, so a failed snapshot still fails the run
    ingest_events() >> write_metrics()
    snapshot_nodes()
    snapshot_user_tasks()


discovery_ingest()
