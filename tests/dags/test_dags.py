"""The DAGs under a real Airflow (fresh SQLite home per session, `dag.test()`), plus the pure
window/config/snapshot-command functions they are built on."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.dags.conftest import (
    DAGS,
    REPO,
    SCRIPT,
    SMTP_PASSWORD,
    at,
    run_dag,
    smtp_connection,
    state,
    states,
)

pytestmark = [
    # dag.test() drives the task API through starlette's test client, which warns about httpx
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
    # the loopback SMTP server takes AUTH without TLS on purpose
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]
HISTORY_URI = "discovery-history://runs"
DAG_IDS = {"discovery_ingest", "discovery_report", "discovery_maintenance"}


def _runs(store_root: Path) -> list[tuple]:
    """Every stored run and join, without the ingest id (which names the write)."""
    from pipeline.query.views import connect

    with connect(str(store_root)) as con:
        runs = con.execute("SELECT * EXCLUDE (ingest_id) FROM runs ORDER BY uid").fetchall()
        joins = con.execute("SELECT * EXCLUDE (ingest_id) FROM joins ORDER BY uid").fetchall()
    return runs + joins


def _snapshot_times(store_root: Path) -> list[tuple[str, datetime]]:
    from pipeline.query.views import connect

    with connect(str(store_root)) as con:
        return con.execute(
            "SELECT kind, captured_at FROM snapshot_log ORDER BY captured_at, kind").fetchall()


def _asset_extra(run) -> dict:
    """The extra of the history Asset event a run emitted (from Airflow's metadata DB)."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with settings.Session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == HISTORY_URI, AssetEvent.source_run_id == run.run_id)).all()
        assert len(events) == 1
        return events[0].extra


def _version(store_root: Path) -> int:
    from pipeline.store import Store

    return Store(store_root).manifest().version


# --- parsing and structure --------------------------------------------------------------------


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


def test_parsing_does_no_io_and_no_heavy_imports(airflow_home, tmp_path):
    """Parse the DAG files in a clean interpreter with an audit hook: no file under the
    configured store/source is touched, no process spawned, no socket opened, and neither
    the pipeline's data stack (duckdb, pyarrow) nor its settings are imported."""
    sentinel = tmp_path / "sentinel"
    probe = textwrap.dedent(f"""
        import json, sys
        events = []
        def hook(name, args):
            if name == "open" and args and "sentinel" in str(args[0]):
                events.append(f"open {{args[0]}}")
            elif name in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
                events.append(f"{{name}} {{args[:2]}}")
            elif name == "socket.connect":
                events.append(f"connect {{args[1]}}")
        from airflow.dag_processing.dagbag import DagBag
        before = set(sys.modules)
        sys.addaudithook(hook)
        bag = DagBag({str(DAGS)!r})
        heavy = sorted(m for m in set(sys.modules) - before
                       if m.split(".")[0] in ("duckdb", "pyarrow", "pandas", "pydantic_settings")
                       or m.startswith("pipeline"))
        print(json.dumps({{"errors": bag.import_errors, "dags": sorted(bag.dag_ids),
                          "events": events, "heavy": heavy}}))
    """)
    env = {**os.environ,
           "DISCOVERY_HISTORY_STORE": str(sentinel / "lake"),
           "DISCOVERY_HISTORY_SOURCE": str(sentinel / "auth"),
           "DISCOVERY_HISTORY_NODES_FILE": str(sentinel / "nodes.json"),
           "DISCOVERY_HISTORY_LOOKBACK": "not-a-duration"}  # invalid config must not break parse
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          timeout=600)  # a hang guard: >120 s seen at load 18
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert set(out["dags"]) == DAG_IDS
    assert out["events"] == []
    assert out["heavy"] == []


def _check_common(dag, tag: str):
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert {"discovery-history", tag} <= set(dag.tags)
    assert dag.start_date.tzinfo is not None
    for t in dag.tasks:
        assert t.retries >= 1 or t.task_id == "verify", t.task_id
        if t.retries:
            assert t.retry_exponential_backoff >= 2, t.task_id
            assert t.max_retry_delay is not None, t.task_id


def test_ingest_dag_structure(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["discovery_ingest"]
    _check_common(dag, "ingest")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)  # cron strings carry no interval
    assert dag.timetable.expression == "0 * * * *"
    assert set(dag.task_ids) == {"ingest_events", "snapshot_nodes", "snapshot_user_tasks",
                                 "write_metrics"}
    ingest = dag.get_task("ingest_events")
    assert [o.name for o in ingest.outlets] == [HISTORY_URI]
    for snap in ("snapshot_nodes", "snapshot_user_tasks"):  # independent: never block ingest
        t = dag.get_task(snap)
        assert not t.upstream_task_ids and not t.downstream_task_ids
    assert not ingest.upstream_task_ids
    metrics = dag.get_task("write_metrics")  # after the ingest, whatever its outcome
    assert metrics.upstream_task_ids == {"ingest_events"}
    assert metrics.trigger_rule == "all_done"


def test_report_dag_structure(dagbag):
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    dag = dagbag.dags["discovery_report"]
    _check_common(dag, "report")
    tt = dag.timetable
    assert isinstance(tt, AssetOrTimeSchedule)
    assert isinstance(tt.timetable, CronTriggerTimetable)
    assert tt.timetable.expression == "30 0 * * *"  # daily
    assert tt.asset_condition.name == HISTORY_URI  # the ingest DAG's outlet
    assert dag.get_task("mail_report").upstream_task_ids == {"render_report"}
    gate = dag.get_task("wait_for_history")  # builds a window only once the store holds it
    assert dag.get_task("render_report").upstream_task_ids == {"wait_for_history"}
    assert gate.mode == "reschedule" and gate.poke_interval > 0 and gate.timeout >= 3600
    assert [i.name for i in gate.inlets] == [HISTORY_URI]


def test_maintenance_dag_structure(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["discovery_maintenance"]
    _check_common(dag, "maintenance")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "0 3 * * *"
    assert dag.get_task("apply_retention").upstream_task_ids == {"compact"}
    assert dag.get_task("refresh_rollups").upstream_task_ids == {"apply_retention"}
    verify = dag.get_task("verify")
    assert verify.upstream_task_ids == {"refresh_rollups"}
    assert verify.trigger_rule == "all_done"  # verify even when a step failed


def test_ruff_airflow3_rules_pass_on_dags():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "AIR3", "dags/"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the ingest DAG, run for real -------------------------------------------------------------


def test_two_consecutive_intervals_equal_one_ingest_of_their_union(dags, fleet, tmp_path):
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    first = run_dag(dags["discovery_ingest"], at(10))  # interval [09:00, 10:00)
    second = run_dag(dags["discovery_ingest"], at(11))  # interval [10:00, 11:00)
    for run in (first, second):
        assert state(run) == "success", states(run)

    union = tmp_path / "union"  # both read 15 min early: [08:45, 11:00)
    ingest_events(Store(union), [str(fleet.auth)], window=(at(8, 45), at(11)))
    got = _runs(fleet.store)
    assert got == _runs(union)
    assert len(got) > 20
    times = [r[3] for r in got]
    assert min(times) >= datetime(2026, 5, 4, 8, 45) and max(times) < datetime(2026, 5, 4, 11)

    # each run committed its window as held whole: the report DAG's watermark
    assert Store(fleet.store).coverage() == [(at(8, 45), at(11))]

    # each run updated the history Asset, telling the report DAG how far the history reaches
    assert {_asset_extra(r)["window_end"] for r in (first, second)} == {
        "2026-05-04T10:00:00+00:00", "2026-05-04T11:00:00+00:00"}

    # snapshots were captured at each interval end, the nodes one by running a real command
    assert _snapshot_times(fleet.store) == [
        ("nodes", datetime(2026, 5, 4, 10)), ("user_tasks", datetime(2026, 5, 4, 10)),
        ("nodes", datetime(2026, 5, 4, 11)), ("user_tasks", datetime(2026, 5, 4, 11))]


def test_rerun_of_the_same_interval_changes_nothing(dags, fleet):
    assert state(run_dag(dags["discovery_ingest"], at(12))) == "success"
    version, rows = _version(fleet.store), _runs(fleet.store)
    manifest = (fleet.store / "_manifest.json").read_text()

    rerun = run_dag(dags["discovery_ingest"], at(12))
    assert state(rerun) == "success", states(rerun)
    assert _version(fleet.store) == version
    assert (fleet.store / "_manifest.json").read_text() == manifest
    assert _runs(fleet.store) == rows


def test_failed_snapshots_do_not_block_event_ingestion(dags, fleet, monkeypatch, capfd):
    fail = shlex.join([sys.executable, "-c",
                       "import sys; sys.stderr.write('tctl: access denied\\n'); sys.exit(1)"])
    hang = shlex.join([sys.executable, "-c", "import time; time.sleep(900)"])
    monkeypatch.setenv("DISCOVERY_HISTORY_NODES_COMMAND", fail)
    monkeypatch.delenv("DISCOVERY_HISTORY_USER_TASKS_FILE")
    monkeypatch.setenv("DISCOVERY_HISTORY_USER_TASKS_COMMAND", hang)
    monkeypatch.setenv("DISCOVERY_HISTORY_SNAPSHOT_TIMEOUT", "1s")

    started = time.monotonic()
    run = run_dag(dags["discovery_ingest"], at(13))
    assert time.monotonic() - started < 600  # the 900 s command was killed at its 1 s timeout
    assert states(run) == {"ingest_events": "success", "snapshot_nodes": "failed",
                           "snapshot_user_tasks": "failed", "write_metrics": "skipped"}
    assert state(run) == "failed"  # visible, but the events are in
    assert len(_runs(fleet.store)) > 0
    assert _snapshot_times(fleet.store) == []
    out = capfd.readouterr()
    logs = out.out + out.err
    assert "exited 1: tctl: access denied" in logs
    assert "timed out after 1s" in logs


def test_snapshots_are_skipped_when_the_run_is_older_than_the_allowed_lag(dags, fleet,
                                                                           monkeypatch):
    monkeypatch.delenv("DISCOVERY_HISTORY_SNAPSHOT_MAX_LAG")  # default 1h; this run is months old
    run = run_dag(dags["discovery_ingest"], at(9))
    assert states(run) == {"ingest_events": "success", "snapshot_nodes": "skipped",
                           "snapshot_user_tasks": "skipped", "write_metrics": "skipped"}
    assert state(run) == "success"
    assert _snapshot_times(fleet.store) == []


def test_invalid_config_fails_at_task_start_naming_the_setting(dags, fleet, monkeypatch, capfd):
    monkeypatch.setenv("DISCOVERY_HISTORY_LOOKBACK", "fortnight")
    run = run_dag(dags["discovery_ingest"], at(8))
    assert set(states(run).values()) == {"failed"}
    out = capfd.readouterr()
    assert "invalid setting DISCOVERY_HISTORY_LOOKBACK" in out.out + out.err
    assert not fleet.store.exists()


def test_airflow_variable_overrides_the_environment(dags, fleet, tmp_path):
    from airflow.models.variable import Variable

    other = tmp_path / "other-lake"
    Variable.set("discovery_history", json.dumps({"store": str(other), "lookback": "0"}))
    try:
        run = run_dag(dags["discovery_ingest"], at(7))
    finally:
        Variable.delete("discovery_history")
    assert state(run) == "success", states(run)
    assert not fleet.store.exists()
    assert _snapshot_times(other)[0] == ("nodes", datetime(2026, 5, 4, 7))


def test_manual_run_ingests_the_conf_window(dags, fleet, tmp_path):
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    conf = {"start": "2026-05-04T09:30:00Z", "end": "2026-05-04T10:30:00Z"}
    run = run_dag(dags["discovery_ingest"], None, conf)
    assert state(run) == "success", states(run)
    direct = tmp_path / "direct"
    ingest_events(Store(direct), [str(fleet.auth)], window=(at(9, 30), at(10, 30)))
    assert _runs(fleet.store) == _runs(direct)
    assert ("nodes", datetime(2026, 5, 4, 10, 30)) in _snapshot_times(fleet.store)


# --- the report DAG: a real SMTP server on loopback -------------------------------------------


def _prepare_day(fleet) -> list:
    """The day's history in the store, nodes and tasks captured at its end; the expected rows."""
    from pipeline.ingest.events import ingest_events
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_report
    from pipeline.store import Store

    store = Store(fleet.store)
    end = datetime(2026, 5, 5, tzinfo=UTC)
    ingest_events(store, [str(fleet.auth)], window=(datetime(2026, 5, 4, tzinfo=UTC), end),
                  record_coverage=True)  # as the ingest DAG does: the day is held whole
    ingest_snapshot(store, "nodes", str(fleet.nodes), end)
    ingest_snapshot(store, "user_tasks", str(fleet.tasks), end)
    with connect(store) as con:
        return nodes_report(con, datetime(2026, 5, 4, tzinfo=UTC), end, failures_only=True)


def test_report_dag_mails_the_day_once_through_smtp(dags, fleet, smtp_server, monkeypatch,
                                                    capfd):
    import csv
    import io

    port, inbox = smtp_server
    expected = _prepare_day(fleet)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_LOOPBACK", smtp_connection(port))
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_CONN_ID", "smtp_loopback")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_RECIPIENTS", "ops@example.com, sre@example.com")

    run = run_dag(dags["discovery_report"], datetime(2026, 5, 5, 0, 30, tzinfo=UTC))
    assert state(run) == "success", states(run)
    folder = fleet.store / "reports" / "2026-05-04"
    assert sorted(p.name for p in folder.iterdir()) == [
        "changes.csv", "failure-trend.png", "failures.csv", "failures.md", "index.html",
        "instances.csv", "reasons.csv", "report.json", "report.md", "sent.json", "top-reasons.png",
        "trends.csv"]
    assert len(inbox.messages) == 1

    mail_from, rcpts, raw = inbox.messages[0]
    assert mail_from == "discovery@example.com"
    assert rcpts == ["ops@example.com", "sre@example.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == f"Teleport discovery failures 2026-05-04: {len(expected)} instance(s)"
    page = msg.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in page and "<script" not in page
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["failures-2026-05-04.csv"]
    table = list(csv.DictReader(io.StringIO(attachments[0].get_content().decode())))
    assert [r["InstanceKey"] for r in table] == [r.key for r in expected]
    assert any(SCRIPT in r["Details"] for r in table)  # the CSV keeps the full, raw output

    rerun = run_dag(dags["discovery_report"], datetime(2026, 5, 5, 0, 30, tzinfo=UTC))
    assert state(rerun) == "success"
    assert len(inbox.messages) == 1  # nothing is sent twice for the same window
    out = capfd.readouterr()
    assert SMTP_PASSWORD not in out.out + out.err


def test_report_delivery_failure_fails_the_mail_task(dags, fleet, monkeypatch):
    from tests.dags.conftest import _free_port

    _prepare_day(fleet)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_NOWHERE", smtp_connection(_free_port()))
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_CONN_ID", "smtp_nowhere")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_RECIPIENTS", "ops@example.com")
    run = run_dag(dags["discovery_report"], None, {"date": "2026-05-04"})
    assert states(run) == {"wait_for_history": "success", "render_report": "success",
                           "mail_report": "failed"}
    assert not (fleet.store / "reports" / "2026-05-04" / "sent.json").exists()


def test_report_mail_goes_through_the_airflow_connection_or_not_at_all(dags, fleet, smtp_server,
                                                                       monkeypatch):
    port, inbox = smtp_server
    _prepare_day(fleet)
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_CONN_ID", "smtp_not_defined")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_RECIPIENTS", "ops@example.com")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_SENDER", "history@example.com")

    run = run_dag(dags["discovery_report"], None, {"date": "2026-05-04"})  # no SMTP at all
    assert states(run) == {"wait_for_history": "success", "render_report": "success",
                           "mail_report": "success"}
    assert inbox.messages == []
    assert not (fleet.store / "reports" / "2026-05-04" / "sent.json").exists()

    # the settings of the former hand-built client fail the task, naming the connection to use
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_HOST", "127.0.0.1")
    run = run_dag(dags["discovery_report"], None, {"date": "2026-05-04"})
    assert state(run) == "failed" and inbox.messages == []
    monkeypatch.delenv("DISCOVERY_HISTORY_SMTP_HOST")

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_NOT_DEFINED", smtp_connection(port))
    run = run_dag(dags["discovery_report"], None, {"date": "2026-05-04"})
    assert state(run) == "success", states(run)
    # the connection's from_email extra wins over the report_sender setting
    assert [(m[0], m[1]) for m in inbox.messages] == [("discovery@example.com", ["ops@example.com"])]
    assert (fleet.store / "reports" / "2026-05-04" / "sent.json").exists()


# --- the maintenance DAG ----------------------------------------------------------------------


def test_maintenance_dag_compacts_and_verifies(dags, fleet):
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    ingest_events(Store(fleet.store), [str(fleet.auth)], window=(at(0), at(10)))
    _prepare_day(fleet)  # the rest of the day: a second file in each partition
    before = _runs(fleet.store)
    run = run_dag(dags["discovery_maintenance"], datetime(2026, 5, 6, 3, tzinfo=UTC))
    assert state(run) == "success", states(run)
    assert _runs(fleet.store) == before
    datasets = Store(fleet.store).manifest().datasets
    runs = datasets["runs"]
    assert len(runs) == len({r.rsplit("/", 1)[0] for r in runs})  # one file per partition
    days = {r.split("event_date=")[1].split("/")[0] for r in runs}
    assert {r.split("=")[1].split("/")[0] for r in datasets["rollup_trends"]} == days

    orphan = fleet.store / "runs" / "cloud=aws" / "event_date=2026-05-04" / "stray.parquet"
    orphan.write_bytes(b"not parquet")
    broken = run_dag(dags["discovery_maintenance"], datetime(2026, 5, 7, 3, tzinfo=UTC))
    assert states(broken)["verify"] == "failed"


# --- the pure parts the DAGs stand on ---------------------------------------------------------

T = datetime(2026, 5, 4, 10, tzinfo=UTC)
H, M15 = timedelta(hours=1), timedelta(minutes=15)


@pytest.mark.parametrize(
    ("conf", "start", "end", "expect"),
    [
        pytest.param(None, T - H, T, (T - H - M15, T), id="interval-widened-by-lookback"),
        pytest.param({}, None, None, (T - H - M15, T), id="manual-hour-before-run"),
        pytest.param({"start": "2026-05-01", "end": "2026-05-31"}, T - H, T,
                     (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)),
                     id="conf-wins-as-given"),
        pytest.param({"date": "2026-05-03"}, None, None,
                     (datetime(2026, 5, 3, tzinfo=UTC), datetime(2026, 5, 4, tzinfo=UTC)),
                     id="conf-date"),
    ],
)
def test_ingest_window(conf, start, end, expect):
    from pipeline.schedule.windows import ingest_window

    w = ingest_window(conf=conf, interval_start=start, interval_end=end, run_after=T,
                      lookback=M15)
    assert (w.start, w.end) == expect
    assert w.at == expect[1]


def test_ingest_window_rejects_half_a_conf_window():
    from pipeline.schedule.windows import ingest_window
    from pipeline.timeutil import InputError

    with pytest.raises(InputError, match='both "start" and "end"'):
        ingest_window(conf={"start": "2026-05-01"}, interval_start=None, interval_end=None,
                      run_after=T, lookback=M15)


MIDNIGHT = datetime(2026, 5, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("conf", "asset_ends", "interval_end", "label", "mail", "end"),
    [
        pytest.param(None, [], MIDNIGHT + timedelta(minutes=30), "2026-05-04", True, MIDNIGHT,
                     id="daily-run-reports-previous-day"),
        pytest.param(None, [MIDNIGHT - H, MIDNIGHT], None, "2026-05-04", True, MIDNIGHT,
                     id="ingest-reaching-midnight-reports-the-day"),
        pytest.param(None, [T], None, "latest", False, T, id="other-ingest-rolling-24h"),
        pytest.param({"date": "2026-05-02"}, [T], None, "2026-05-02", True,
                     datetime(2026, 5, 3, tzinfo=UTC), id="conf-day"),
        pytest.param({"start": "2026-05-02T06:00:00Z", "end": "2026-05-02T18:00:00Z"}, [], None,
                     "20260502T060000Z--20260502T180000Z", True,
                     datetime(2026, 5, 2, 18, tzinfo=UTC), id="conf-window"),
    ],
)
def test_report_window(conf, asset_ends, interval_end, label, mail, end):
    from pipeline.schedule.windows import report_window

    w = report_window(conf=conf, asset_ends=asset_ends, interval_end=interval_end,
                      run_after=datetime(2026, 11, 1, tzinfo=UTC))
    assert (w.label, w.mail, w.end) == (label, mail, end)
    if conf is None:
        assert w.end - w.start == timedelta(hours=24)


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        pytest.param({"DISCOVERY_HISTORY_LOOKBACK": "soon"}, None,
                     "invalid setting DISCOVERY_HISTORY_LOOKBACK: invalid duration 'soon'",
                     id="bad-duration"),
        pytest.param({}, {"lookback": "-5m"}, "Airflow Variable discovery_history['lookback']",
                     id="variable-named"),
        pytest.param({"DISCOVERY_HISTORY_REPORT_RECIPIENTS": "ops@example.com, nobody"}, None,
                     "DISCOVERY_HISTORY_REPORT_RECIPIENTS: not an e-mail address: 'nobody'",
                     id="bad-recipient"),
        pytest.param({"DISCOVERY_HISTORY_NODES_COMMAND": "tctl get 'nodes"}, None,
                     "DISCOVERY_HISTORY_NODES_COMMAND: cannot split", id="unbalanced-quote"),
        pytest.param({}, {"stroe": "x"}, "unknown setting 'stroe'", id="unknown-key"),
        pytest.param({"DISCOVERY_HISTORY_RETENTION_DAYS": "0"}, None,
                     "DISCOVERY_HISTORY_RETENTION_DAYS", id="retention-at-least-one-day"),
        pytest.param({"DISCOVERY_HISTORY_METRICS_TEXTFILE": "/var/lib/node_exporter/dh.txt"},
                     None, "DISCOVERY_HISTORY_METRICS_TEXTFILE", id="metrics-textfile-not-prom"),
    ],
)
def test_invalid_settings_are_named(monkeypatch, env, overrides, message):
    from pipeline.schedule.config import ConfigError, load_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="^invalid configuration") as exc:
        load_settings(overrides)
    assert message in str(exc.value)


def test_settings_defaults_and_parsing(monkeypatch):
    from pipeline.schedule.config import load_settings

    for k in list(os.environ):
        if k.startswith("DISCOVERY_HISTORY_"):
            monkeypatch.delenv(k)
    s = load_settings()
    assert s.lookback == timedelta(minutes=15)
    assert s.argv("nodes") == ["tctl", "get", "nodes", "--format=json"]
    assert s.argv("user_tasks") == ["tctl", "get", "user_tasks", "--format=json"]
    assert s.report_recipients == [] and s.retention_days is None
    monkeypatch.setenv("DISCOVERY_HISTORY_LOOKBACK", "1h30m")
    monkeypatch.setenv("DISCOVERY_HISTORY_SNAPSHOT_MAX_LAG", "0")
    monkeypatch.setenv("DISCOVERY_HISTORY_REPORT_RECIPIENTS", "a@example.com,b@example.com")
    s = load_settings({"retention_days": 30})  # the Airflow Variable's overrides win
    assert s.lookback == timedelta(minutes=90) and s.snapshot_max_lag == timedelta(0)
    assert s.report_recipients == ["a@example.com", "b@example.com"]
    assert s.retention_days == 30


def test_event_paths_keep_only_files_of_days_near_the_window(tmp_path):
    from pipeline.schedule.config import load_settings
    from tests.conftest import write_lines

    for day in ("2026-05-01", "2026-05-03", "2026-05-04", "2026-05-05"):
        write_lines(tmp_path / "auth" / "s1" / f"{day}.00:00:00.log", [])
    write_lines(tmp_path / "auth" / "s1" / "export.jsonl", [])
    s = load_settings({"source": str(tmp_path / "auth")})
    got = s.event_paths((datetime(2026, 5, 4, 0, 45, tzinfo=UTC), datetime(2026, 5, 5, tzinfo=UTC)))
    assert sorted(Path(p).name for p in got) == [
        "2026-05-03.00:00:00.log", "2026-05-04.00:00:00.log", "export.jsonl"]


def test_run_snapshot_runs_without_a_shell_and_fails_in_one_line(tmp_path):
    from pipeline.ingest.snapshot_cmd import SnapshotCommandError, run_snapshot

    out = run_snapshot(shlex.join([sys.executable, "-c", "import sys; print(sys.argv[1:])",
                                   "$HOME", "a;b", "*"]), tmp_path / "o.json", timeout=30)
    assert out.read_text().strip() == "['$HOME', 'a;b', '*']"  # no expansion, no splitting

    cases = [
        ([sys.executable, "-c", "import sys; print('x'); sys.exit(3)"], "exited 3: no output"),
        ([sys.executable, "-c", "import time; time.sleep(900)"], "timed out after 0.5s"),
        (["definitely-not-a-command-xyz"], "definitely-not-a-command-xyz not found"),
    ]
    for argv, message in cases:
        target = tmp_path / "fail.json"
        started = time.monotonic()
        with pytest.raises(SnapshotCommandError) as exc:
            run_snapshot(argv, target, timeout=0.5)
        assert message in str(exc.value)
        assert "\n" not in str(exc.value)
        assert not target.exists() and not list(tmp_path.glob(".fail.json*"))
        assert time.monotonic() - started < 600  # killed at its timeout, not waited for


def test_capture_snapshot_refuses_stale_capture_times(tmp_path):
    from pipeline.ingest.snapshot_cmd import SnapshotStale, capture_snapshot
    from pipeline.store import Store

    with pytest.raises(SnapshotStale, match="skipped"):
        capture_snapshot(Store(tmp_path / "lake"), "nodes", at=T, now=T + 2 * H,
                         command="tctl get nodes", max_lag=H)
    assert not (tmp_path / "lake").exists()


def test_day_label():
    from pipeline.schedule.windows import day_label

    assert day_label(datetime(2026, 5, 4, tzinfo=UTC), datetime(2026, 5, 5, tzinfo=UTC)) == "2026-05-04"
    assert day_label(T, T + timedelta(days=1)) is None
    assert date(2026, 5, 4).isoformat() == "2026-05-04"


def test_reports_of_a_store_on_object_storage_need_a_local_folder():
    from pipeline.schedule.config import ConfigError, load_settings, report_dir
    from pipeline.schedule.windows import RunWindow

    w = RunWindow(T, T + H, label="2026-05-04")
    assert report_dir(load_settings({"store": "/srv/lake"}), w) == "/srv/lake/reports/2026-05-04"
    with pytest.raises(ConfigError, match="DISCOVERY_HISTORY_REPORTS"):
        report_dir(load_settings({"store": "s3://bucket/lake"}), w)
    s = load_settings({"store": "s3://bucket/lake", "reports": "/srv/reports"})
    assert report_dir(s, w) == "/srv/reports/2026-05-04"


def test_demo_scripts_are_valid_shell_and_run_dag_has_help():
    for script in ("demo_airflow.sh", "airflow_standalone.sh"):
        path = REPO / "scripts" / script
        assert os.access(path, os.X_OK), script
        subprocess.run(["bash", "-n", str(path)], check=True)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_dag.py"), "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--logical-date" in done.stdout


def test_spool_source_is_drained_and_archived_by_the_ingest_dag(dags, fleet, tmp_path,
                                                                 monkeypatch):
    """DISCOVERY_HISTORY_SOURCE_KIND=spool: the receiver's closed spool files are ingested and
    archived; a second run finds nothing new (at-least-once delivery, exactly-once storage)."""
    from pipeline.sources.spool import Spool, closed_files
    from tests.conftest import make_run

    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    events = [make_run(f"i-spool{n}", at=at(9, n), uid=f"u-spool-{n}") for n in range(3)]
    for ev in [*events, events[0]]:  # the handler re-sent one event
        spool.append((json.dumps(ev) + "\n").encode())
    spool.close()
    assert closed_files(spool_dir)
    monkeypatch.setenv("DISCOVERY_HISTORY_SOURCE_KIND", "spool")
    monkeypatch.setenv("DISCOVERY_HISTORY_SOURCE", str(spool_dir))

    run = run_dag(dags["discovery_ingest"], at(10))
    assert state(run) == "success", states(run)
    from pipeline.query.views import connect

    with connect(str(fleet.store)) as con:
        keys = {k for (k,) in con.execute("SELECT DISTINCT instance_key FROM runs").fetchall()}
    assert {"i-spool0", "i-spool1", "i-spool2"} <= keys
    assert not closed_files(spool_dir) and list((spool_dir / "archive").iterdir())
    from pipeline.store import Store

    assert Store(fleet.store).coverage() == [(at(8, 45), at(10))]  # no spool file left open
    before = _runs(fleet.store)
    assert state(run_dag(dags["discovery_ingest"], at(11))) == "success"
    assert _runs(fleet.store) == before


def test_ingest_dag_writes_the_metrics_textfile_after_the_run(dags, fleet, tmp_path,
                                                               monkeypatch):
    """`write_metrics` replaces the configured *.prom file with the store's exposition after the
    run (atomically: no temporary file stays beside it); its last ingest is the run's."""
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.query.views import connect

    prom = tmp_path / "textfile" / "discovery_history.prom"
    prom.parent.mkdir()
    prom.write_text("stale\n")
    monkeypatch.setenv("DISCOVERY_HISTORY_METRICS_TEXTFILE", str(prom))
    run = run_dag(dags["discovery_ingest"], at(11))
    assert states(run)["write_metrics"] == "success", states(run)
    assert sorted(p.name for p in prom.parent.iterdir()) == ["discovery_history.prom"]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples}
    with connect(fleet.store) as con:
        logged = con.execute("SELECT read, stored, duplicates, skipped, quarantined "
                             "FROM ingest_log WHERE kind = 'events'").fetchall()
    assert len(logged) == 1 and logged[0][0] > 0
    for outcome, n in zip(("read", "stored", "duplicates", "skipped", "quarantined"), logged[0],
                          strict=True):
        assert samples[("discovery_history_last_ingest_lines", (("outcome", outcome),))] == n
    assert samples[("discovery_history_attempts_last_hour", (("cloud", "aws"),))] == 0  # May
