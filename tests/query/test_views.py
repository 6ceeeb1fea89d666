"""The report's rules (spec §3), end to end: real files → ingest → DuckDB views → NodeRow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect, sql_files
from pipeline.report.nodes import nodes_report
from pipeline.timeutil import to_ns
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)

H = timedelta(hours=1)
FROM, TO = T0 - 2 * H, T0 + 2 * H
AT = TO  # snapshots taken at the end of the window


def build(store, tmp: Path, events, nodes=(), tasks=(), at=AT):
    if events:
        ingest_events(store, [str(write_lines(tmp / "audit" / "events.log", events))])
    ingest_snapshot(store, "nodes", str(write_json(tmp / f"nodes-{at:%H%M}.json", list(nodes))), at)
    ingest_snapshot(store, "user_tasks", str(write_json(tmp / f"tasks-{at:%H%M}.json", list(tasks))), at)


def report(store, frm=FROM, to=TO, **kw):
    with connect(store) as con:
        return nodes_report(con, frm, to, **kw)


def keys(rows):
    return [r.key for r in rows]


def test_newest_event_per_instance_wins(store, tmp_path):
    build(store, tmp_path, [
        make_run("i-1", "TDS00W", T0 - H, exit_code=1),
        make_run("i-1", "TDS00I", T0),
        make_run("i-1", "TDS00W", T0 - 30 * timedelta(minutes=1), exit_code=150),
    ])
    [row] = report(store)
    assert row.run.is_failure is False and row.run.time_ns == to_ns(T0)


def test_empty_key_is_dropped(store, tmp_path):
    build(store, tmp_path, [make_run("", "TDS00W", T0, exit_code=1), make_run("i-1")])
    assert keys(report(store)) == ["i-1"]


def test_event_side_wins_the_merge_and_node_fills_gaps(store, tmp_path):
    build(
        store, tmp_path,
        [make_run("i-1", "TDS00W", T0, exit_code=1, region="eu-west-1", account="111111111111"),
         make_run("i-2", "TDS00I", T0, region="")],
        nodes=[make_aws_node("i-1", account="999999999999", region="us-east-1"),
               make_aws_node("i-2", region="ap-south-1")],
    )
    rows = {r.key: r for r in report(store)}
    assert (rows["i-1"].region, rows["i-1"].account_id) == ("eu-west-1", "111111111111")
    assert rows["i-1"].is_online and rows["i-1"].run.is_failure  # online with a failed last run
    assert rows["i-1"].expiry_ns == to_ns(T0 + timedelta(minutes=10))
    assert rows["i-2"].region == "ap-south-1"  # empty event region: the node's


def test_nodes_create_rows_without_events_and_time_falls_back_to_expiry(store, tmp_path):
    build(store, tmp_path, [], nodes=[make_aws_node("i-7", labels_only=True)])
    [row] = report(store)
    assert (row.key, row.run, row.is_online, row.region) == ("i-7", None, True, "")


def test_user_tasks_decorate_but_never_create_rows(store, tmp_path):
    build(store, tmp_path, [make_run("i-1")],
          tasks=[make_task("t-1", "ec2-ssm-script-failure", ["i-1", "i-404"])])
    [row] = report(store)
    assert (row.user_task_id, row.user_task_issue) == ("t-1", "ec2-ssm-script-failure")


def test_instance_in_two_tasks_gets_the_last_by_name(store, tmp_path):
    build(store, tmp_path, [make_run("i-1")],
          tasks=[make_task("b", "ec2-join-failure", ["i-1"]), make_task("a", "x", ["i-1"])])
    assert report(store)[0].user_task_id == "b"


@pytest.mark.parametrize("only,expected", [(False, ["i-ok", "i-bad", "i-task"]), (True, ["i-bad", "i-task"])],
                         ids=["all", "failures-only"])
def test_failures_only_keeps_failures_and_tasked_rows(store, tmp_path, only, expected):
    build(store, tmp_path, [
        make_run("i-ok", at=T0), make_run("i-bad", "TDS00W", T0 - timedelta(minutes=1), exit_code=1),
        make_run("i-task", at=T0 - timedelta(minutes=2)),
    ], tasks=[make_task("t", "ec2-join-failure", ["i-task"])])
    assert keys(report(store, failures_only=only)) == expected


def test_aws_block_before_azure_then_account_region_time_key(store, tmp_path):
    build(store, tmp_path, [
        make_azure_run("0f8e0000-0000-0000-0000-000000000001", subscription="0000"),
        make_run("i-b", at=T0, account="2", region="us-east-1"),
        make_run("i-a", at=T0, account="2", region="us-east-1"),  # same time: key breaks the tie
        make_run("i-new", at=T0 + H, account="2", region="us-east-1"),
        make_run("i-up", at=T0, account="2", region="US-EAST-1"),  # byte order: upper first
        make_run("i-acc1", at=T0 - H, account="1", region="zz"),
    ])
    assert keys(report(store)) == ["i-acc1", "i-up", "i-new", "i-a", "i-b",
                                   "0f8e0000-0000-0000-0000-000000000001"]


@pytest.mark.parametrize("clouds,expected", [(["aws"], ["i-1"]), (["azure"], ["ABC"]),
                                             (["aws", "azure"], ["i-1", "ABC"])])
def test_cloud_filter(store, tmp_path, clouds, expected):
    build(store, tmp_path, [make_run("i-1"), make_azure_run("ABC")])
    assert keys(report(store, clouds=clouds)) == expected


def test_azure_vm_ids_match_exactly_as_tctl(store, tmp_path):
    """tctl keys Azure VMs by their id as written (Go map keys): the installer's upper-case label
    and a lower-case event id are two rows; ids that agree exactly are one."""
    vm = "0f8e9d7c-1111-2222-3333-444455556666"
    same = "7a6b5c4d-aaaa-bbbb-cccc-ddddeeeeffff"
    node_same = make_azure_node(same)
    node_same["metadata"]["labels"]["teleport.internal/vm-id"] = same
    build(store, tmp_path, [make_azure_run(vm, "TAZ00W", exit_code=1),
                            make_azure_run(same, "TAZ00W", exit_code=2)],
          nodes=[make_azure_node(vm), node_same])
    rows = {r.key: (r.is_online, r.run is not None, r.vm_id) for r in report(store)}
    assert rows == {vm: (False, True, vm), vm.upper(): (True, False, vm.upper()),
                    same: (True, True, same)}


def test_azure_api_error_is_carried(store, tmp_path):
    build(store, tmp_path, [make_azure_run("abc", "TAZ00W", api_error="AuthorizationFailed")])
    [row] = report(store)
    assert (row.run.api_error, row.run.exit_code, row.run.is_failure) == ("AuthorizationFailed", 0, True)


def test_failure_is_decided_by_code_not_exit_code(store, tmp_path):
    build(store, tmp_path, [make_run("i-old", "TDS00W", exit_code=0, status="Failed"),
                            make_run("i-odd", "TDS00I", exit_code=3)])
    rows = {r.key: r.run.is_failure for r in report(store)}
    assert rows == {"i-old": True, "i-odd": False}


def test_window_is_half_open(store, tmp_path):
    build(store, tmp_path, [make_run("i-from", at=FROM), make_run("i-to", at=TO)])
    assert keys(report(store)) == ["i-from"]


def test_online_is_as_of_the_window_end(store, tmp_path):
    build(store, tmp_path, [make_run("i-1", at=T0)], nodes=[], at=T0)  # not yet online
    ingest_snapshot(store, "nodes", str(write_json(tmp_path / "n2.json", [make_aws_node("i-1")])),
                    T0 + H)
    assert report(store, to=T0 + timedelta(minutes=30))[0].is_online is False
    assert report(store, to=T0 + 2 * H)[0].is_online is True


def test_output_joins_trimmed_stdout_and_stderr(store, tmp_path):
    build(store, tmp_path, [make_run("i-1", "TDS00W", exit_code=150, stdout="  out \n", stderr="\terr\n")])
    assert report(store)[0].run.output == "out\nerr"


def test_nanoseconds_survive_to_the_report(store, tmp_path):
    ev = make_run("i-1")
    ev["time"] = "2026-05-04T10:00:00.123456789Z"
    build(store, tmp_path, [ev])
    assert report(store)[0].run.time_ns == to_ns(datetime(2026, 5, 4, 10, tzinfo=UTC)) + 123456789


def test_no_rows(store, tmp_path):
    build(store, tmp_path, [make_run("i-1", at=T0 - 5 * H)])
    assert report(store) == []


# --- the newest event, the window's days, the rows (performance shapes keep the rules) --------

def latest(store, *cols: str) -> list[tuple]:
    with connect(store) as con:
        return con.execute(f"SELECT {', '.join(cols)} FROM latest_runs(make_timestamp_ns($1), "
                           "make_timestamp_ns($2)) ORDER BY instance_key",
                           [to_ns(FROM), to_ns(TO)]).fetchall()


def test_ties_on_time_go_to_the_higher_event_index_then_the_higher_uid(store, tmp_path):
    build(store, tmp_path, [
        {**make_run("i-ei", "TDS00W", exit_code=2), "ei": 7},
        {**make_run("i-ei", "TDS00I"), "ei": 3},
        make_run("i-uid", "TDS00I", uid="00000000-0000-4000-8000-00000000000a"),
        make_run("i-uid", "TDS00W", exit_code=3, uid="00000000-0000-4000-8000-00000000000b"),
    ])
    assert latest(store, "instance_key", "exit_code") == [("i-ei", 2), ("i-uid", 3)]


def test_every_column_comes_from_the_newest_event_nulls_included(store, tmp_path):
    build(store, tmp_path, [make_run("i-1", at=T0 - H, stdout="old", teleport_version="18.0.0"),
                            make_run("i-1", at=T0)])  # the newest has no unknown field
    assert latest(store, "stdout", "extra") == [("", None)]


DAY = T0.replace(hour=0)
US = timedelta(microseconds=1)


@pytest.mark.parametrize("frm,to,read,expected", [
    (DAY, DAY + 24 * H, DAY, ["i-last", "i-first"]),  # newest first
    (DAY - US, DAY, DAY - US, ["i-before"]),
], ids=["a-whole-utc-day", "ending-at-midnight"])
def test_a_window_reads_only_the_files_of_its_days(store, tmp_path, frm, to, read, expected):
    build(store, tmp_path, [
        make_run("i-before", at=DAY - US), make_run("i-first", at=DAY),
        make_run("i-last", at=DAY + 24 * H - US), make_run("i-after", at=DAY + 24 * H),
    ], at=DAY + 48 * H)
    with connect(store) as con:  # then the other days' files are broken: never opened
        for f in store.files("runs")[1:]:
            if f"event_date={read:%Y-%m-%d}" not in f:
                Path(f).write_bytes(b"not parquet")
        assert keys(nodes_report(con, frm, to)) == expected


def test_rows_are_ordinary_frozen_noderows(store, tmp_path):
    import dataclasses

    from pipeline.report.rows import NodeRow, RunResult

    build(store, tmp_path, [make_run("i-1", "TDS00W", exit_code=1, stderr="boom")],
          nodes=[make_aws_node("i-2")])
    rows = {r.key: r for r in report(store)}
    assert [type(r) for r in rows.values()] == [NodeRow, NodeRow]
    assert isinstance(rows["i-1"].run, RunResult) and rows["i-2"].run is None
    assert rows["i-1"] == NodeRow(**{f.name: getattr(rows["i-1"], f.name)
                                     for f in dataclasses.fields(NodeRow)})
    assert len({*rows.values()}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows["i-1"].region = "x"


@pytest.mark.parametrize("path", sql_files(), ids=lambda p: p.name)
def test_each_sql_file_defines_the_one_relation_it_is_named_for(path: Path):
    """House style: one view, macro or table per file, the file named for it, with a header
    comment stating its grain and inputs."""
    text = path.read_text()
    defined = re.findall(r"CREATE OR REPLACE (?:TEMP )?(?:MACRO|VIEW|TABLE) (\w+)", text)
    assert defined == [path.stem.split("_", 1)[1]]
    assert "-- grain:" in text and "inputs:" in text
