"""tctl listings as people save them (tests/fixtures/teleport/tctl/): older tctl's protobuf Go
JSON timestamps, YAML from `tctl get` without --format, a UTF-8 byte-order mark; and the report
made from them, through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.ingest.snapshots import Node, SnapshotError, ingest_snapshot, node_row
from pipeline.sources.tctl import load_listing, parse_listing
from pipeline.store import Store
from tests.conftest import T0, query

TELEPORT = Path(__file__).resolve().parents[1] / "fixtures" / "teleport"
TCTL = TELEPORT / "tctl"
CLI = [str(Path(sys.executable).with_name("discovery-history"))]
AT = "2026-05-04T10:25:00Z"
WINDOW = ["--from", "2026-05-04T09:25:00Z", "--to", AT]


def test_older_tctl_user_tasks_read_as_current_tctl_prints_them() -> None:
    old = load_listing(str(TCTL / "user_tasks.go-json.json"), "user_tasks")
    assert old == json.loads((TCTL / "user_tasks.json").read_text())
    azure = old[2]["spec"]["discover_azure_vm"]["instances"]["0f8e9d7c-1111-2222-3333-444455556666"]
    assert (azure["sync_time"], azure["last_attempt_time"], azure["retry_after_time"]) == (
        "2026-05-04T10:10:05.000007Z", "2026-05-04T10:10:00.000001Z", "2026-05-04T10:40:00Z")
    assert old[1]["metadata"]["expires"] == "2026-05-11T10:00:00.000000005Z"


@pytest.mark.parametrize("name", ["user_tasks.go-json.json", "user_tasks.json"])
def test_user_tasks_in_either_encoding_are_stored_whole(store: Store, name: str) -> None:
    s = ingest_snapshot(store, "user_tasks", str(TCTL / name), T0)
    assert (s.read, s.stored, s.quarantined) == (3, 3, 0)
    assert query(store, "user_task_snapshots", "SELECT name, issue_type, instance_key FROM t "
                 "ORDER BY 3") == [
        ("2d3e4f5a-6b7c-5d8e-9f0a-1b2c3d4e5f6a", "azure-vm-enrollment-error",
         "0f8e9d7c-1111-2222-3333-444455556666"),
        ("4c1f6a2e-7b3d-5e8f-9a0b-1c2d3e4f5a6b", "ec2-ssm-script-failure", "i-0123456789abcdef0"),
        ("4c1f6a2e-7b3d-5e8f-9a0b-1c2d3e4f5a6b", "ec2-ssm-script-failure", "i-0bbbbccccddddeeee"),
        ("9e8d7c6b-5a4f-5e3d-8c2b-1a0f9e8d7c6b", "ec2-ssm-agent-connection-lost",
         "i-0fedcba9876543210"),
    ]


def test_every_node_timestamp_reads_both_encodings() -> None:
    """metadata.expires and the rotation times of a node, in plain Go JSON, read as RFC 3339."""
    [node] = [n for n in load_listing(str(TCTL / "nodes.bom.json")) if "cloud_metadata" in n["spec"]]
    go = json.loads(json.dumps(node))
    go["metadata"]["expires"] = {"seconds": 1777890491, "nanos": 512345678}
    rot = go["spec"]["rotation"]
    rot["started"] = rot["last_rotated"] = {"seconds": -62135596800}
    rot["schedule"] = {k: {"seconds": -62135596800} for k in rot["schedule"]}
    [back] = parse_listing(json.dumps([go]))
    assert back == node
    assert node_row(Node.model_validate(back))["expires"] == 1777890491512345678


@pytest.mark.parametrize("name", ["nodes.yaml", "nodes.bom.json"])
def test_nodes_as_saved_are_read(store: Store, name: str) -> None:
    s = ingest_snapshot(store, "nodes", str(TCTL / name), T0)
    assert (s.read, s.stored, s.quarantined) == (2, 2, 0)
    assert query(store, "node_snapshots", "SELECT cloud, instance_key, vm_id, epoch_ns(expires) "
                 "FROM t ORDER BY 1") == [
        ("aws", "i-0fedcba9876543210", "", 1777890491512345678),
        ("azure", "0f8e9d7c-1111-2222-3333-444455556666", "0F8E9D7C-1111-2222-3333-444455556666",
         1777890460250000000),
    ]


def test_yaml_user_tasks_are_read(store: Store, tmp_path: Path) -> None:
    tasks = json.loads((TCTL / "user_tasks.json").read_text())
    f = tmp_path / "user_tasks.yaml"
    f.write_text(yaml.safe_dump_all(tasks, sort_keys=True))
    s = ingest_snapshot(store, "user_tasks", str(f), T0)
    assert (s.stored, s.quarantined) == (3, 0)


@pytest.mark.parametrize("content", [
    b"Host        Address   Labels\n----------- --------- ------\nip-10-0-1-17 ...\n",  # --format=text
    b"kind: node\n---\n- just a list\n",
    b"\xef\xbb\xbf<html>502 Bad Gateway</html>",
])
def test_a_file_that_is_no_listing_is_one_line_naming_the_accepted_formats(
        tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "nodes.json"
    f.write_bytes(content)
    out = subprocess.run(CLI + ["--store", str(tmp_path / "lake"), "ingest", "nodes", str(f)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    for fragment in (str(f), "not a tctl listing", "tctl get nodes --format=json", "JSON lines",
                     "YAML documents from `tctl get nodes`"):
        assert fragment in out.stderr
    with pytest.raises(SnapshotError):
        ingest_snapshot(Store(tmp_path / "lake"), "nodes", str(f), T0)


def run(*args: str) -> str:
    out = subprocess.run(CLI + list(args), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """The file log, the YAML nodes and the older tctl's user tasks, as a user ingests them."""
    lake = tmp_path_factory.mktemp("real") / "lake"
    run("--store", str(lake), "ingest", "events", str(TELEPORT / "filelog"))
    run("--store", str(lake), "ingest", "nodes", str(TCTL / "nodes.yaml"), "--at", AT)
    run("--store", str(lake), "ingest", "user-tasks", str(TCTL / "user_tasks.go-json.json"),
        "--at", AT)
    return lake


def test_failures_only_keeps_task_titles_and_task_only_rows(lake: Path) -> None:
    """Older tctl's tasks decorate rows: the title in Details, and an instance whose only trouble
    is its task (a successful run, online) stays under --failures-only. Tasks never create rows
    (i-0bbbbccccddddeeee has neither events nor a node), as in tctl."""
    out = run("--store", str(lake), "nodes", *WINDOW, "--failures-only", "--width", "250")
    lines = out.splitlines()
    assert lines[0].split() == ["Cloud", "Account", "Region", "Instance", "Time", "Status",
                                "Details"]
    aws = {ln.split()[3]: ln for ln in lines if ln.startswith("AWS")}
    assert sorted(aws) == ["i-0123456789abcdef0", "i-0fedcba9876543210"]
    assert "SSM Script failure. Script output: " in aws["i-0123456789abcdef0"]
    assert " Online " in aws["i-0fedcba9876543210"]
    assert "SSM Agent lost connection. Script output: " in aws["i-0fedcba9876543210"]


def test_azure_vm_ids_are_matched_exactly_as_tctl(lake: Path) -> None:
    """The event's lower-case VM id and the installer's upper-case label are two rows; the task,
    listing the lower-case id, decorates the event's row only."""
    rows = json.loads(run("--store", str(lake), "nodes", *WINDOW, "--format", "json",
                          "--cloud", "azure"))
    got = [(r["azure"]["vm_id"], r["is_online"], "run_result" in r, r.get("user_task_issue", ""))
           for r in rows]
    assert got == [
        ("0F8E9D7C-1111-2222-3333-444455556666", True, False, ""),
        ("0f8e9d7c-1111-2222-3333-444455556666", False, True, "azure-vm-enrollment-error"),
    ]


def test_history_folds_the_case_of_azure_vm_ids(lake: Path) -> None:
    """history (and the analytics) treat ids differing only in case as one VM: the upper-case
    label finds the lower-case events, and the VM counts as online."""
    out = run("--store", str(lake), "history", "0F8E9D7C-1111-2222-3333-444455556666", *WINDOW,
              "--format", "json")
    vm = json.loads(out)["instance"]
    assert (vm["vm_id"], vm["attempts"], vm["is_online"]) == (
        "0f8e9d7c-1111-2222-3333-444455556666", 1, True)
