"""The history report: table renderers, charts, the report folder, and the HTML page as headless
Chromium renders it (screenshot + DOM text; event text must stay inert)."""

from __future__ import annotations

import html as html_lib
import json
import re
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
                 "| i-1 | 123456789012<br>us-east-1 | 2 | 1 | 2 | 0 | 2026-05-04T10:00:00Z "
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


# --- issue 13: a page a stakeholder reads without help --------------------------------------

MEASURE = """<script>
window.addEventListener('load', () => {
  const doc = document.documentElement, vw = doc.clientWidth;
  const over = [...document.querySelectorAll('table, img, h1, h2, p, .cards')]
    .filter(e => e.getBoundingClientRect().right > vw + 0.5)
    .map(e => e.tagName + ':' + (e.previousElementSibling || {}).textContent);
  const clipped = [...document.querySelectorAll('td, th')]
    .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent);
  const pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = JSON.stringify({vw, scroll: doc.scrollWidth, body: document.body.scrollWidth,
                                    over, clipped});
  document.body.appendChild(pre);
});
</script>"""


def measure_layout(page: Path, width: int, tmp_path: Path) -> dict:
    """Render the report page at `width` px in headless Chromium and measure its layout: the
    page's scroll width, and the elements reaching past the viewport or cells clipping text
    (a copy of the page with a measuring script: the page itself forbids scripts)."""
    html = page.read_text()
    html = html.replace('<meta http-equiv="Content-Security-Policy"', '<meta name="x-csp"')
    probe = page.with_name(f"measure-{width}.html")
    probe.write_text(html.replace("</body>", MEASURE + "</body>"))
    dom = chromium(["--dump-dom", f"--window-size={width},1000", "--virtual-time-budget=5000",
                    probe.as_uri()], tmp_path / f"profile-{width}").stdout.decode()
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html_lib.unescape(found.group(1)))


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory) -> Path:
    """A week of the synthetic fleet, its last day reported: long ids, reasons and remedies."""
    root = tmp_path_factory.mktemp("wide")
    store = demo_store(root)
    end = datetime(2026, 5, 31, tzinfo=UTC)
    write_history_report(store, root / "report", start=end - timedelta(days=1), end=end,
                         trend_from=end - timedelta(days=7))
    return root / "report" / "index.html"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                    "(Debian: apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_fits_a_laptop_and_a_mail_client(wide_report, tmp_path, width):
    got = measure_layout(wide_report, width, tmp_path)
    assert got["vw"] <= width
    assert (got["scroll"], got["body"]) <= (got["vw"], got["vw"]), got
    assert got["over"] == [] and got["clipped"] == [], got


def _report_of(root: Path, events: list[dict], start, end) -> Path:
    store = Store(root / "lake")
    ingest_events(store, [str(write_lines(root / "audit" / "events.log", events))])
    write_history_report(store, root / "report", start=start, end=end)
    return root / "report"


def test_newly_failing_says_when_the_previous_period_has_no_data(small_report):
    out, _ = small_report
    md = (out / "report.md").read_text().splitlines()
    assert not any("newly failing vs previous period" in line for line in md)
    assert "* **–** newly failing: no data stored for the previous period " \
           "(2026-05-04T04:00:00Z – 2026-05-04T08:00:00Z)" in md
    page = (out / "index.html").read_text()
    assert "no data stored for the previous period" in page


def test_newly_failing_counts_against_a_period_with_data(tmp_path):
    events = [make_run("i-1", "TDS00I", T0 - 3 * 60 * M, command_id="c0"),
              make_run("i-1", "TDS00W", T0, exit_code=150, command_id="c1")]
    out = _report_of(tmp_path, events, T0 - 2 * 60 * M, T0 + 2 * 60 * M)
    assert "* **1** newly failing vs previous period" in (out / "report.md").read_text()


def md_table(md: str, section: str) -> list[dict]:
    """The rows of the Markdown table under `## section`, as dicts by header."""
    part = next(p for p in md.split("## ") if p.startswith(section))
    lines = [[c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])]
             for ln in part.splitlines() if ln.startswith("| ")]
    return [dict(zip(lines[0], row, strict=True)) for row in lines[1:]]


def test_retries_count_attempts_after_the_first_failure(tmp_path):
    events = [make_run("i-1", "TDS00I", T0, command_id="c1"),
              make_run("i-1", "TDS00I", T0 + 10 * M, command_id="c2"),
              make_run("i-1", "TDS00W", T0 + 20 * M, exit_code=101, command_id="c3"),
              make_run("i-1", "TDS00W", T0 + 30 * M, exit_code=101, command_id="c4")]
    out = _report_of(tmp_path, events, T0 - 60 * M, T0 + 60 * M)
    [row] = md_table((out / "report.md").read_text(), "Top failing instances")
    assert (row["Instance"], row["Retries"], row["Failures"]) == ("i-1", "1", "2")


def test_one_label_for_azure_vms_and_api_errors(small_report):
    out, _ = small_report
    md = (out / "report.md").read_text()
    [change] = [r for r in md_table(md, "Changes since the previous period") if VM in r["Instance"]]
    [inst] = [r for r in md_table(md, "Top failing instances") if VM in r["Instance"]]
    [reason] = [r for r in md_table(md, "Top failure reasons")
                if r["Reason"] == "Missing Run Command permission"]
    assert change["Instance"] == inst["Instance"] == f"rg-web/{VM}"
    assert inst["Exit codes"] == reason["Exit codes"] == "API error"


def test_no_cause_the_data_cannot_show(small_report):
    out, _ = small_report
    for name in ("index.html", "report.md"):
        text = (out / name).read_text()
        assert "overlapping matchers" not in text
        assert "duplicate runs (started less than 2m0s after the previous attempt)" in text


@pytest.mark.parametrize("bucket,days", [("day", 7), ("day", 30), ("hour", 1)])
def test_chart_bars_sit_on_their_ticks(bucket, days):
    from matplotlib import dates as mdates

    start = T0_NS - T0_NS % (24 * 3600 * NS)
    end = start + days * 24 * 3600 * NS
    step = 3600 * NS if bucket == "hour" else 24 * 3600 * NS
    rows = [{"bucket_start": s, "key": "r", "failures": 1, "attempts": 2}
            for s in charts.buckets(start, end, bucket)]
    fig = charts.trend_figure(rows, start, end, bucket)
    fig.canvas.draw()
    ax = fig.axes[0]
    centers = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    starts = [mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=s // 1000))
              for s in range(start, end, step)]
    assert centers == pytest.approx(starts, abs=1e-6)
    ticks = [t for t in ax.get_xticks() if starts[0] <= t <= starts[-1]]
    assert len(ticks) >= 2 and all(min(abs(t - c) for c in centers) < 1e-6 for t in ticks)
