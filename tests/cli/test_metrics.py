"""`discovery-history metrics`: the exposition parsed with prometheus_client's parser, every value
checked against the store (computed here by other means: instance_history, runs and joins read
directly, ingest_log, snapshot_log), labels bounded, OpenMetrics, the atomic textfile, and the
receiver's /metrics."""

from __future__ import annotations

import http.client
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from pipeline.cli.main import main
from pipeline.query.views import connect
from tests.cli.conftest import EXPORTER_RUN_AT

PREFIX = "discovery-history: error: "
NOW = datetime(2026, 5, 30, 23, 45, tzinfo=UTC)  # the exporter's run is 15 minutes old
NS = 10**9


def metrics(store: Path, *args: str):
    return CliRunner().invoke(main, ["--store", str(store), "metrics", *args])


def samples(text: str) -> dict[tuple, float]:
    """{(name, ((label, value), ...)): value} of every sample."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def by_name(parsed: dict, name: str) -> dict[tuple, float]:
    return {labels: v for (n, labels), v in parsed.items() if n == name}


def ns(t: datetime) -> int:
    return int(t.timestamp()) * NS


def origin(source: str) -> str:
    """Where a source comes from, computed apart from sql/184_source_origin.sql."""
    if "(" in source:
        return source.split("(", 1)[0]
    folder = os.path.dirname(source)
    return os.path.dirname(folder) if re.fullmatch(r"\d{4}-\d\d-\d\d", os.path.basename(folder)) \
        else folder


@pytest.fixture(scope="module")
def exposition(demo_store) -> str:
    res = metrics(demo_store, "--at", NOW.isoformat())
    assert res.exit_code == 0, res.output
    return res.stdout


def test_failing_instances_match_instance_history(demo_store, exposition):
    with connect(demo_store) as con:
        want = con.execute(
            "SELECT cloud, account_id, region, last_reason, count(*) FROM instance_history("
            "make_timestamp_ns($1), make_timestamp_ns($2)) WHERE last_failed GROUP BY ALL",
            [ns(NOW - timedelta(hours=24)), ns(NOW)]).fetchall()
        reasons = {r for (r,) in con.execute("SELECT reason FROM failure_reasons").fetchall()}
    got = by_name(samples(exposition), "discovery_history_instances_failing")
    assert got == {(("account", a), ("cloud", c), ("reason", r), ("region", g)): float(n)
                   for c, a, g, r, n in want}
    assert len(got) >= 3
    assert {dict(k)["reason"] for k in got} <= reasons | {"Unknown"}  # bounded by the rules
    assert got[(("account", "999999999999"), ("cloud", "aws"), ("reason", "Proxy unreachable"),
                ("region", "sa-east-1"))] == 1.0  # the exporter's run: exit code 104


def test_attempts_of_the_last_hour_match_the_runs(demo_store, exposition):
    with connect(demo_store) as con:  # an SSM command's steps are one attempt, failed when
        last_hour = con.execute(       # any step failed, in the window of its last step
            "SELECT cloud, count(*), count(*) FILTER (WHERE failed) FROM ("
            "  SELECT cloud, bool_or(is_failure) AS failed, max(time) AS last_step FROM runs"
            "  WHERE instance_key <> ''"
            "  GROUP BY cloud, instance_key, CASE WHEN cloud = 'aws' AND "
            "    coalesce(command_id, '') NOT IN ('', 'no-command') THEN command_id ELSE uid END)"
            "WHERE last_step >= make_timestamp_ns($1) AND last_step < make_timestamp_ns($2) "
            "GROUP BY cloud", [ns(NOW - timedelta(hours=1)), ns(NOW)]).fetchall()
    parsed = samples(exposition)
    attempts = by_name(parsed, "discovery_history_attempts_last_hour")
    failed = by_name(parsed, "discovery_history_failed_attempts_last_hour")
    want = {c: (a, f) for c, a, f in last_hour}
    for cloud in ("aws", "azure"):  # both clouds always, zero included
        a, f = want.get(cloud, (0, 0))
        assert attempts[(("cloud", cloud),)] == a and failed[(("cloud", cloud),)] == f
    assert attempts[(("cloud", "aws"),)] >= 1


def test_freshness_per_source_matches_the_stored_events(demo_store, exposition):
    with connect(demo_store) as con:
        rows = con.execute(
            "SELECT source, epoch_ns(max(time)) FROM (SELECT source, time FROM runs UNION ALL "
            "SELECT source, time FROM joins) WHERE time >= make_timestamp_ns($1) AND time < "
            "make_timestamp_ns($2) GROUP BY source", [ns(NOW - timedelta(days=7)), ns(NOW)]
        ).fetchall()
    want: dict[str, int] = {}
    for source, newest in rows:
        want[origin(source)] = max(want.get(origin(source), 0), newest)
    got = by_name(samples(exposition), "discovery_history_source_newest_event_timestamp_seconds")
    assert {dict(k)["source"]: v for k, v in got.items()} == pytest.approx(
        {o: n / NS for o, n in want.items()}, abs=1e-6)
    assert len(got) == 2  # the generator, and the exporter's folder
    exporter = str(demo_store.parent / "exporter")
    assert got[(("source", exporter),)] == pytest.approx(EXPORTER_RUN_AT.timestamp())


def test_last_ingest_and_snapshots_match_the_logs(demo_store):
    later = datetime(2030, 1, 1, tzinfo=UTC)  # after every ingest and snapshot
    parsed = samples(metrics(demo_store, "--at", later.isoformat()).stdout)
    with connect(demo_store) as con:
        finished, *counts = con.execute(
            "SELECT epoch_ns(finished_at), read, stored, duplicates, skipped, quarantined FROM "
            "ingest_log WHERE kind = 'events' ORDER BY finished_at DESC LIMIT 1").fetchone()
        snaps = dict(con.execute("SELECT kind, epoch_ns(max(captured_at)) FROM snapshot_log "
                                 "GROUP BY kind").fetchall())
    assert parsed[("discovery_history_last_ingest_timestamp_seconds", ())] == pytest.approx(
        finished / NS, abs=1e-6)
    lines = by_name(parsed, "discovery_history_last_ingest_lines")
    assert {dict(k)["outcome"]: v for k, v in lines.items()} == dict(
        zip(("read", "stored", "duplicates", "skipped", "quarantined"), counts, strict=True))
    assert counts == [2, 1, 0, 0, 1]  # the exporter's ingest: a run and a line that is not JSON
    assert {dict(k)["kind"]: v for k, v in by_name(
        parsed, "discovery_history_last_snapshot_timestamp_seconds").items()} == {
        k: v / NS for k, v in snaps.items()}
    assert not by_name(parsed, "discovery_history_instances_failing")  # nothing in 24 h


def test_as_of_before_anything_has_no_ingest_and_zero_attempts(demo_store):
    parsed = samples(metrics(demo_store, "--at", "2020-01-01").stdout)
    names = {n for n, _ in parsed}
    assert "discovery_history_last_ingest_timestamp_seconds" not in names
    assert by_name(parsed, "discovery_history_attempts_last_hour") == {
        (("cloud", "aws"),): 0.0, (("cloud", "azure"),): 0.0}


def test_every_family_is_a_documented_gauge(demo_store):
    text = metrics(demo_store, "--at", "2030-01-01").stdout  # after the ingests: all families
    families = list(text_string_to_metric_families(text))
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert {f.name for f in families} == {
        "discovery_history_instances_failing", "discovery_history_attempts_last_hour",
        "discovery_history_failed_attempts_last_hour",
        "discovery_history_source_newest_event_timestamp_seconds",
        "discovery_history_last_ingest_timestamp_seconds", "discovery_history_last_ingest_lines",
        "discovery_history_last_snapshot_timestamp_seconds"}
    for f in families:
        assert f.type == "gauge" and f.documentation and f"`{f.name}`" in readme


def test_openmetrics(demo_store, exposition):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

    res = metrics(demo_store, "--at", NOW.isoformat(), "--openmetrics")
    assert res.exit_code == 0 and res.stdout.endswith("# EOF\n")
    om = {(s.name, tuple(sorted(s.labels.items()))): s.value
          for fam in om_parse(res.stdout) for s in fam.samples}
    assert om == samples(exposition)


def test_out_writes_the_file_atomically(demo_store, exposition, tmp_path):
    out = tmp_path / "discovery_history.prom"
    out.write_text("old\n")
    res = metrics(demo_store, "--at", NOW.isoformat(), "--out", str(out))
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == f"wrote {out}\n"
    assert out.read_text() == exposition
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left
    assert out.stat().st_mode & 0o444 == 0o444  # node_exporter runs as another user


def test_errors_are_one_line(tmp_path):
    res = metrics(tmp_path / "nothing")
    assert res.exit_code == 1 and res.stderr.startswith(PREFIX + "no store at")
    res = metrics(tmp_path, "--out", str(tmp_path / "missing" / "x.prom"))
    assert res.exit_code == 1 and len(res.stderr.splitlines()) == 1


# --- the receiver's /metrics -------------------------------------------------------------------


def _get(address, path: str, accept: str = "") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection(*address, timeout=60)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    finally:
        conn.close()


def test_receiver_serves_the_store_metrics(demo_store, tmp_path):
    from pipeline.cli.receive import store_metrics
    from pipeline.sources.receiver import Receiver
    from pipeline.sources.spool import Spool
    from pipeline.store import Store

    with Receiver(Spool(tmp_path / "spool"), ("127.0.0.1", 0),
                  metrics=store_metrics(Store(demo_store))) as rx:
        status, ctype, body = _get(rx.address, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        parsed = samples(body)
        assert parsed[("discovery_history_last_ingest_lines", (("outcome", "quarantined"),))] == 1
        status, ctype, body = _get(rx.address, "/metrics",
                                   "application/openmetrics-text; version=1.0.0")
        assert status == 200 and ctype.startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")
        assert _get(rx.address, "/healthz")[0] == 200


def test_receiver_metrics_of_a_missing_store_answer_503_and_receiving_goes_on(tmp_path):
    from pipeline.cli.receive import store_metrics
    from pipeline.sources.receiver import Receiver
    from pipeline.sources.spool import Spool
    from pipeline.store import Store

    with Receiver(Spool(tmp_path / "spool"), ("127.0.0.1", 0),
                  metrics=store_metrics(Store(tmp_path / "nothing"))) as rx:
        status, _, body = _get(rx.address, "/metrics")
        assert status == 503 and body.startswith("metrics unavailable: no store at")
        assert len(body.splitlines()) == 1
        assert _get(rx.address, "/healthz")[0] == 200
    with Receiver(Spool(tmp_path / "spool2"), ("127.0.0.1", 0)) as rx:  # --no-metrics
        assert _get(rx.address, "/metrics")[0] == 404
