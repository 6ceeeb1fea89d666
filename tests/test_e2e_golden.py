"""End to end through the real console script: files → ingest → store → `nodes` output,
compared byte for byte with reviewed golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

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

GOLDEN = Path(__file__).parent / "golden"
CLI = [str(Path(sys.executable).with_name("discovery-history"))]
M = timedelta(minutes=1)
VM1 = "0f8e9d7c-1111-2222-3333-444455556666"
VM2 = "7a6b5c4d-aaaa-bbbb-cccc-ddddeeeeffff"
SUB = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"


def fixture_events() -> list:
    long_out = "Installing teleport 17.4.2\n" + "downloading... " * 12
    ev_ns = make_run("i-0c0ffee000000000a", at=T0 - 5 * M)
    ev_ns["time"] = "2026-05-04T09:55:00.123456789Z"
    return [
        ev_ns,
        make_run("i-0a1b2c3d4e5f60718", "TDS00W", T0 - 50 * M, exit_code=150,
                 stdout=long_out, stderr="ERROR: node did not become ready (join cluster) within 5m0s\n"
                 "join failure: token is expired or not found"),
        make_run("i-0a1b2c3d4e5f60718", "TDS00W", T0 - 40 * M, exit_code=150, stdout=long_out,
                 stderr="ERROR: node did not become ready (join cluster) within 5m0s"),
        make_run("i-0ddba11000000000b", "TDS00W", T0 - 30 * M, exit_code=-1, status="TimedOut"),
        make_run("i-0bad0000000000001", "TDS00W", T0 - 20 * M, exit_code=0, account="210987654321",
                 region="eu-west-1", status="Failed"),  # old style: exit 0, failure by code
        make_run("", "TDS00W", T0, exit_code=1),  # empty key: dropped
        make_azure_run(VM1, "TAZ00W", T0 - 10 * M, exit_code=1, subscription=SUB,
                       stderr="curl: (6) Could not resolve host: teleport.example.com"),
        make_azure_run(VM2, "TAZ00W", T0 - 15 * M, subscription=SUB, resource_group="",
                       api_error='AuthorizationFailed: client "<svc>" lacks Microsoft.Compute/'
                       "virtualMachines/runCommand/action"),
        "this line is not JSON",
        {"event": "user.login", "time": "2026-05-04T09:00:00Z", "user": "alice"},
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    root = tmp / "lake"
    env = {**os.environ, "DISCOVERY_HISTORY_STORE": str(root)}
    log = write_lines(tmp / "auth" / "a1" / "2026-05-04.00:00:00.log", fixture_events())
    nodes = write_json(tmp / "nodes.json", [
        make_aws_node("i-0c0ffee000000000a", expires=T0 + 10 * M),
        make_aws_node("i-0e1ec7ed00000000c", expires=T0 + 9 * M),  # no event: time = expiry
        make_azure_node(VM1, subscription=SUB, expires=T0 + 8 * M),
    ])
    tasks = write_json(tmp / "tasks.json", [
        make_task("8c1f0d52-task-ec2", "ec2-ssm-agent-connection-lost", ["i-0ddba11000000000b"]),
        make_task("b7e2a9c4-task-azure", "azure-vm-enrollment-error", [VM1.upper()], cloud="azure"),
    ])
    at = "2026-05-04T10:00:00Z"
    for args in (["ingest", "events", str(log.parent.parent)], ["ingest", "nodes", str(nodes), "--at", at],
                 ["ingest", "user-tasks", str(tasks), "--at", at]):
        subprocess.run(CLI + args, env=env, check=True, capture_output=True)
    return root


CASES = {
    "nodes-w80.txt": ["--width", "80"],
    "nodes-w200.txt": ["--width", "200"],
    "nodes.json": ["--format", "json"],
    "nodes.yaml": ["--format", "yaml"],
    "nodes.csv": ["--format", "csv"],
    "nodes.md": ["--format", "markdown"],
    "failures-aws-w120.txt": ["--failures-only", "--cloud", "AWS", "--width", "120"],
    "empty.txt": ["--cloud", "azure", "--from", "2026-05-01", "--to", "2026-05-02"],
    "empty.json": ["--format", "json", "--from", "2026-05-01", "--to", "2026-05-02"],
    "empty.yaml": ["--format", "yaml", "--from", "2026-05-01", "--to", "2026-05-02"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nodes_output_matches_golden(store, name):
    args = CASES[name]
    if "--from" not in args:
        args = [*args, "--from", "2026-05-04T08:00:00Z", "--to", "2026-05-04T10:00:00Z"]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(CLI + ["--store", str(store), "nodes", *args], env=env, check=True,
                         capture_output=True).stdout
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(out)
    assert out == path.read_bytes()
