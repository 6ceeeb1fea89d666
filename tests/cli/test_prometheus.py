"""The documented alert rules with Debian's Prometheus: `promtool check rules` and `promtool test
rules` (docs/prometheus/), and a real Prometheus on loopback scraping the receiver's /metrics,
whose failure-rate rule is evaluated by the server (pending alert) and by `promtool query`.
Skipped where the `prometheus` package is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_run, write_lines

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docs" / "prometheus" / "discovery-history.rules.yml"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="Debian's prometheus package (prometheus, promtool) is not installed "
           "(apt-get install prometheus)")
FAILED = 12  # failed attempts in the last hour, all on aws


def rules() -> dict[str, dict]:
    return {r["alert"]: r for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}


def test_the_readme_shows_the_rules_file():
    readme = (REPO / "README.md").read_text().split("### `metrics`", 1)[1]
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = {r["alert"]: (r["expr"], r.get("for")) for r in yaml.safe_load(block)}
    assert shown == {name: (r["expr"], r.get("for")) for name, r in rules().items()}


@needs_prometheus
def test_promtool_checks_and_unit_tests_the_rules():
    for args in (["check", "rules", RULES.name], ["test", "rules", "rules.test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=RULES.parent, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())["data"]


def _until(what: str, probe, proc: subprocess.Popen, deadline_s: float = 180):
    """Ask `probe` until it returns something truthy (Prometheus scrapes and evaluates on its
    own schedule); fail naming `what` when the server died or the deadline passed."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited {proc.returncode} while waiting for {what}")
        with contextlib.suppress(OSError, KeyError, ValueError):
            got = probe()
            if got:
                return got
        time.sleep(0.5)
    pytest.fail(f"no {what} within {deadline_s} s")


@needs_prometheus
def test_real_prometheus_scrapes_the_receiver_and_evaluates_the_failure_rate_rule(tmp_path):
    from pipeline.cli.receive import store_metrics
    from pipeline.ingest.events import ingest_events
    from pipeline.sources.receiver import Receiver
    from pipeline.sources.spool import Spool
    from pipeline.store import Store

    now = datetime.now(UTC)
    events = [make_run(f"i-{i:017x}", "TDS00W", now - timedelta(minutes=20), exit_code=104,
                       command_id=f"cmd-{i}") for i in range(FAILED)]
    store = Store(tmp_path / "lake")
    ingest_events(store, [str(write_lines(tmp_path / "log" / "events.jsonl", events))])

    with Receiver(Spool(tmp_path / "spool"), ("127.0.0.1", 0), metrics=store_metrics(store)) as rx:
        port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "discovery-history",
                                "static_configs": [{"targets": [f"127.0.0.1:{rx.address[1]}"]}]}],
        }))
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            failed = _until("scraped failed attempts", lambda: _api(
                port, "query", query='discovery_history_failed_attempts_last_hour{cloud="aws"}'
            )["result"], proc)
            assert float(failed[0]["value"][1]) == FAILED
            assert failed[0]["metric"]["job"] == "discovery-history"
            attempts = _api(port, "query", query="discovery_history_attempts_last_hour")["result"]
            assert {r["metric"]["cloud"]: float(r["value"][1]) for r in attempts} == {
                "aws": FAILED, "azure": 0}
            failing = _api(port, "query", query="discovery_history_instances_failing")["result"]
            assert [(r["metric"]["reason"], float(r["value"][1])) for r in failing] == [
                ("Proxy unreachable", FAILED)]

            # the server evaluates the documented rule: the alert is pending (for: 30m)
            alert = _until("a pending DiscoveryEnrollmentFailureRateHigh", lambda: [
                a for a in _api(port, "alerts")["alerts"]
                if a["labels"]["alertname"] == "DiscoveryEnrollmentFailureRateHigh"], proc)
            assert alert[0]["state"] == "pending" and alert[0]["labels"]["cloud"] == "aws"

            # and promtool evaluates the same expression against the running server
            expr = rules()["DiscoveryEnrollmentFailureRateHigh"]["expr"]
            done = subprocess.run([PROMTOOL, "query", "instant", f"http://127.0.0.1:{port}", expr],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith('{cloud="aws"} => 1 @['), done.stdout
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
