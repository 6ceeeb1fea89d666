"""The DAGs with a PostgreSQL metadata database, as the README deploys them: a real PostgreSQL
(Debian's `postgresql`, started here in a temporary folder on a free loopback port), `airflow db
migrate` over `postgresql+psycopg2://`, then the ingest and report DAGs run through it
(`scripts/run_dag.py`: `dag.test()`, the real task runner and execution API on that database)
with the report mailed to a loopback SMTP server. Skipped, saying why, where PostgreSQL is not
installed or cannot start; `.ci/run` installs it.

Everything Airflow runs in subprocesses: this pytest process's Airflow is bound to the SQLite
home of tests/dags/conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dags.conftest import DAGS, REPO, smtp_connection

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields the SQLAlchemy URL of its `airflow` database."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run "
                    "does it)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser(1) is missing to start PostgreSQL as postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="dh-pg-"))  # not under pytest's root-only tmp folders
    if as_user:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=timeout,
                              cwd=root)

    started = False
    try:
        done = run(str(bin_dir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust",
                   "-E", "UTF8", "--locale=C")
        if done.returncode:
            pytest.skip(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=50")
        done = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
                   "-w", "-t", "60", "start")
        if done.returncode:
            tail = log.read_text()[-800:] if log.exists() else done.stderr
            pytest.skip(f"PostgreSQL did not start: {tail.strip()}")
        started = True
        done = run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow",
                   "airflow")
        assert done.returncode == 0, done.stderr
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _airflow_env(home: Path, url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        **extra,
    })
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, (f"{argv[1:3]} failed:\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-3000:]}")
    return done.stdout


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg2

    dsn = url.replace("postgresql+psycopg2", "postgresql")
    with contextlib.closing(psycopg2.connect(dsn)) as c, c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_ingest_and_report_dags_run_on_a_postgresql_metadata_db(postgres, fleet, smtp_server,
                                                                tmp_path):
    port, inbox = smtp_server
    env = _airflow_env(tmp_path / "airflow-home", postgres, {
        "AIRFLOW_CONN_SMTP_LOOPBACK": smtp_connection(port),
        "DISCOVERY_HISTORY_SMTP_CONN_ID": "smtp_loopback",
        "DISCOVERY_HISTORY_REPORT_RECIPIENTS": "ops@example.com",
    })
    _run([sys.executable, "-m", "airflow", "db", "migrate"], env)
    assert _query(postgres, "SELECT count(*) FROM alembic_version") == [(1,)]

    run_dag = [sys.executable, str(REPO / "scripts" / "run_dag.py")]
    out = _run([*run_dag, "discovery_ingest", "--conf", json.dumps({"date": "2026-05-04"})], env)
    assert "ingest_events        success" in out, out
    out = _run([*run_dag, "discovery_report", "--conf", json.dumps({"date": "2026-05-04"})], env)
    for task in ("wait_for_history", "render_report", "mail_report"):
        assert f"{task:<20} success" in out, out
    assert len(inbox.messages) == 1
    assert (fleet.store / "reports" / "2026-05-04" / "sent.json").exists()

    # what ran is recorded in PostgreSQL: both runs, every task, the history Asset event
    runs = _query(postgres, "SELECT dag_id, state FROM dag_run ORDER BY dag_id")
    assert runs == [("discovery_ingest", "success"), ("discovery_report", "success")]
    tasks = _query(postgres, "SELECT task_id, state FROM task_instance WHERE "
                             "dag_id = 'discovery_report' ORDER BY task_id")
    assert tasks == [("mail_report", "success"), ("render_report", "success"),
                     ("wait_for_history", "success")]
    [(extra,)] = _query(postgres, "SELECT extra FROM asset_event")
    assert extra["window_end"] == "2026-05-05T00:00:00+00:00"
