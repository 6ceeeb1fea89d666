"""The README's operator section is true (issue 14, point 5): the DAGs start paused, the
scheduled ingest loads only the latest hour, the backfill and conf-window commands it shows are
ones this Airflow accepts and do what it says, and `demo generate --end` exists."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.dags.conftest import REPO

README = (REPO / "README.md").read_text()


def _section() -> str:
    m = re.search(r"^### Operating it\n(.*?)(?=^#{2,3} |\Z)", README, re.M | re.S)
    assert m, "README has an '### Operating it' section"
    return m.group(1)


def _airflow_commands() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", _section(), re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip().startswith("airflow ")]


def test_dags_start_paused_and_the_readme_says_how_to_unpause(dagbag, airflow_home):
    section = _section()
    assert "start paused" in section and "airflow dags unpause discovery_ingest" in section
    done = subprocess.run([sys.executable, "-m", "airflow", "config", "get-value", "core",
                           "dags_are_paused_at_creation"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]
    for dag in dagbag.dags.values():
        assert dag.is_paused_upon_creation in (None, True), dag.dag_id


def test_only_the_latest_hour_is_ingested_by_itself(dagbag):
    assert dagbag.dags["discovery_ingest"].catchup is False
    assert "catchup=False" in _section() and "latest hourly interval" in _section()


def test_the_backfill_and_conf_window_commands_are_valid_and_do_what_it_says(dagbag,
                                                                             airflow_home):
    from airflow import settings
    from airflow.models.backfill import ReprocessBehavior, _do_dry_run

    from pipeline.schedule.windows import ingest_window
    from tests.dags.conftest import sync_dags

    commands = _airflow_commands()
    kinds = {tuple(c[1:3]) for c in commands}
    assert {("backfill", "create"), ("dags", "trigger"), ("dags", "unpause")} <= kinds
    probe = ("import json, sys\nfrom airflow.cli.cli_parser import get_parser\n"
             "for argv in json.loads(sys.argv[1]):\n    get_parser().parse_args(argv)\n"
             "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe, json.dumps([c[1:] for c in commands])],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]

    # the backfill: one hourly interval per hour of the range, both ends included
    [backfill] = [c for c in commands if c[1:3] == ["backfill", "create"]]
    opt = dict(zip(backfill[3::2], backfill[4::2], strict=True))
    assert opt["--dag-id"] == "discovery_ingest"
    start = datetime.fromisoformat(opt["--from-date"])
    end = datetime.fromisoformat(opt["--to-date"])
    sync_dags()
    with settings.Session() as session:
        infos = list(_do_dry_run(dag_id="discovery_ingest", from_date=start, to_date=end,
                                 reverse=False, reprocess_behavior=ReprocessBehavior.COMPLETED,
                                 session=session))
    intervals = [(i.data_interval.start, i.data_interval.end) for i in infos]
    hours = int((end - start) / timedelta(hours=1)) + 1
    assert len(intervals) == hours
    assert intervals[0][0] == start and intervals[-1][1] == end + timedelta(hours=1)

    # the conf window: the ingest reads exactly that window
    [trigger] = [c for c in commands
                 if c[1:3] == ["dags", "trigger"] and c[3] == "discovery_ingest"]
    conf = json.loads(trigger[trigger.index("--conf") + 1])
    w = ingest_window(conf=conf, interval_start=None, interval_end=None,
                      run_after=datetime.now(UTC), lookback=timedelta(minutes=15))
    assert (w.start, w.end) == (datetime.fromisoformat(conf["start"]),
                                datetime.fromisoformat(conf["end"]))


def test_demo_generate_end_is_documented_and_exists():
    from click.testing import CliRunner

    from pipeline.cli.main import main

    assert "demo generate OUT_DIR --end TIME" in _section()
    out = CliRunner().invoke(main, ["demo", "generate", "--help"]).output
    assert "--end TIME" in out and "default: now" in out


@pytest.mark.parametrize("target", ["demo-cli"])
def test_make_demo_keeps_a_fixed_end(target):
    makefile = (REPO / "Makefile").read_text()
    assert "demo generate $(DEMO)/fleet --end $(DEMO_TO)" in makefile
    assert "--end 2026-05-31T00:00:00Z" in (REPO / "scripts" / "demo_airflow.sh").read_text()
