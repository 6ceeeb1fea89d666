"""Day one in production (issue 14, points 2 and 3) under a real Airflow: a report is built only
for a window the store holds whole, a mailed report never changes on disk, `latest` only moves
forward, and a backfill's history events render one report.

The asset-triggered runs are made by the scheduler's own code (`DagModel.dags_needing_dagruns`,
`SchedulerJobRunner._create_dag_runs_asset_triggered`: the max_active_runs deferral and the
event batching), and every run's tasks run as `dag.test()` runs them (`_run_task`), one step at
a time, so each scheduler decision happens at a point the test chooses: no sleeps, no races.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import make_run, write_lines
from tests.dags.conftest import at, run_dag, smtp_connection, state, states, sync_dags

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]
HISTORY_URI = "discovery-history://runs"
DAY = "2026-05-04"
REPORT_RUN = datetime(2026, 5, 5, 0, 30, tzinfo=UTC)  # the daily run that reports 2026-05-04


def _mail_env(monkeypatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_LOOPBACK", smtp_connection(port))
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_CONN_ID", "smtp_loopback")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_RECIPIENTS", "ops@example.com")


def _subjects(inbox) -> list[str]:
    return [str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]).strip()
            for _, _, raw in inbox.messages]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _expected_failures(fleet, start: datetime, end: datetime) -> int:
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_report

    with connect(str(fleet.store)) as con:
        return len(nodes_report(con, start, end, failures_only=True))


def _late_failure(fleet, n: int) -> None:
    """One more failing attempt of 2026-05-04 appears in the audit log (a late-written file)."""
    write_lines(fleet.auth / f"server-late-{n}" / "2026-05-04.00:00:00.log",
                [make_run(f"i-late{n:013d}", "TDS00W", at(20, n), exit_code=1)])


# --- point 2: a fresh deployment -----------------------------------------------------------------


def test_fresh_deployment_mails_the_real_day_once_and_never_an_empty_or_partial_one(
        dags, fleet, smtp_server, monkeypatch, capfd):
    port, inbox = smtp_server
    _mail_env(monkeypatch, port)
    report, ingest = dags["discovery_report"], dags["discovery_ingest"]
    reports = fleet.store / "reports"

    # unpausing: the missed daily run starts at once, before any ingest
    first = run_dag(report, REPORT_RUN)
    assert states(first) == {"wait_for_history": "failed", "render_report": "upstream_failed",
                             "mail_report": "upstream_failed"}
    assert inbox.messages == [] and not reports.exists()
    logs = capfd.readouterr()
    assert "missing [2026-05-04T00:00:00Z, 2026-05-05T00:00:00Z)" in logs.out + logs.err
    assert "airflow dags trigger discovery_ingest --conf" in logs.out + logs.err

    # the scheduled ingest (catchup=False) brings the latest hours only: still not the whole day
    for hour in (10, 11):
        assert state(run_dag(ingest, at(hour))) == "success"
    retry = run_dag(report, REPORT_RUN)
    assert states(retry)["wait_for_history"] == "failed"
    assert inbox.messages == [] and not reports.exists()
    logs = capfd.readouterr()
    assert ("missing [2026-05-04T00:00:00Z, 2026-05-04T08:45:00Z), "
            "[2026-05-04T11:00:00Z, 2026-05-05T00:00:00Z)") in logs.out + logs.err

    # the operator loads the day (a conf window): now the day's report is built and mailed once
    assert state(run_dag(ingest, None, {"date": DAY})) == "success"
    done = run_dag(report, REPORT_RUN)
    assert state(done) == "success", states(done)
    expected = _expected_failures(fleet, datetime(2026, 5, 4, tzinfo=UTC),
                                  datetime(2026, 5, 5, tzinfo=UTC))
    assert expected > 0
    assert _subjects(inbox) == [f"Teleport discovery failures {DAY}: {expected} instance(s)"]
    assert (reports / DAY / "sent.json").exists()
    assert json.loads((reports / DAY / "report.json").read_text())["end"] == (
        "2026-05-05T00:00:00+00:00")


# --- point 2: a mailed report is immutable --------------------------------------------------------


def test_a_mailed_report_never_changes_and_a_different_rebuild_is_a_new_version(
        dags, fleet, smtp_server, monkeypatch):
    port, inbox = smtp_server
    _mail_env(monkeypatch, port)
    report, ingest = dags["discovery_report"], dags["discovery_ingest"]
    folder = fleet.store / "reports" / DAY

    assert state(run_dag(ingest, None, {"date": DAY})) == "success"
    assert state(run_dag(report, REPORT_RUN)) == "success"
    mailed = _files(folder)
    assert "sent.json" in mailed and len(inbox.messages) == 1

    # the same data again: nothing is rebuilt into view, nothing is mailed
    assert state(run_dag(report, REPORT_RUN)) == "success"
    assert _files(folder) == mailed and len(inbox.messages) == 1
    assert not (folder.parent / f"{DAY}.v2").exists()

    # a late event of that day is ingested: the rebuild differs, so it is version 2, mailed as a
    # correction; version 1 stays exactly what was mailed
    _late_failure(fleet, 1)
    assert state(run_dag(ingest, None, {"date": DAY})) == "success"
    assert state(run_dag(report, REPORT_RUN)) == "success"
    assert _files(folder) == mailed
    v2 = folder.parent / f"{DAY}.v2"
    assert b"i-late0000000000001" in (v2 / "failures.csv").read_bytes()
    assert b"i-late0000000000001" not in mailed["failures.csv"]
    n = _expected_failures(fleet, datetime(2026, 5, 4, tzinfo=UTC),
                           datetime(2026, 5, 5, tzinfo=UTC))
    assert _subjects(inbox)[1] == (
        f"Teleport discovery failures {DAY} (correction, version 2): {n} instance(s)")
    assert json.loads((v2 / "report.json").read_text())["version"] == 2

    # corrections kept, not mailed, when the setting says so
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_CORRECTIONS", "keep")
    v2_files = _files(v2)
    _late_failure(fleet, 2)
    assert state(run_dag(ingest, None, {"date": DAY})) == "success"
    assert state(run_dag(report, REPORT_RUN)) == "success"
    assert (folder.parent / f"{DAY}.v3" / "failures.csv").exists()
    assert len(inbox.messages) == 2
    assert _files(v2) == v2_files and _files(folder) == mailed


# --- point 3: backfills, asset events, `latest` -------------------------------------------------


class Scheduler:
    """The scheduler's decisions that matter here, taken when the test says: create the
    asset-triggered runs of the report DAG (its real code), and run a run's ready tasks once."""

    def __init__(self, dags):
        from airflow.serialization.serialized_objects import DagSerialization

        self.dags = dags
        self.serialized = {k: DagSerialization.deserialize_dag(DagSerialization.serialize_dag(d))
                           for k, d in dags.items()}

    def asset_runs(self) -> list:
        """`_create_dagruns_for_dags`, limited to the asset-triggered part (no cron runs)."""
        from airflow import settings
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.dag import DagModel

        with settings.Session() as session:
            query, triggered = DagModel.dags_needing_dagruns(session)
            models = [d for d in query.all() if d.dag_id in triggered]
            SchedulerJobRunner(job=Job())._create_dag_runs_asset_triggered(
                dag_models=models, session=session)
            session.commit()
        return self.runs("discovery_report", "asset_triggered")

    def runs(self, dag_id: str, run_type: str) -> list:
        from airflow import settings
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        with settings.Session() as session:
            return list(session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_type == run_type)
                .order_by(DagRun.id)).all())

    def step(self, run_id: str, dag_id: str) -> dict[str, str]:
        """Run every ready task of the run once (a rescheduled sensor pokes once per step)."""
        from airflow import settings
        from airflow.models.dagrun import DagRun
        from airflow.sdk.definitions.dag import _run_task
        from airflow.utils.state import DagRunState, TaskInstanceState
        from sqlalchemy import select

        with settings.Session() as session:
            dr = session.scalar(select(DagRun).where(DagRun.run_id == run_id,
                                                     DagRun.dag_id == dag_id))
            dr.dag = self.serialized[dag_id]
            if dr.state == DagRunState.QUEUED:  # the scheduler starts it
                dr.set_state(DagRunState.RUNNING)
                session.commit()
            seen = None
            while dr.state == DagRunState.RUNNING:
                session.expire_all()
                ready, _ = dr.update_state(session=session)
                session.commit()  # the run's state, when all its tasks are done
                now = sorted((t.task_id, str(t.state))
                             for t in dr.get_task_instances(session=session))
                if not ready and now == seen:
                    break  # nothing to run and nothing more skipped downstream
                seen = now
                for ti in ready:
                    if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                        ti.try_number += 1
                    ti.state = TaskInstanceState.SCHEDULED
                session.commit()
                for ti in ready:
                    _run_task(ti=ti, task=self.dags[dag_id].task_dict[ti.task_id])
                session.expire_all()
                if any(t.state == TaskInstanceState.UP_FOR_RESCHEDULE
                       for t in dr.get_task_instances(session=session)):
                    break  # the sensor waits: poked again at the next step
            return {ti.task_id: None if ti.state is None else str(getattr(ti.state, "value",
                                                                          ti.state))
                    for ti in dr.get_task_instances(session=session)}


@pytest.fixture
def report_unpaused(dags):
    """The report DAG unpaused (so history events queue runs for it), its sensor waiting as in
    production (timeout 6 h; polled by the test's steps), a clean slate of history events."""
    from airflow import settings
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from sqlalchemy import delete, select, update

    gate = dags["discovery_report"].get_task("wait_for_history")
    saved = gate.timeout
    gate.timeout = 6 * 3600

    def clean(paused: bool) -> None:
        with settings.Session() as session:
            ids = select(AssetModel.id).where(AssetModel.name == HISTORY_URI)
            session.execute(delete(AssetDagRunQueue))
            session.execute(delete(DagRun).where(DagRun.dag_id == "discovery_report",
                                                 DagRun.run_type == "asset_triggered"))
            session.execute(delete(AssetEvent).where(AssetEvent.asset_id.in_(ids)))
            session.execute(update(DagModel).where(DagModel.dag_id == "discovery_report")
                            .values(is_paused=paused))
            session.commit()

    sync_dags()  # the DagModel rows exist before they are unpaused
    clean(paused=False)
    yield
    clean(paused=True)
    gate.timeout = saved


def test_a_backfill_renders_one_report_and_latest_never_moves_back(dags, fleet,
                                                                    report_unpaused):
    from airflow.models.backfill import _create_backfill

    sched = Scheduler(dags)
    ingest = dags["discovery_ingest"]
    latest = fleet.store / "reports" / "latest"

    # history up to 2026-05-04 13:00: a day loaded by a conf window, then the hourly run
    assert state(run_dag(ingest, None, {"start": "2026-05-03T12:00:00Z",
                                        "end": "2026-05-04T12:00:00Z"})) == "success"
    assert state(run_dag(ingest, at(13))) == "success"
    [r0] = sched.asset_runs()
    assert sched.step(r0.run_id, "discovery_report") == {
        "wait_for_history": "success", "render_report": "success", "mail_report": "success"}
    shown = json.loads((latest / "report.json").read_text())
    assert shown["end"] == "2026-05-04T13:00:00+00:00"
    first_latest = _files(latest)

    # a backfill of three older hours: each interval's ingest updates the history Asset
    backfill = _create_backfill(
        dag_id="discovery_ingest", from_date=datetime(2026, 5, 3, 14, tzinfo=UTC),
        to_date=datetime(2026, 5, 3, 16, tzinfo=UTC), max_active_runs=1, reverse=False,
        dag_run_conf=None, triggering_user_name="test")
    ingests = sched.runs("discovery_ingest", "backfill")
    assert [r.backfill_id for r in ingests] == [backfill.id] * 3

    assert sched.step(ingests[0].run_id, "discovery_ingest")["ingest_events"] == "success"
    runs = sched.asset_runs()
    assert len(runs) == 2  # the first event starts a report run at once ...
    r1 = runs[-1]
    assert sched.step(r1.run_id, "discovery_report") == {
        "wait_for_history": "up_for_reschedule", "render_report": None, "mail_report": None}
    for ingest_run in ingests[1:]:  # ... which waits while the backfill goes on
        assert sched.step(ingest_run.run_id, "discovery_ingest")["ingest_events"] == "success"
        assert len(sched.asset_runs()) == 2  # the scheduler holds the new events (max 1 run)
    assert sched.step(r1.run_id, "discovery_report") == {  # superseded by the held events
        "wait_for_history": "skipped", "render_report": "skipped", "mail_report": "skipped"}
    assert _files(latest) == first_latest

    runs = sched.asset_runs()  # one run for the events held during the backfill
    assert len(runs) == 3
    r2 = runs[-1]
    assert sched.step(r2.run_id, "discovery_report") == {
        "wait_for_history": "success", "render_report": "success", "mail_report": "success"}
    # the backfill's events end on 2026-05-03; latest still shows the newest history
    assert json.loads((latest / "report.json").read_text())["end"] == (
        "2026-05-04T13:00:00+00:00")
    assert [r.run_id for r in sched.asset_runs()] == [r.run_id for r in runs]  # no more


# --- the gate's verdicts, as plain values (pipeline.schedule.windows.report_readiness) --------

T = datetime(2026, 5, 4, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("label", "mail", "coverage", "pending", "superseded", "state", "words"),
    [
        pytest.param("2026-05-04", True, [(T, T + 24 * H)], 0, False, "ready", "holds all",
                     id="covered"),
        pytest.param("2026-05-04", True, [(T, T + 24 * H)], 2, False, "wait", "2 discovery_ingest",
                     id="ingest-pending"),
        pytest.param("2026-05-04", True, [(T + 9 * H, T + 11 * H)], 0, False, "wait",
                     "missing [2026-05-04T00:00:00Z, 2026-05-04T09:00:00Z), "
                     "[2026-05-04T11:00:00Z, 2026-05-05T00:00:00Z)", id="day-with-holes-waits"),
        pytest.param("latest", False, [(T + 9 * H, T + 24 * H)], 0, False, "skip",
                     "rolling report", id="latest-not-covered-skips"),
        pytest.param("latest", False, [(T, T + 24 * H)], 0, True, "skip", "superseded",
                     id="superseded"),
    ],
)
def test_report_readiness(label, mail, coverage, pending, superseded, state, words):
    from pipeline.schedule.windows import RunWindow, report_readiness

    got = report_readiness(RunWindow(T, T + 24 * H, label, mail), coverage,
                           ingest_pending=pending, superseded=superseded)
    assert got.state == state and words in got.reason
    if state == "wait" and "missing" in words:
        assert 'airflow dags trigger discovery_ingest --conf \'{"start": "2026-05-04T00:00:00Z", ' \
               '"end": "2026-05-04T09:00:00Z"}\'' in got.reason
