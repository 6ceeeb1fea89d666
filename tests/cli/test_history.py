"""`history`, `trends` and `report` through click: whole outputs against literal text, one-line
errors, and the console script once pipeline.cli.main registers the commands."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.main import main
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.store import Store
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_run,
    make_join,
    make_run,
    ts,
    write_json,
    write_lines,
)

CLI = main

M = timedelta(minutes=1)
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
NOT_READY = "ERROR: node did not become ready (join cluster) within 5m0s\n   Active: activating"
WINDOW = ["--from", "2026-05-04T08:00:00Z", "--to", "2026-05-04T12:00:00Z"]
PREFIX = "discovery-history: error: "


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli-history")
    events = [
        make_run("i-1", "TDS00W", T0, exit_code=150, stdout="Installing teleport\n",
                 stderr=NOT_READY, command_id="c1", uid="u-1"),
        make_run("i-1", "TDS00W", T0 + 10 * M, exit_code=150, stderr=NOT_READY, command_id="c2",
                 uid="u-2"),
        make_run("i-1", "TDS00I", T0 + 20 * M, stdout="Installing teleport\nAgent joined cluster.",
                 command_id="c3", uid="u-3"),
        make_azure_run(VM.upper(), "TAZ00W", T0 + 5 * M, api_error="AuthorizationFailed: denied",
                       uid="u-4"),
        make_run("i-3", "TDS00W", T0 + 70 * M, exit_code=-1, command_id="c4", uid="u-5"),
    ]
    store = Store(tmp / "lake")
    ingest_events(store, [str(write_lines(tmp / "audit" / "events.log", events))])
    ingest_snapshot(store, "nodes", str(write_json(tmp / "nodes.json", [make_aws_node("i-1")])),
                    T0 + 120 * M)
    return tmp / "lake"


def cli(lake: Path, *args: str):
    result = CliRunner().invoke(CLI, ["--store", str(lake), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_line_error(result, *fragments: str, code: int = 1) -> str:
    assert result.exit_code == code and result.stdout == "", (result.exit_code, result.output)
    [line] = result.stderr.splitlines()
    assert line.startswith(PREFIX) and all(f in line for f in fragments), line
    return line


TRENDS = {
    "cloud-hour-text": ([], (
        "Bucket                Cloud  Attempts  Failures  Rate    Failing instances  Instances\n"
        "--------------------  -----  --------  --------  ------  -----------------  ---------\n"
        "2026-05-04T10:00:00Z  aws    3         2         66.7%   1                  1\n"
        "2026-05-04T10:00:00Z  azure  1         1         100.0%  1                  1\n"
        "2026-05-04T11:00:00Z  aws    1         1         100.0%  1                  1\n")),
    "category-day-csv": (["--by", "category", "--bucket", "day", "--format", "csv"], (
        "bucket_start,key,attempts,failures,failure_rate,failing_instances,instances\r\n"
        "2026-05-04T00:00:00Z,Agent did not join,5,2,0.4,1,3\r\n"
        "2026-05-04T00:00:00Z,Missing Run Command permission,5,1,0.2,1,3\r\n"
        "2026-05-04T00:00:00Z,SSM agent lost,5,1,0.2,1,3\r\n")),
    "exit-code-markdown": (["--by", "exit-code", "--format", "markdown"], (
        "| Bucket | Exit code | Attempts | Failures | Rate | Failing instances | Instances |\n"
        "|---|---|---|---|---|---|---|\n"
        "| 2026-05-04T10:00:00Z | 150 | 2 | 2 | 100.0% | 1 | 1 |\n"
        "| 2026-05-04T10:00:00Z | API error | 1 | 1 | 100.0% | 1 | 1 |\n"
        "| 2026-05-04T10:00:00Z | 0 | 1 | 0 | 0.0% | 0 | 1 |\n"
        "| 2026-05-04T11:00:00Z | -1 | 1 | 1 | 100.0% | 1 | 1 |\n")),
    "account-day-text": (["--by", "account", "--bucket", "day"], (
        "Bucket                Account                               Attempts  Failures  Rate    "
        "Failing instances  Instances\n"
        "--------------------  ------------------------------------  --------  --------  ------  "
        "-----------------  ---------\n"
        "2026-05-04T00:00:00Z  123456789012                          4         3         75.0%   "
        "2                  2\n"
        "2026-05-04T00:00:00Z  6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b  1         1         100.0%  "
        "1                  1\n")),
}


@pytest.mark.parametrize("args,expected", TRENDS.values(), ids=TRENDS.keys())
def test_trends(lake, args, expected):
    result = cli(lake, "trends", *WINDOW, *args)
    assert (result.exit_code, result.stdout_bytes.decode()) == (0, expected)  # CSV keeps CRLF


def test_trends_json_and_empty_window(lake):
    rows = json.loads(cli(lake, "trends", *WINDOW, "--by", "region", "--format", "json").stdout)
    assert rows[0] == {"bucket_start": "2026-05-04T10:00:00Z", "key": "us-east-1", "attempts": 3,
                       "failures": 2, "failure_rate": 0.6667, "failing_instances": 1,
                       "instances": 1}
    empty = cli(lake, "trends", "--from", "2020-01-01", "--to", "2020-01-02")
    assert empty.stdout == "No install attempts in the window.\n"


HISTORY_I1 = (
    "i-1 (aws, 123456789012, us-east-1): 3 attempts, 2 failed; first failure 2026-05-04T10:00:00Z; "
    "last success 2026-05-04T10:20:00Z; exit codes 150; duplicate runs 0; enrolled after 20m0s; "
    "online.\n"
    "\n"
    "Time                  Result  Exit  Reason              Since previous start  Output\n"
    "--------------------  ------  ----  ------------------  --------------------  ----------------------\n"
    "2026-05-04T10:00:00Z  failed  150   Agent did not join                        ERROR: node did not...\n"
    "2026-05-04T10:10:00Z  failed  150   Agent did not join  10m0s                 ERROR: node did not...\n"
    "2026-05-04T10:20:00Z  ok      0                         10m0s                 Agent joined cluster.\n"
)


def test_history_text(lake):
    result = cli(lake, "history", "i-1", "--width", "100")
    assert (result.exit_code, result.stdout) == (0, HISTORY_I1)


def test_history_finds_azure_vms_by_any_case_and_tctl_instance_text(lake):
    upper = cli(lake, "history", VM.upper(), "--width", "100").stdout
    assert upper.startswith(f"rg-web/{VM.upper()} (azure, 6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b, "
                            "westeurope): 1 attempt, 1 failed; first failure 2026-05-04T10:05:00Z;"
                            " failing: 1 in a row, last reason Missing Run Command permission;")
    assert cli(lake, "history", f"rg-web/{VM}", "--width", "100").stdout == upper


def test_history_csv_and_json(lake):
    csv_lines = cli(lake, "history", "i-3", *WINDOW, "--format", "csv").stdout.splitlines()
    assert csv_lines == [
        "time,result,code,exit_code,status,reason,remedy,since_previous,steps,attempt_id,uid,"
        "api_error,stdout,stderr",
        "2026-05-04T11:10:00Z,failed,TDS00W,-1,Failed,SSM agent lost,The SSM agent lost its "
        "connection or the instance is not registered with SSM: check that the agent runs and can "
        "reach the SSM endpoints.,,1,c4,u-5,,,"]
    doc = json.loads(cli(lake, "history", "i-1", "--format", "json").stdout)
    assert doc["instance"]["failure_streak"] == 0 and doc["instance"]["exit_codes"] == ["150"]
    assert [a["uid"] for a in doc["attempts"]] == ["u-1", "u-2", "u-3"]
    assert doc["attempts"][1]["since_previous"] == "10m0s"


def test_history_markdown(lake):
    md = cli(lake, "history", "i-3", "--format", "markdown").stdout.splitlines()
    assert md[2:] == ["| Time | Result | Exit | Reason | Since previous start | Output |",
                      "|---|---|---|---|---|---|",
                      "| 2026-05-04T11:10:00Z | failed | -1 | SSM agent lost |  | Failed |"]


@pytest.mark.parametrize("args,fragments", [
    (["history", "i-404"], ["no install attempts of instance 'i-404'", "widen the window"]),
    (["history", " "], ["instance must not be empty"]),
    (["trends", "--last", "1x"], ["invalid duration '1x'"]),
    (["trends", "--last", "1h", "--from", "2026-05-04"], ["either --last or --from/--to"]),
    (["trends", "--from", "2026-05-05", "--to", "2026-05-04"], ["is not after --from"]),
    (["report", "--last", "1h", "--out", "x", "--from", "2026-05-04"], ["either --last"]),
], ids=["unknown-instance", "empty-instance", "bad-duration", "last-and-from", "backwards",
        "report-window"])
def test_errors_are_one_line(lake, args, fragments):
    one_line_error(cli(lake, *args), *fragments)


def test_missing_store_is_one_line(tmp_path):
    for args in (["trends"], ["history", "i-1"], ["report", "--out", str(tmp_path / "r")]):
        one_line_error(cli(tmp_path / "nope", *args), "no store at")


def test_report_writes_the_folder(lake, tmp_path):
    out = tmp_path / "r"
    result = cli(lake, "report", *WINDOW, "--out", str(out), "--top", "1", "--all-nodes")
    files = ("changes.csv, failure-trend.png, index.html, instances.csv, nodes.csv, nodes.md, "
             "reasons.csv, report.md, top-reasons.png, trends.csv")
    assert result.exit_code == 0
    assert result.stdout == f"wrote {out}: {files}\n"
    assert result.stderr == "5 attempts, 4 failed, 3 failing instances, 3 rows in the nodes table\n"
    sections = {part.split("\n", 1)[0]: part for part in (out / "report.md").read_text().split("## ")}
    table_rows = lambda title: [ln for ln in sections[title].splitlines() if ln.startswith("| ")][1:]  # noqa: E731
    assert [r.split(" | ")[0] for r in table_rows("Top failing instances")] == ["| i-1"]  # --top 1
    assert len(table_rows("Changes since the previous period")) == 1
    assert [r.split(" | ")[3] for r in table_rows("Nodes")] == ["i-3", "i-1", f"rg-web/{VM.upper()}"]
    assert "Every column untruncated: `nodes.csv`." in sections["Nodes"]


@pytest.mark.parametrize("command,options", [
    ("history", ["--last", "--from", "--to", "--format", "--width"]),
    ("trends", ["--last", "--from", "--to", "--by", "--bucket", "--format"]),
    ("report", ["--last", "--from", "--to", "--out", "--trend-days", "--bucket", "--all-nodes",
                "--top"]),
])
def test_help_lists_the_options(command, options):
    text = CliRunner().invoke(CLI, [command, "--help"]).stdout
    assert all(f"{o} " in text for o in options), text


SCRIPT = Path(sys.executable).with_name("discovery-history")


def test_console_script(lake):
    p = subprocess.run([str(SCRIPT), "--store", str(lake), "history", "i-1", "--width", "100"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (0, HISTORY_I1)


# --- issue 13: one-line errors, case-insensitive choices, windows as typed, nanoseconds --------

@pytest.mark.parametrize("args,fragments", [
    (["trends", "--by", "os"], ["--by", "'os'", "'exit-code'"]),
    (["trends", "--bucket", "week"], ["--bucket", "'week'", "'hour'"]),
    (["trends", "--format", "xml"], ["--format", "'xml'", "'markdown'"]),
    (["history", "i-1", "--format", "xml"], ["--format", "'xml'"]),
    (["report", "--out", "x", "--bucket", "week"], ["--bucket", "'week'"]),
    (["history"], ["Missing argument", "history --help"]),
    (["trends", "--nope"], ["No such option", "--nope"]),
], ids=["by", "bucket", "format", "history-format", "report-bucket", "missing-argument",
        "unknown-option"])
def test_usage_errors_are_one_line(lake, args, fragments):
    one_line_error(cli(lake, *args), *fragments, code=2)


def test_nodes_usage_errors_are_one_line_too(lake):
    result = CliRunner().invoke(main, ["--store", str(lake), "nodes", "--format", "xml"])
    one_line_error(result, "--format", "'xml'", code=2)


def test_help_still_works(lake):
    result = cli(lake, "trends", "--help")
    assert result.exit_code == 0 and "--by" in result.stdout
    alone = CliRunner().invoke(CLI, [])  # no arguments: the group's help, as click shows it
    assert alone.exit_code == 2 and alone.stderr.startswith("Usage:") and "trends" in alone.stderr
    one_line_error(cli(lake), "Missing command", code=2)


@pytest.mark.parametrize("args,same_as", [
    (["--by", "EXIT-CODE", "--format", "Markdown"], TRENDS["exit-code-markdown"][0]),
    (["--by", "Category", "--bucket", "DAY", "--format", "CSV"], TRENDS["category-day-csv"][0]),
], ids=["by-and-format", "by-bucket-format"])
def test_choices_ignore_case(lake, args, same_as):
    assert cli(lake, "trends", *WINDOW, *args).stdout_bytes == \
        cli(lake, "trends", *WINDOW, *same_as).stdout_bytes


@pytest.mark.parametrize("start,end", [("2026-05-05T02:00:00+02:00", "2026-05-04"),
                                       ("2026-05-04T10:00:00.5Z", "2026-05-04T10:00:00.5Z")],
                         ids=["reversed", "empty"])
def test_a_reversed_window_names_both_ends_as_typed(lake, start, end):
    for command in (["trends"], ["history", "i-1"], ["report", "--out", "x"]):
        one_line_error(cli(lake, *command, "--from", start, "--to", end),
                       f"--from {start}", f"--to {end}")


def test_history_up_to_a_time(lake):
    result = cli(lake, "history", "i-1", "--to", "2026-05-04T10:15:00Z")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("i-1 (aws, 123456789012, us-east-1): 2 attempts, 2 failed;")


def test_windows_keep_nanoseconds(lake):
    # u-1 is at 10:00:00 exactly: a window from one nanosecond later leaves it out
    later = cli(lake, "history", "i-1", "--from", "2026-05-04T10:00:00.000000001Z",
                "--format", "json")
    assert [a["uid"] for a in json.loads(later.stdout)["attempts"]] == ["u-2", "u-3"]
    until = cli(lake, "history", "i-1", "--from", "2026-05-04", "--to",
                "2026-05-04T10:00:00.000000001Z", "--format", "json")
    assert [a["uid"] for a in json.loads(until.stdout)["attempts"]] == ["u-1"]


def test_history_checks_the_resource_group(lake):
    line = one_line_error(cli(lake, "history", f"wrong-rg/{VM}"), f"wrong-rg/{VM}", "rg-web")
    assert "not 'wrong-rg'" in line
    ok = cli(lake, "history", f"RG-WEB/{VM.upper()}", "--width", "100")
    assert ok.exit_code == 0 and ok.stdout.startswith(f"rg-web/{VM.upper()} (azure")


JOINED = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Path:
    """No node snapshot; a gap just under two minutes, a join after exit 150, a tie."""
    tmp = tmp_path_factory.mktemp("cli-history-small")
    events = [
        make_run("i-gap", "TDS00W", T0, exit_code=101, command_id="g1", uid="g-1"),
        make_run("i-gap", "TDS00W", T0, exit_code=101, command_id="g2", uid="g-2",
                 time=ts(T0 + timedelta(seconds=119), 999_999_999)),
        make_run(JOINED, "TDS00W", T0, exit_code=150, stderr=NOT_READY, command_id="j1"),
        make_join(f"123456789012-{JOINED}", T0 + 3 * M),
        make_run("i-tie", "TDS00I", T0, command_id="t1", ei=1),
        make_run("i-tie", "TDS00W", T0, exit_code=101, command_id="t2", ei=2),
        make_azure_run(VM, "TAZ00W", T0, api_error="AuthorizationFailed: denied"),
    ]
    store = Store(tmp / "lake")
    ingest_events(store, [str(write_lines(tmp / "audit" / "events.log", events))])
    return tmp / "lake"


def test_gaps_read_to_the_second_in_text_and_exactly_in_json(small_lake):
    text = cli(small_lake, "history", "i-gap", "--width", "120").stdout.splitlines()
    assert text[0].endswith("duplicate runs 1; online state unknown (no node snapshot).")
    assert text[2].split()[:6] == ["Time", "Result", "Exit", "Reason", "Since", "previous"]
    assert "  1m59s  " in text[5]
    doc = json.loads(cli(small_lake, "history", "i-gap", "--format", "json").stdout)
    assert [a["since_previous"] for a in doc["attempts"]] == [None, "1m59.999999999s"]
    assert doc["instance"]["duplicate_runs"] == 1


def test_headline_counts_the_join_and_the_tie(small_lake):
    join = cli(small_lake, "history", JOINED).stdout.splitlines()[0]
    assert "enrolled after 3m0s (agent joined 2026-05-04T10:03:00Z)" in join
    tie = cli(small_lake, "history", "i-tie").stdout.splitlines()[0]
    assert "failing: 1 in a row, last reason sudo missing" in tie


def test_history_labels_api_errors(small_lake):
    lines = cli(small_lake, "history", VM, "--width", "120").stdout.splitlines()
    assert "exit codes API error;" in lines[0]
    assert lines[4].split()[1:4] == ["failed", "API", "error"]
