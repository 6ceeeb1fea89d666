"""A real Airflow for the DAG tests: one fresh AIRFLOW_HOME (SQLite) per session, migrated once,
the project's DAGs parsed once. Tests run DAGs with `dag.test()` (in-process, real scheduler
dependency logic, real task runner, real metadata DB), an SMTP server with aiosmtpd.

Nothing here imports Airflow before the session fixture has pointed it at the fresh home.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import (
    make_aws_node,
    make_azure_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAY = datetime(2026, 5, 4, tzinfo=UTC)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """A migrated, empty Airflow home used by the whole session."""
    if "airflow" in sys.modules:
        pytest.fail("airflow was imported before the DAG tests configured AIRFLOW_HOME")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                          capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def dagbag(airflow_home):
    """The project's DAGs as Airflow parses them (do not mutate: structure tests read it)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


@pytest.fixture(scope="session")
def dags(airflow_home) -> dict:
    """A second parse for running: retries off, since `dag.test()` sleeps through real retry
    delays, and sensors poke once (ready, or failed at once as if their timeout had passed:
    `dag.test()` would sleep through the real poke interval) — the DAGs' settings are checked
    on `dagbag`."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS))
    assert not bag.import_errors, bag.import_errors
    for dag in bag.dags.values():
        for t in dag.tasks:
            t.retries = 0
            if hasattr(t, "poke_interval"):  # a sensor: one poke, then done or timed out
                t.poke_interval, t.timeout = 0, 0
    return bag.dags


def sync_dags() -> None:
    """Write the DAG folder's DAGs to the metadata DB, as `dag.test()` does before a run."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path,
                           bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def run_dag(dag, at: datetime | None = None, conf: dict | None = None):
    """One `dag.test()` run; `at` is the logical date and run time (data interval ends there
    for the interval timetables), so each `at` is one run id: a second call is a rerun."""
    return dag.test(logical_date=at, run_after=at, run_conf=conf)


def states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def state(run) -> str:
    return str(getattr(run.state, "value", run.state))


# --- the data: a Teleport file log of 2026-05-04, nodes and user tasks ---------------------


def at(hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second, microseconds=micro)


SCRIPT = "<script>alert('x')</script> & \"quotes\""


def fleet_events() -> list[dict]:
    """Runs between 08:40 and 12:55: successes, failures, boundary instants, late arrivals."""
    evs = []
    for i in range(12):  # one attempt every 20 minutes per instance, 4 instances
        t = at(8, 40) + timedelta(minutes=20 * i)
        for n in range(4):
            inst = f"i-{n:017x}"
            fail = (n + i) % 3 == 0
            evs.append(make_run(inst, "TDS00W" if fail else "TDS00I", t + timedelta(seconds=n),
                                exit_code=150 if fail else 0,
                                stdout=SCRIPT if fail and n == 1 else "",
                                stderr="ERROR: node did not become ready" if fail else ""))
    evs.append(make_run("i-boundary-before", "TDS00W", at(9, 59, 59, 999_999), exit_code=104))
    evs.append(make_run("i-boundary-at", "TDS00W", at(10), exit_code=103))
    evs.append(make_azure_run("0f8e1b2a-1111-4222-8333-444455556666", "TAZ00E", at(10, 30),
                              api_error="AuthorizationFailed", exit_code=0))
    evs.append(make_azure_run("1a2b3c4d-1111-4222-8333-444455556666", "TAZ00I", at(9, 15)))
    return evs


@dataclass
class Fleet:
    root: Path
    store: Path
    auth: Path
    nodes: Path
    tasks: Path
    events: list[dict] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The pipeline settings for this fleet: events from the file log, nodes from a real
        command (`python -c` printing the file), user tasks from the file."""
        printer = shlex.join([sys.executable, "-c",
                              "import sys; sys.stdout.write(open(sys.argv[1]).read())",
                              str(self.nodes)])
        return {
            "DISCOVERY_HISTORY_STORE": str(self.store),
            "DISCOVERY_HISTORY_SOURCE_KIND": "filelog",
            "DISCOVERY_HISTORY_SOURCE": str(self.auth),
            "DISCOVERY_HISTORY_NODES_COMMAND": printer,
            "DISCOVERY_HISTORY_USER_TASKS_FILE": str(self.tasks),
            "DISCOVERY_HISTORY_SNAPSHOT_MAX_LAG": "0",
            "DISCOVERY_HISTORY_SNAPSHOT_TIMEOUT": "30s",
        }


def write_fleet(root: Path) -> Fleet:
    events = fleet_events()
    auth = root / "auth"
    day_file = "2026-05-04.00:00:00.log"
    write_lines(auth / "server-1" / day_file, events)
    write_lines(auth / "server-2" / day_file, events[::5])  # re-emitted: dedup by uid
    write_lines(auth / "server-1" / "2026-05-01.00:00:00.log",  # another day: pruned
                [make_run("i-old", at=DAY - timedelta(days=3))])
    nodes = write_json(root / "nodes.json", [
        make_aws_node("i-00000000000000000", expires=at(12, 10)),
        make_aws_node("i-online-no-events", expires=at(12, 10)),
        make_azure_node("0f8e1b2a-1111-4222-8333-444455556666", expires=at(12, 10)),
    ])
    tasks = write_json(root / "user_tasks.json", [
        make_task("task-ssm", "ec2-ssm-script-failure", ["i-00000000000000001"]),
    ])
    return Fleet(root=root, store=root / "lake", auth=auth, nodes=nodes, tasks=tasks,
                 events=events)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch) -> Fleet:
    """A fresh fleet and store, with the pipeline's settings in the environment."""
    f = write_fleet(tmp_path)
    for k in list(os.environ):
        if k.startswith("DISCOVERY_HISTORY_"):
            monkeypatch.delenv(k)
    for k, v in f.env().items():
        monkeypatch.setenv(k, v)
    return f


# --- a real SMTP server on loopback ----------------------------------------------------------

SMTP_USER, SMTP_PASSWORD = "reporter", "s3cret-Pa55word"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """aiosmtpd on 127.0.0.1 requiring AUTH (user/password above); yields (port, inbox)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 on failure

    inbox = _Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop(),
                     authenticator=check, auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        yield port, inbox
    finally:
        ctl.stop()


def smtp_connection(port: int) -> str:
    """An Airflow SMTP connection (env-var JSON form) for the loopback server, no TLS."""
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "login": SMTP_USER, "password": SMTP_PASSWORD,
                       "extra": {"disable_ssl": True, "disable_tls": True,
                                 "from_email": "discovery@example.com"}})
