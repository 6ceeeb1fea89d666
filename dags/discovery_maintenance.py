"""Daily store upkeep at 03:00 UTC: compact small files per partition (same rows before and
after), apply the optional retention (`retention_days`), rebuild the rollups those steps and the
day's ingests made stale (pipeline/query/rollups.py), then verify the store (schema,
partitions, duplicate uids, row counts vs the ingest log, orphans) and fail loudly on any
inconsistency. Each step is one store transaction; `verify` runs even when a step failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

DEFAULT_ARGS = {
    "owner": "discovery-history",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(hours=1),
    "execution_timeout": timedelta(hours=2),
}


def _today():
    """The day the run stands for (its data interval end, else the run time), from the Airflow
    context: the one place it is read."""
    from airflow.sdk import get_current_context

    from pipeline.schedule.windows import utc

    ctx = get_current_context()
    return utc(ctx.get("data_interval_end") or ctx["dag_run"].run_after).date()


@dag(
    dag_id="discovery_maintenance",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["discovery-history", "maintenance"],
    doc_md=__doc__,
)
def discovery_maintenance():
    @task
    def compact() -> dict:
        """Rewrite partitions with more than one file into one file."""
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store
        from pipeline.store.maintenance import compact as compact_store

        return compact_store(Store(airflow_settings().store))

    @task
    def apply_retention() -> dict:
        """Drop partitions older than `retention_days` (nothing when unset)."""
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store
        from pipeline.store.maintenance import apply_retention as retain

        settings = airflow_settings()
        if settings.retention_days is None:
            return {"skipped": "retention_days is not set: history is kept forever"}
        return retain(Store(settings.store), settings.retention_days, _today())

    @task
    def refresh_rollups() -> dict:
        """Rebuild the rollups the steps before (and the day's ingests) made stale."""
        from pipeline.query import rollup_build
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store

        return rollup_build.refresh(Store(airflow_settings().store))

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def verify() -> dict:
        """Fail with every problem listed when the store is inconsistent."""
        from pipeline.schedule.config import airflow_settings
        from pipeline.store import Store, StoreError
        from pipeline.store.verify import verify as verify_store

        problems = verify_store(Store(airflow_settings().store))
        if problems:
            raise StoreError(f"store verification found {len(problems)} problem(s):\n  "
                             + "\n  ".join(problems))
        return {"problems": 0}

    compact() >> apply_retention() >> refresh_rollups() >> verify()


discovery_maintenance()
