"""Shared builders: events as Teleport writes them, written to real files, ingested for real."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.store import Store

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
_uids = itertools.count(1)


def ts(t: datetime, nanos: int = 0) -> str:
    """RFC 3339 with nanoseconds and Z, as Teleport writes event times."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond * 1000 + nanos:09d}Z"


def make_run(
    instance: str,
    code: str = "TDS00I",
    at: datetime = T0,
    *,
    exit_code: int = 0,
    account: str = "123456789012",
    region: str = "us-east-1",
    stdout: str = "",
    stderr: str = "",
    uid: str | None = None,
    **extra,
) -> dict:
    """An ssm.run event (all fields present, as Teleport emits them)."""
    return {
        "ei": 0,
        "event": "ssm.run",
        "uid": uid or f"00000000-0000-4000-8000-{next(_uids):012d}",
        "code": code,
        "time": ts(at),
        "cluster_name": "test.example.com",
        "command_id": "cmd-1",
        "instance_id": instance,
        "exit_code": exit_code,
        "status": "Success" if code.endswith("I") else "Failed",
        "account_id": account,
        "region": region,
        "stdout": stdout,
        "stderr": stderr,
        "invocation_url": "",
        "platform_name": "Ubuntu",
        "platform_type": "Linux",
        "platform_version": "24.04",
        **extra,
    }


def make_azure_run(
    vm_id: str,
    code: str = "TAZ00I",
    at: datetime = T0,
    *,
    exit_code: int = 0,
    subscription: str = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b",
    resource_group: str = "rg-web",
    region: str = "westeurope",
    vm_name: str = "web-1",
    stdout: str = "",
    stderr: str = "",
    api_error: str | None = None,
    uid: str | None = None,
) -> dict:
    """An azure.run event; `api_error` and `status` only when set, as Teleport emits them."""
    ev = {
        "ei": 0,
        "event": "azure.run",
        "uid": uid or f"00000000-0000-4000-9000-{next(_uids):012d}",
        "code": code,
        "time": ts(at),
        "cluster_name": "test.example.com",
        "subscription_id": subscription,
        "resource_group": resource_group,
        "resource_id": f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{vm_name}",
        "region": region,
        "vm_id": vm_id,
        "vm_name": vm_name,
        "exit_code": exit_code,
        "execution_state": "Succeeded" if code.endswith("I") else "Failed",
        "stdout": stdout,
        "stderr": stderr,
    }
    if api_error is not None:
        ev["api_error"] = api_error
        ev["status"] = "API call failed"
    return ev


def make_join(host_id: str, at: datetime = T0, *, method: str = "ec2", ok: bool = True,
              node_name: str = "", attributes: dict | None = None, uid: str | None = None,
              nanos: int = 0) -> dict:
    """An instance.join event (TJ002I, or TJ002E when not `ok`) as Teleport emits it."""
    ev = {
        "ei": 0,
        "event": "instance.join",
        "uid": uid or f"00000000-0000-4000-a000-{next(_uids):012d}",
        "code": "TJ002I" if ok else "TJ002E",
        "time": ts(at, nanos),
        "cluster_name": "test.example.com",
        "node_name": node_name or host_id,
        "host_id": host_id,
        "role": "Node",
        "method": method,
        "token_name": "aws-discovery-iam-token",
        "success": ok,
        "addr.remote": "203.0.113.7:40412",
    }
    if attributes is not None:
        ev["attributes"] = attributes
    if not ok:
        ev["error"] = "token is expired or not found"
    return ev


def make_aws_node(instance: str, *, account="123456789012", region="us-east-1", expires=None,
                  name=None, labels_only=False) -> dict:
    """A `node` resource as `tctl get nodes --format=json` prints it."""
    node = {
        "kind": "node",
        "version": "v2",
        "metadata": {
            "name": name or f"host-{instance}",
            "labels": {"teleport.dev/instance-id": instance, "teleport.dev/account-id": account},
            "expires": ts(expires or T0 + timedelta(minutes=10)),
        },
        "spec": {"hostname": f"ip-{instance}", "addr": ""},
    }
    if not labels_only:
        node["spec"]["cloud_metadata"] = {
            "aws": {"account_id": account, "instance_id": instance, "region": region}
        }
    return node


def make_azure_node(vm_id: str, *, subscription="6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b",
                    resource_group="rg-web", region="westeurope", expires=None) -> dict:
    """An Azure-joined node: the installer's teleport.internal/* labels, VM id upper-cased."""
    return {
        "kind": "node",
        "version": "v2",
        "metadata": {
            "name": f"host-{vm_id}",
            "labels": {
                "teleport.internal/vm-id": vm_id.upper(),
                "teleport.internal/subscription-id": subscription,
                "teleport.internal/resource-group": resource_group,
                "teleport.internal/region": region,
            },
            "expires": ts(expires or T0 + timedelta(minutes=10)),
        },
        "spec": {"hostname": f"vm-{vm_id[:8]}"},
    }


def make_task(name: str, issue: str, instances: list[str], *, cloud: str = "aws") -> dict:
    """A `user_task` resource listing affected instances."""
    if cloud == "aws":
        spec = {"task_type": "discover-ec2", "discover_ec2": {"instances": {i: {"instance_id": i} for i in instances}}}
    else:
        spec = {"task_type": "discover-azure-vm",
                "discover_azure_vm": {"instances": {i: {"vm_id": i} for i in instances}}}
    return {"kind": "user_task", "version": "v1", "metadata": {"name": name},
            "spec": {"integration": "my-integration", "issue_type": issue, "state": "OPEN", **spec}}


def write_lines(path: Path, events: list[dict | str]) -> Path:
    """Write events (dicts as JSON, strings verbatim) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for e in events:
            f.write((e if isinstance(e, str) else json.dumps(e)) + "\n")
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def query(store: Store, dataset: str, sql: str, params: list | None = None) -> list[tuple]:
    """Run `sql` over the committed files of `dataset` (read directly, no views), as `t`; a
    relation that is no dataset (`node_snapshots`, rebuilt from the history) through the views."""
    import duckdb

    from pipeline.store.layout import DATASETS

    if dataset not in DATASETS:
        from pipeline.query.views import connect

        with connect(store) as con:
            con.execute(f"CREATE TEMP VIEW t AS SELECT * FROM {dataset}")
            return con.execute(sql, params or []).fetchall()
    ds = DATASETS[dataset]
    hive = ", ".join(f"'{c}': '{t}'" for c, t in ds.partition)
    opts = f", hive_partitioning = true, hive_types = {{{hive}}}" if ds.partition else ""
    con = duckdb.connect()
    try:
        con.execute("SET VARIABLE files = $1", [store.files(dataset)])
        con.execute(
            "CREATE VIEW t AS SELECT * FROM read_parquet("
            f"getvariable('files'), union_by_name = true{opts})"
        )
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "lake")
