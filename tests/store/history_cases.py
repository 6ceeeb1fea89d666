"""Builders for snapshot-history tests: node and user-task listings as tctl prints them, a whole
history of captures written both ways (the change history by the real ingest; full copies as
the frozen oracle), and the answers compared at an instant."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.publish.history import collect
from pipeline.query import analytics
from pipeline.report.nodes import nodes_report
from pipeline.store import Store
from pipeline.timeutil import to_ns
from tests.conftest import make_aws_node, make_azure_node, make_azure_run, make_run, ts
from tests.store.reference import legacy

AWS = ("i-0a1", "i-0b2", "i-0c3")
VMS = ("0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b", "1e9b2c3d-4e5f-4a61-9b7c-8d9e0f1a2b3c")
STATIC_EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
NS = 10**9


@dataclass(frozen=True)
class NodeSpec:
    """One node of a listing: which machine (0-2 AWS, 3-4 Azure, 5 not a cloud node), which
    registration (another node name), which variant of its other columns, its expiry (None;
    "static": one fixed instant; else nanoseconds after capture + 7 min) and whether the listing
    repeats it."""

    machine: int
    registration: int = 0
    variant: int = 0
    expiry: int | str | None = 0
    twice: bool = False

    @property
    def name(self) -> str:
        return f"node-{self.machine}-{self.registration}"


@dataclass(frozen=True)
class TaskSpec:
    """One user task: its name (t1, t2 discover EC2; t3 Azure VMs; t4 another task type), issue,
    state and the machines it lists (an Azure one upper-cased when `upper`)."""

    name: str
    issue: str = "ec2-ssm-script-failure"
    state: str = "OPEN"
    machines: tuple[int, ...] = ()
    upper: bool = False


@dataclass
class Capture:
    at: datetime
    nodes: list[NodeSpec] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)


def node_doc(spec: NodeSpec, at: datetime) -> dict:
    """The node resource of `spec` in a listing captured at `at`."""
    if spec.expiry is None:
        expires = None
    elif spec.expiry == "static":
        expires = ts(STATIC_EXPIRY, 123456789)
    else:
        expires = ts(at + timedelta(minutes=7), int(spec.expiry))
    if spec.machine < 3:
        doc = make_aws_node(AWS[spec.machine], name=spec.name,
                            region=("us-east-1", "eu-west-1")[spec.variant])
    elif spec.machine < 5:
        vm = VMS[spec.machine - 3]
        doc = make_azure_node(vm.upper() if spec.variant else vm)
        doc["metadata"]["name"] = spec.name
    else:
        doc = {"kind": "node", "version": "v2",
               "metadata": {"name": spec.name, "labels": {"env": "lab"}},
               "spec": {"hostname": f"bastion-{spec.variant}"}}
    if expires is None:
        doc["metadata"].pop("expires", None)
    else:
        doc["metadata"]["expires"] = expires
    return doc


def task_doc(spec: TaskSpec) -> dict:
    if spec.name == "t4":
        return {"kind": "user_task", "version": "v1", "metadata": {"name": "t4"},
                "spec": {"task_type": "discover-eks", "issue_type": "eks-failure",
                         "state": spec.state, "discover_eks": {"clusters": {"c1": {}}}}}
    azure = spec.name == "t3"
    keys = [VMS[m % 2].upper() if spec.upper else VMS[m % 2] for m in spec.machines] if azure \
        else [AWS[m % 3] for m in spec.machines]
    group = "discover_azure_vm" if azure else "discover_ec2"
    return {"kind": "user_task", "version": "v1", "metadata": {"name": spec.name},
            "spec": {"integration": "i", "task_type": "discover-azure-vm" if azure else
                     "discover-ec2", "issue_type": "azure-vm-enrollment-error" if azure else
                     spec.issue, "state": spec.state,
                     group: {"instances": {k: {"id": k} for k in keys}}}}


def listings(c: Capture) -> dict[str, list[dict]]:
    nodes = []
    for spec in c.nodes:
        nodes += [node_doc(spec, c.at)] * (2 if spec.twice else 1)
    return {"nodes": nodes, "user_tasks": [task_doc(t) for t in c.tasks]}


def runs_for(captures: list[Capture]) -> list[dict]:
    """Install runs around the captures: a failure an hour before each, a success just after
    every other one, for a machine chosen by the capture's position."""
    out = [make_run(AWS[0], at=datetime(2026, 1, 2, tzinfo=UTC), uid="run-first")]
    for i, c in enumerate(captures):
        m = i % 5
        at = c.at - timedelta(hours=1)
        if m < 3:
            out.append(make_run(AWS[m], "TDS00W", at, exit_code=150, stderr="did not join",
                                uid=f"run-{i}-f"))
            if i % 2 == 0:
                out.append(make_run(AWS[m], at=c.at + timedelta(seconds=1), uid=f"run-{i}-s"))
        else:
            out.append(make_azure_run(VMS[m - 3].upper(), "TAZ00W", at, exit_code=1,
                                      uid=f"run-{i}-f"))
            # an Azure join names only its host id: matched to an instance through the nodes
            out.append(_join(f"node-{m}-{int(i % 3 == 2)}", c.at - timedelta(minutes=30),
                             f"join-{i}"))
    return out


def _join(host_id: str, at: datetime, uid: str) -> dict:
    return {"ei": 0, "event": "instance.join", "uid": uid, "code": "TJ002I", "time": ts(at),
            "cluster_name": "test.example.com", "node_name": host_id, "host_id": host_id,
            "role": "Node", "method": "azure", "token_name": "azure-token",
            "attributes": {"subscription": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"}}


@dataclass
class Built:
    store: Store
    captures: list[Capture]
    tables: dict[str, list]  # kind -> full copies (Arrow), the oracle's input


def build(root: Path, captures: list[Capture], *, with_runs: bool = True,
          legacy_store: bool = False) -> Built:
    """Ingest `captures` (and runs around them) into a new store under `root`, capture by
    capture through the real ingest (or, with `legacy_store`, as full copies the way schema 2
    did); keep the full copies for the oracle."""
    store = Store(root / ("legacy" if legacy_store else "lake"))
    if with_runs:
        log = root / "audit" / "events.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(json.dumps(e) + "\n" for e in runs_for(captures)))
        ingest_events(store, [str(log)])
    tables: dict[str, list] = {"nodes": [], "user_tasks": []}
    for i, c in enumerate(captures):
        for kind, items in listings(c).items():
            path = root / "in" / f"{kind}-{i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(items))
            naive = c.at.astimezone(UTC).replace(tzinfo=None)
            if legacy_store:
                legacy.write_capture(store, kind, items, naive, str(path))
            else:
                s = ingest_snapshot(store, kind, str(path), c.at)
                assert s.balanced, s
            tables[kind].append(legacy.capture_table(kind, legacy.capture_rows(kind, items,
                                                                                 naive)))
    return Built(store, captures, tables)


def connections(b: Built) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    """(the store's own connection, the oracle's: same store, frozen full-copy relations)."""
    ours = analytics.connect(b.store)
    old = analytics.connect(b.store)
    legacy.oracle(old, b.tables)
    return ours, old


def instants(captures: list[Capture]) -> list[datetime]:
    """Before the first capture, at and around each, after the last."""
    if not captures:
        return [datetime(2026, 5, 4, tzinfo=UTC)]
    out = [captures[0].at - timedelta(days=40)]
    for c in captures:
        out += [c.at - timedelta(microseconds=1), c.at, c.at + timedelta(minutes=30)]
    out.append(captures[-1].at + timedelta(days=45))
    return out


def relations(con, at: datetime) -> dict:
    """The snapshot relations as of `at`."""
    t = to_ns(at)
    q = {
        "snapshot_at": "SELECT epoch_ns(snapshot_at('nodes', make_timestamp_ns($1))), "
                       "epoch_ns(snapshot_at('user_tasks', make_timestamp_ns($1)))",
        "online_nodes": "SELECT * FROM online_nodes(make_timestamp_ns($1)) ORDER BY ALL",
        "user_tasks_at": "SELECT * FROM user_tasks_at(make_timestamp_ns($1)) ORDER BY ALL",
    }
    return {name: con.execute(sql, [t]).fetchall() for name, sql in q.items()}


def reports(con, at: datetime) -> dict:
    """What the snapshots feed as of `at`: the nodes report (all rows; failures only), the
    instance history and the period comparison ending then."""
    lo = at - timedelta(days=2)
    return {
        "nodes": nodes_report(con, lo, at),
        "failures": nodes_report(con, lo, at, clouds=["azure", "aws"], failures_only=True),
        "instance_history": analytics.instance_history(con, lo - timedelta(days=30), at),
        "period_comparison": analytics.compare_periods(con, (lo - timedelta(days=2), lo),
                                                       (lo, at)),
    }


def report(con, at: datetime):
    """The history report's parts for the week before `at`."""
    rep = collect(con, at - timedelta(days=7), at, failures_only=False)
    return {k: getattr(rep, k) for k in ("summary", "instances", "changes", "nodes")}
