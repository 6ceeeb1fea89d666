"""Ingest snapshots of nodes (`tctl get nodes`) and user tasks (`tctl get user_tasks`), JSON or
YAML as `sources.tctl` reads them, each row stamped with its capture time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.ingest import snapshot_store
from pipeline.ingest.errors import SnapshotError
from pipeline.ingest.events import IngestSummary, log_ingest
from pipeline.models import parse_time_ns
from pipeline.store import Store
from pipeline.store.history import KINDS
from pipeline.store.layout import QUARANTINE, SNAPSHOT_LOG
from pipeline.store.write import write_table

AWS_INSTANCE_LABEL = "teleport.dev/instance-id"
AWS_ACCOUNT_LABEL = "teleport.dev/account-id"
# The Azure installer joins with teleport.internal/*; the public teleport.dev/* forms win.
AZURE_LABELS = {
    "vm_id": ("teleport.dev/vm-id", "teleport.internal/vm-id"),
    "subscription_id": ("teleport.dev/subscription-id", "teleport.internal/subscription-id"),
    "resource_group": ("teleport.dev/resource-group", "teleport.internal/resource-group"),
    "region": ("teleport.dev/region", "teleport.internal/region"),
}
TASK_CLOUD = {"discover-ec2": "aws", "discover-azure-vm": "azure"}


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    expires: str | None = None


class Node(BaseModel):
    """A `node` resource as `tctl get nodes --format=json` prints it (fields used here)."""

    model_config = ConfigDict(extra="allow")
    kind: str = "node"
    metadata: Metadata
    spec: dict[str, Any] = Field(default_factory=dict)


class UserTask(BaseModel):
    """A `user_task` resource (fields used here)."""

    model_config = ConfigDict(extra="allow")
    kind: str = "user_task"
    metadata: Metadata
    spec: dict[str, Any] = Field(default_factory=dict)


def node_row(node: Node) -> dict[str, Any]:
    """Cloud identity of a node as tctl reads it (spec §2); cloud is None for other nodes."""
    labels = node.metadata.labels
    aws = ((node.spec.get("cloud_metadata") or {}).get("aws")) or {}
    row: dict[str, Any] = {"name": node.metadata.name, "hostname": node.spec.get("hostname", "")}
    instance_id = aws.get("instance_id") or labels.get(AWS_INSTANCE_LABEL, "")
    azure = {k: next((labels[x] for x in keys if labels.get(x)), "") for k, keys in AZURE_LABELS.items()}
    if instance_id:
        row.update(
            cloud="aws", instance_key=instance_id, instance_id=instance_id,
            account_id=aws.get("account_id") or labels.get(AWS_ACCOUNT_LABEL, ""),
            region=aws.get("region", ""), vm_id="", resource_group="",
        )
    elif azure["vm_id"]:
        row.update(
            cloud="azure", instance_key=azure["vm_id"].lower(), instance_id="",
            vm_id=azure["vm_id"], account_id=azure["subscription_id"],
            region=azure["region"], resource_group=azure["resource_group"],
        )
    else:
        row.update(cloud=None, instance_key=None, instance_id="", vm_id="", account_id="",
                   region="", resource_group="")
    exp = node.metadata.expires
    row["expires"] = parse_time_ns(exp) if exp else None
    return row


def task_rows(task: UserTask) -> list[dict[str, Any]]:
    """One row per instance a user task lists (one row with no instance if it lists none), keyed
    by the id exactly as the task lists it: tctl matches tasks to instances as Go map keys."""
    spec = task.spec
    task_type = spec.get("task_type", "")
    cloud = TASK_CLOUD.get(task_type)
    group = spec.get("discover_ec2") or spec.get("discover_azure_vm") or {}
    keys = sorted((group.get("instances") or {}).keys())
    base = {
        "name": task.metadata.name, "task_type": task_type,
        "issue_type": spec.get("issue_type", ""), "state": spec.get("state", ""), "cloud": cloud,
    }
    return [{**base, "instance_key": k} for k in keys] or [{**base, "instance_key": None}]


def _load(path: str, kind: str) -> list[Any]:
    """The resources of a snapshot file (`sources.tctl`: JSON or YAML, either timestamp encoding)."""
    from pipeline.sources.tctl import ListingError, load_listing

    try:
        return load_listing(path, kind)
    except ListingError as e:
        raise SnapshotError(str(e)) from e


def ingest_snapshot(
    store: Store, kind: str, path: str, at: datetime, lock_timeout: float = 60.0
) -> IngestSummary:
    """Store the resources in `path` as the `kind` ("nodes" | "user_tasks") snapshot taken at
    `at`. A snapshot already stored for the same kind and instant is a duplicate; one older than
    the newest stored is refused (StoreError: the history is kept as changes, in time order)."""
    import duckdb

    items = _load(path, kind)
    at_ns = _to_naive(at)
    ds = KINDS[kind].legacy  # the columns of one capture (stored as changes)
    model, want = (Node, "node") if kind == "nodes" else (UserTask, "user_task")
    with store.writer(timeout=lock_timeout) as w:
        s = IngestSummary(ingest_id=w.ingest_id, sources=[path], read=len(items))
        con = duckdb.connect()
        store.register(con)
        con.execute("SET VARIABLE log_files = $1", [store.files(SNAPSHOT_LOG.name, w.base)])
        taken = con.execute(
            "SELECT count(*) FROM read_parquet(getvariable('log_files')) WHERE kind = $1 "
            "AND captured_at = $2", [kind, at_ns]).fetchall()[0][0]
        if taken:
            s.duplicates = len(items)
            return s
        previous = snapshot_store.previous_capture(con, w, kind, _ns(at_ns))
        rows: list[dict[str, Any]] = []
        rejected: list[tuple[int, str, Any]] = []
        for i, item in enumerate(items, start=1):
            if not isinstance(item, dict) or item.get("kind", want) != want:
                s.skipped += 1
                continue
            try:
                res = model.model_validate(item)
                made = [node_row(res)] if kind == "nodes" else task_rows(res)
            except (ValidationError, ValueError) as e:
                rejected.append((i, _one_line(e), item))
                continue
            raw = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
            rows.extend({**r, "raw": raw, "captured_at": at_ns} for r in made)
            s.stored += 1
        s.quarantined = len(rejected)
        kept, added = snapshot_store.write_capture(con, w, kind, _table(ds, rows, at_ns),
                                                   _ns(at_ns), previous)
        s.files_added += added
        if rejected:
            s.files_added += write_table(con, w, QUARANTINE, pa.table({
                "ingest_id": [w.ingest_id] * len(rejected), "source": [path] * len(rejected),
                "line_no": pa.array([r[0] for r in rejected], pa.int64()),
                "reason": [f"{want} #{r[0]}: {r[1]}" for r in rejected],
                "raw": [json.dumps(r[2]).encode() for r in rejected],
                "quarantined_at": pa.array([at_ns] * len(rejected), pa.timestamp("ns")),
                "ingest_date": pa.array([at_ns.date()] * len(rejected), pa.date32())}))
        log = pa.table({"kind": [kind], "captured_at": pa.array([at_ns], pa.timestamp("ns")),
                        "rows": [kept], "source": [path], "ingest_id": [w.ingest_id]})
        s.files_added += write_table(con, w, SNAPSHOT_LOG, log) + 1  # + the ingest log below
        log_ingest(con, w, s, kind)
        w.commit()
        con.close()
    return s


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(e).splitlines()[0]


def _to_naive(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("capture time must be timezone-aware")
    return t.astimezone(UTC).replace(tzinfo=None)


def _ns(t: datetime) -> int:
    """Epoch nanoseconds of a naive UTC datetime."""
    return (t - datetime(1970, 1, 1)) // timedelta(microseconds=1) * 1000


# typed from the layout: a column whose values are all None would otherwise be Parquet type NULL
_ARROW = {"VARCHAR": pa.string(), "TIMESTAMP_NS": pa.int64(), "BIGINT": pa.int64()}


def _table(ds, rows: list[dict[str, Any]], at: datetime) -> pa.Table:
    cols = {c: pa.array([r.get(c) for r in rows], _ARROW[t]) for c, t in ds.columns
            if c != "captured_at"}
    if "expires" in cols:  # integer nanoseconds
        cols["expires"] = cols["expires"].cast(pa.timestamp("ns"))
    cols["captured_at"] = pa.array([at] * len(rows), pa.timestamp("ns"))
    cols["capture_date"] = pa.array([at.date()] * len(rows), pa.date32())
    return pa.table(cols)
