"""Event shapes as Teleport releases write them (events.proto: omitempty envelope fields, older
ssm.run without output fields, unresolved Azure VMs, instance.join's status and connection
fields), and JSON null in text fields, in every source."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline import models
from pipeline.ingest.events import ingest_events
from pipeline.query.views import connect
from pipeline.report.nodes import nodes_report
from pipeline.sources.base import lines_batch
from pipeline.sources.dynamo import item_event
from pipeline.store import Store
from tests.conftest import T0, query
from tests.ingest.test_events import write_athena

CLUSTER = "teleport.example.com"
NEW_SSM = {  # Teleport 17: every SSMRun field written (events.proto: no omitempty on them)
    "ei": 0, "event": "ssm.run", "uid": "5e2b0c4e-0000-4000-8000-000000000001", "code": "TDS00W",
    "time": "2026-05-04T10:00:00.123456789Z", "cluster_name": CLUSTER, "command_id": "c-1",
    "instance_id": "i-0000000000000001", "exit_code": 1, "status": "Failed",
    "account_id": "123456789012", "region": "us-east-1", "stdout": "", "stderr": "boom",
    "invocation_url": "https://example/inv", "platform_name": "Ubuntu", "platform_type": "Linux",
    "platform_version": "24.04"}


def drop(ev: dict, *keys: str, **changes) -> dict:
    return {**{k: v for k, v in ev.items() if k not in keys}, **changes}


SHAPES = {
    "ssm.run of an older release (no stdout, stderr, invocation_url, platform_*)": drop(
        NEW_SSM, "stdout", "stderr", "invocation_url", "platform_name", "platform_type",
        "platform_version", uid="5e2b0c4e-0000-4000-8000-000000000002",
        instance_id="i-0000000000000002"),
    "ssm.run without platform_*": drop(
        NEW_SSM, "platform_name", "platform_type", "platform_version",
        uid="5e2b0c4e-0000-4000-8000-000000000003", instance_id="i-0000000000000003"),
    "ssm.run without uid, code, cluster_name; whole-second time": drop(
        NEW_SSM, "uid", "code", "cluster_name", time="2026-05-04T10:00:00Z",
        instance_id="i-0000000000000004"),
    "time with 1 fraction digit": {**NEW_SSM, "uid": "u-f1", "time": "2026-05-04T10:00:00.5Z"},
    "time with 3 fraction digits": {**NEW_SSM, "uid": "u-f3", "time": "2026-05-04T10:00:00.123Z"},
    "time with 6 fraction digits": {**NEW_SSM, "uid": "u-f6", "time": "2026-05-04T10:00:00.000001Z"},
    "azure.run of an unresolved VM (empty vm_id, vm_name, resource_id)": {
        "ei": 0, "event": "azure.run", "uid": "5e2b0c4e-0000-4000-8000-000000000005",
        "code": "TDA00W", "time": "2026-05-04T10:01:00.5Z", "cluster_name": CLUSTER,
        "subscription_id": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "resource_group": "rg-web",
        "resource_id": "", "region": "westeurope", "vm_id": "", "vm_name": "", "exit_code": 0,
        "execution_state": "", "stdout": "", "stderr": "",
        "api_error": "AuthorizationFailed", "status": "API call failed"},
    "instance.join with status and connection fields": {
        "ei": 0, "event": "instance.join", "uid": "5e2b0c4e-0000-4000-8000-000000000006",
        "code": "TJ002I", "time": "2026-05-04T10:02:00.25Z", "cluster_name": CLUSTER,
        "success": True, "host_id": "h-1", "node_name": "ip-10-0-0-1", "role": "Node",
        "method": "iam", "token_name": "aws-discovery",
        "attributes": {"Arn": "arn:aws:sts::123456789012:assumed-role/r/i-0000000000000001"},
        "token_expires": "0001-01-01T00:00:00Z", "addr.remote": "10.0.0.1:40562",
        "scope": "/staging", "roles": ["Node"]},
    "instance.join that failed": {
        "ei": 0, "event": "instance.join", "uid": "5e2b0c4e-0000-4000-8000-000000000007",
        "code": "TJ002E", "time": "2026-05-04T10:03:00Z", "cluster_name": CLUSTER,
        "success": False, "error": "token expired", "message": "join failed",
        "node_name": "ip-10-0-0-2", "role": "Node", "method": "token",
        "token_expires": "2026-05-04T09:00:00Z", "addr.remote": "10.0.0.2:40000"},
}


def write(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_every_shape_is_stored_with_every_field(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "2026-05-04.00:00:00.log", list(SHAPES.values()))
    s = ingest_events(store, [str(f)])
    assert (s.read, s.stored, s.quarantined, s.skipped) == (9, 9, 0, 0), s
    runs = {r[0]: r[1:] for r in query(
        store, "runs", "SELECT instance_id || vm_id || uid, code, is_failure, stdout, "
        "invocation_url, platform_name, cluster_name, time_text, epoch_ns(time) FROM t")}
    old = runs["i-0000000000000002" + "5e2b0c4e-0000-4000-8000-000000000002"]
    assert old[:6] == ("TDS00W", True, "", "", "", CLUSTER)
    [bare] = [v for k, v in runs.items() if k.startswith("i-0000000000000004")]
    assert bare[:2] == ("", False) and bare[5] == ""  # no code: not a failure
    for uid, text in (("u-f1", "2026-05-04T10:00:00.5Z"), ("u-f3", "2026-05-04T10:00:00.123Z"),
                      ("u-f6", "2026-05-04T10:00:00.000001Z")):
        [row] = [v for k, v in runs.items() if k.endswith(uid)]
        assert (row[6], row[7]) == (text, models.parse_time_ns(text))
    joins = {r[0]: (r[1], json.loads(r[2])) for r in query(
        store, "joins", "SELECT uid, code, extra FROM t")}
    ok = joins["5e2b0c4e-0000-4000-8000-000000000006"]
    assert ok == ("TJ002I", {"success": True, "token_expires": "0001-01-01T00:00:00Z",
                             "addr.remote": "10.0.0.1:40562", "scope": "/staging",
                             "roles": ["Node"]})
    failed = joins["5e2b0c4e-0000-4000-8000-000000000007"][1]
    assert failed == {"success": False, "error": "token expired", "message": "join failed",
                      "token_expires": "2026-05-04T09:00:00Z", "addr.remote": "10.0.0.2:40000"}
    # the unresolved Azure VM is stored, and (no key) makes no report row, as in tctl
    with connect(store) as con:
        rows = nodes_report(con, T0, T0.replace(hour=11))
    assert sorted(r.key for r in rows) == [
        "i-0000000000000001", "i-0000000000000002", "i-0000000000000003", "i-0000000000000004"]


def test_models_type_the_join_fields() -> None:
    ev = models.parse_event(json.dumps(SHAPES["instance.join with status and connection fields"]))
    assert isinstance(ev, models.InstanceJoin)
    assert (ev.success, ev.addr_remote, ev.scope, ev.roles, ev.token_expires) == (
        True, "10.0.0.1:40562", "/staging", ["Node"], "0001-01-01T00:00:00Z")
    failed = models.parse_event(json.dumps(SHAPES["instance.join that failed"]))
    assert (failed.success, failed.error, failed.message, failed.is_failure) == (
        False, "token expired", "join failed", True)
    assert models.parse_event(json.dumps(drop(NEW_SSM, "code"))).is_failure is False


# ---- JSON null in text fields: empty, in every source --------------------------------------

NULLS = [  # older DynamoDB items store empty strings as NULL; any exporter may pass that on
    {**SHAPES["azure.run of an unresolved VM (empty vm_id, vm_name, resource_id)"],
     "uid": "n-1", "vm_id": None, "vm_name": None, "resource_id": None, "execution_state": None},
    {**NEW_SSM, "uid": "n-2", "stdout": None, "stderr": None, "invocation_url": None,
     "platform_name": None, "cluster_name": None, "code": None},
    {**SHAPES["instance.join that failed"], "uid": "n-3", "error": None, "message": None,
     "node_name": None, "addr.remote": None},
]


class Items:
    """DynamoDB items through the source's own item reader (`sources.dynamo.item_event`)."""

    name = "dynamodb:audit/2026-05-04"

    def __init__(self, events: list[dict]):
        self.items = [{"FieldsMap": {"M": {k: _av(v) for k, v in e.items()}}} for e in events]

    def batches(self):
        rows = [item_event(i) for i in self.items]
        yield lines_batch(self.name, [r[0] for r in rows], 1, [r[1] for r in rows])


def _av(v):
    if v is None:
        return {"NULL": True}
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, int):
        return {"N": str(v)}
    if isinstance(v, dict):
        return {"M": {k: _av(x) for k, x in v.items()}}
    if isinstance(v, list):
        return {"L": [_av(x) for x in v]}
    return {"S": v}


def _fluentd(events: list[dict]) -> str:
    return "".join("2026-05-04T12:00:00+02:00\ttest.log\t" + json.dumps(
        {k: e[k] for k in sorted(e) if k != "time"}) + "\n" for e in events)


SOURCES = {
    "file log": lambda d: str(write(d / "a.log", NULLS)),
    "gzip export": lambda d: _gz(d / "a.log.gz", "".join(json.dumps(e) + "\n" for e in NULLS)),
    "athena parquet": lambda d: str(write_athena(d / "2026-05-04" / "a.parquet", NULLS)),
    "fluentd out_file": lambda d: str(_text(d / "fluentd.log", _fluentd(NULLS))),
    "dynamodb": lambda d: Items(NULLS),
}


def _gz(path: Path, text: str) -> str:
    path.write_bytes(gzip.compress(text.encode()))
    return str(path)


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_json_null_in_a_text_field_reads_as_empty(store: Store, tmp_path: Path, source) -> None:
    s = ingest_events(store, [SOURCES[source](tmp_path)])
    assert (s.read, s.stored, s.quarantined) == (3, 3, 0), s
    runs = dict((r[0], r[1:]) for r in query(
        store, "runs", "SELECT uid, vm_id, vm_name, resource_id, execution_state, stdout, "
        "stderr, invocation_url, platform_name, cluster_name, code, is_failure FROM t"))
    assert runs["n-1"] == ("", "", "", "", "", "", "", "", CLUSTER, "TDA00W", True)
    assert runs["n-2"] == ("", "", "", "", "", "", "", "", "", "", False)
    [(node, extra)] = query(store, "joins", "SELECT node_name, extra FROM t")
    assert node == "" and json.loads(extra)["error"] is None  # kept as written, in extra
