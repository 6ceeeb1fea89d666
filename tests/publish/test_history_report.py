"""The history report: table renderers, charts, the report folder, and the HTML page as headless
Chromium renders it (screenshot + DOM text; event text must stay inert)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.publish import charts
from pipeline.publish.build import write_history_report
from pipeline.publish.history import (
    Column,
    auto_bucket,
    excerpt,
    go_duration,
    render_table,
)
from pipeline.store import Store
from tests.conftest import T0, make_aws_node, make_azure_run, make_run, write_json, write_lines

CHROMIUM = Path("/usr/bin/chromium")
PAYLOAD = "<script>document.title='PWNED'</script>"
NS = 10**9
T0_NS = 1_777_888_800 * NS  # 2026-05-04T10:00:00Z
M = timedelta(minutes=1)
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
NOT_READY = "ERROR: node did not become ready (join cluster) within 5m0s"


def demo_store(root: Path, *, days: int = 7, aws: int = 200, azure: int = 60) -> Store:
    """A small synthetic fleet (pipeline.gen.generate), ingested with its snapshots at its end."""
    from pipeline.gen.generate import generate_fleet

    fleet = generate_fleet(root / "fleet", days=days, aws_instances=aws, azure_vms=azure)
    store = Store(root / "lake")
    ingest_events(store, [str(root / "fleet" / "auth")])
    for kind, name in (("nodes", "nodes.json"), ("user_tasks", "user_tasks.json")):
        ingest_snapshot(store, kind, str(root / "fleet" / name), fleet.window_end)
    return store


def small_store(root: Path) -> Store:
    """Five attempts at fixed instants, with HTML in stdout and in an API error."""
    events = [
        make_run("i-1", "TDS00W", T0, exit_code=150, stderr=NOT_READY, command_id="c1"),
        make_run("i-1", "TDS00W", T0 + 10 * M, exit_code=150, stdout=PAYLOAD, command_id="c2"),
        make_run("i-2", "TDS00I", T0 + 20 * M, stdout="Agent joined cluster.", command_id="c3"),
        make_azure_run(VM, "TAZ00W", T0 + 5 * M, api_error=f"AuthorizationFailed {PAYLOAD}"),
        make_run("i-3", "TDS00W", T0 + 70 * M, exit_code=-1, command_id="c4"),
    ]
    store = Store(root / "lake")
    ingest_events(store, [str(write_lines(root / "audit" / "events.log", events))])
    ingest_snapshot(store, "nodes", str(write_json(root / "nodes.json", [make_aws_node("i-2")])),
                    T0 + 2 * 60 * M)
    return store


# --- renderers -------------------------------------------------------------------------------

COLUMNS = (Column("When", "t", "time"), Column("Gap", "gap", "duration"),
           Column("Rate", "rate", "rate"), Column("Codes", "codes", "list"),
           Column("Note", "note"))
ROWS = [{"t": T0_NS + 5, "gap": None, "rate": 0.6667, "codes": [-1, 150], "note": "a|b\n<c>"},
        {"t": T0_NS, "gap": 61 * NS, "rate": 1.0, "codes": [], "note": "x"}]
RENDERED = {
    "text": (
        "When                  Gap   Rate    Codes   Note\n"
        "--------------------  ----  ------  ------  -------\n"
        "2026-05-04T10:00:00Z        66.7%   -1,150  a|b <c>\n"
        "2026-05-04T10:00:00Z  1m1s  100.0%          x\n"
    ),
    "csv": (
        "t,gap,rate,codes,note\r\n"
        '2026-05-04T10:00:00.000000005Z,,0.6667,"-1,150","a|b\n<c>"\r\n'
        "2026-05-04T10:00:00Z,1m1s,1.0,,x\r\n"
    ),
    "markdown": (
        "| When | Gap | Rate | Codes | Note |\n|---|---|---|---|---|\n"
        "| 2026-05-04T10:00:00Z |  | 66.7% | -1,150 | a\\|b<br>&lt;c&gt; |\n"
        "| 2026-05-04T10:00:00Z | 1m1s | 100.0% |  | x |\n"
    ),
}


@pytest.mark.parametrize("fmt", RENDERED)
def test_render_table(fmt):
    assert render_table(fmt, COLUMNS, ROWS).decode() == RENDERED[fmt]


def test_render_json_keeps_types():
    assert json.loads(render_table("json", COLUMNS, ROWS)) == [
        {"t": "2026-05-04T10:00:00.000000005Z", "gap": None, "rate": 0.6667, "codes": [-1, 150],
         "note": "a|b\n<c>"},
        {"t": "2026-05-04T10:00:00Z", "gap": "1m1s", "rate": 1.0, "codes": [], "note": "x"}]


@pytest.mark.parametrize("fmt,expected", [("text", "None.\n"), ("csv", "t,gap,rate,codes,note\r\n"),
                                          ("json", "[]\n"), ("markdown", None)])
def test_render_empty(fmt, expected):
    out = render_table(fmt, COLUMNS, [], empty="None.").decode()
    assert out == (expected or "| When | Gap | Rate | Codes | Note |\n|---|---|---|---|---|\n\nNone.\n")


def test_text_width_cuts_only_the_last_column():
    out = render_table("text", COLUMNS, [ROWS[0] | {"note": "n" * 80}], width=70).decode()
    assert out.splitlines()[2].endswith("nnn...") and max(map(len, out.splitlines())) == 70


@pytest.mark.parametrize("ns,text", [(0, "0s"), (45 * NS, "45s"), (725 * NS, "12m5s"),
                                     (26 * 3600 * NS + 5, "26h0m0s"), (-90 * NS, "-1m30s")])
def test_go_duration(ns, text):
    assert go_duration(ns) == text


@pytest.mark.parametrize("rec,text", [
    ({"api_error": "Throttled\nretry", "stderr": "e", "stdout": "o"}, "Throttled"),
    ({"stderr": "\n---ERROR---\nfailed to run commands: exit status 1\n"},
     "failed to run commands: exit status 1"),
    ({"stdout": "Installing\nAgent joined cluster.\n\n"}, "Agent joined cluster."),
    ({"stdout": "", "status": "TimedOut"}, "TimedOut"),
    ({}, ""),
], ids=["api-error", "skip-banner", "last-stdout-line", "status", "nothing"])
def test_excerpt(rec, text):
    assert excerpt(rec) == text


def test_auto_bucket():
    assert (auto_bucket(0, 3 * 24 * 3600 * NS), auto_bucket(0, 3 * 24 * 3600 * NS + 1)) == ("hour", "day")


# --- charts ----------------------------------------------------------------------------------


def test_trend_series_fills_buckets_and_groups_the_rest_as_other():
    h = 3600 * NS
    starts = charts.buckets(T0_NS + 5, T0_NS + 3 * h, "hour")
    rows = [{"bucket_start": T0_NS, "key": k, "failures": f, "attempts": 10}
            for k, f in (("a", 5), ("b", 3), ("c", 1), ("d", 1))]
    rows.append({"bucket_start": T0_NS + 2 * h, "key": "a", "failures": 2, "attempts": 4})
    series, rates = charts.trend_series(rows, starts, top=2)
    assert starts == [T0_NS, T0_NS + h, T0_NS + 2 * h]
    assert series == {"a": [5, 0, 2], "b": [3, 0, 0], "Other": [2, 0, 0]}
    assert rates == [1.0, None, 0.5]


def test_charts_are_png_and_deterministic():
    rows = [{"reason": "SSM agent lost", "failures": 7, "failing_instances": 2}]
    first = charts.png(charts.reasons_figure(rows))
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == charts.png(charts.reasons_figure(rows))
    empty = charts.png(charts.trend_figure([], T0_NS, T0_NS + 3600 * NS, "hour"))
    assert png_size(empty) == (1000, 420)


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


# --- the report folder -----------------------------------------------------------------------

FILES = ["changes.csv", "failure-trend.png", "failures.csv", "failures.md", "index.html",
         "instances.csv", "reasons.csv", "report.md", "top-reasons.png", "trends.csv"]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("small")
    store = small_store(root)
    steps: list[str] = []
    summary = write_history_report(store, root / "report", start=T0 - 2 * 60 * M,
                                   end=T0 + 2 * 60 * M, progress=steps.append)
    assert steps[0] == "summary" and steps[-1] == "writing files"
    return root / "report", summary


def test_report_files_and_summary(small_report):
    out, summary = small_report
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert summary == {"dir": str(out), "start": "2026-05-04T08:00:00Z",
                       "end": "2026-05-04T12:00:00Z", "failures": 3, "attempts": 5,
                       "failed_attempts": 4, "failing_instances": 3, "files": FILES}


def test_report_csvs_are_complete(small_report):
    out, _ = small_report
    instances = (out / "instances.csv").read_text().splitlines()
    assert instances[0].startswith("cloud,instance_key,account_id,region,")
    assert [line.split(",")[1] for line in instances[1:]] == ["i-1", "i-3", VM, "i-2"]
    reasons = (out / "reasons.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in reasons[1:]] == [
        "Agent did not join", "Missing Run Command permission", "SSM agent lost"]


def test_report_markdown(small_report):
    out, _ = small_report
    md = (out / "report.md").read_text()
    for line in ("# Teleport auto-discovery history, 2026-05-04T08:00:00Z – 2026-05-04T12:00:00Z",
                 "* **5** install attempts (aws 4 · azure 1)",
                 "* **4** failed attempts (80.0%)",
                 "![failure-trend.png](failure-trend.png)",
                 "| i-1 | aws | 123456789012 | us-east-1 | 1 | 2 | 2 | 0 | 2026-05-04T10:00:00Z "
                 "| 2026-05-04T10:10:00Z | 150 | Agent did not join | no |",
                 "Every column untruncated: `failures.csv`."):
        assert line in md.splitlines(), line
    assert "<script" not in md and "&lt;script&gt;" in md


def test_report_html_is_self_contained_and_escaped(small_report):
    out, _ = small_report
    page = (out / "index.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page


def test_report_without_matplotlib_says_how_to_get_charts(tmp_path, monkeypatch):
    from pipeline.publish.html import NO_CHARTS

    store = small_store(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    summary = write_history_report(store, tmp_path / "r", start=T0 - 2 * 60 * M,
                                   end=T0 + 2 * 60 * M)
    assert summary["files"] == [f for f in FILES if not f.endswith(".png")]
    assert NO_CHARTS.replace("'", "&#x27;") in (tmp_path / "r" / "index.html").read_text()
    assert NO_CHARTS in (tmp_path / "r" / "report.md").read_text()


# --- headless Chromium -----------------------------------------------------------------------

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, timeout=120, check=True)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                    "(Debian: apt-get install -y chromium)")
def test_html_report_in_headless_chromium(tmp_path):
    store = demo_store(tmp_path)
    events = [make_run("i-evil", "TDS00W", datetime(2026, 5, 30, 12, tzinfo=UTC),
                       exit_code=1, stdout=PAYLOAD, command_id="evil")]
    ingest_events(store, [str(write_lines(tmp_path / "evil" / "events.log", events))])
    out = tmp_path / "report"
    end = datetime(2026, 5, 31, tzinfo=UTC)
    write_history_report(store, out, start=end - timedelta(days=1), end=end,
                         trend_from=end - timedelta(days=7))
    url = (out / "index.html").as_uri()
    shot = tmp_path / "report.png"
    chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path / "profile")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and png_size(data) == (1280, 2000)
    assert len(data) > 50_000  # charts and tables, not a blank page
    dom = chromium(["--dump-dom", url], tmp_path / "profile").stdout.decode()
    assert "<title>Teleport auto-discovery history, 2026-05-30T00:00:00Z – 2026-05-31T00:00:00Z" in dom
    for text in ("install attempts", "Failure trend (2026-05-24T00:00:00Z", "Top failure reasons",
                 "Top failing instances", "Changes since the previous period",
                 "tctl discovery nodes", "i-evil", "SSM agent lost"):
        assert text in dom, text
    assert "PWNED" not in dom.split("</title>")[0]  # the payload never ran
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
    assert "<script" not in dom.lower()
