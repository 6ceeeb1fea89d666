"""Cluster state at `end`: `tctl get nodes` and `tctl get user_tasks` JSON, from the events.

Per-instance Python (never per event): each instance's last run decides whether it is
online (node present) and whether a user task lists it.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.gen import catalog as cat
from pipeline.gen.plan import NS, FleetPlan, guid

ISSUE_BY_KIND = {o.kind: o.issue_type for o in cat.OUTCOMES}
NON_CLOUD = (("bastion-01", "onprem"), ("build-runner-02", "ci"), ("onprem-db-01", "onprem"),
              ("jump-eu", "onprem"), ("lab-pi-03", "lab"))

INSTANCE_STATE_SQL = """
SELECT i.*, a.* EXCLUDE (inst)
FROM inst i LEFT JOIN (
  SELECT inst, count(*) AS n_events, max(ts) AS last_ts,
         arg_max(kind, ts) AS last_kind, arg_max(failed, ts) AS last_failed,
         arg_max(command_id, ts) AS last_cmd,
         arg_max(kind, ts) FILTER (WHERE run = 0) AS last_main_kind,
         count(*) FILTER (WHERE failed) AS n_fail,
         min(ts) FILTER (WHERE failed) AS first_fail_ts
  FROM ev WHERE step = 0 GROUP BY inst) a USING (inst)
ORDER BY i.inst
"""


def rfc3339(ns: int, digits: tuple[int, ...] = (9,), trim: bool = True) -> str:
    """UTC RFC 3339 from epoch ns; trims trailing zeros like Go's RFC3339Nano when `trim`,
    else uses the shortest of `digits` that keeps every non-zero digit (protojson style)."""
    sec, frac = divmod(ns, NS)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    f9 = f"{frac:09d}"
    if trim:
        f9 = f9.rstrip("0")
    else:
        f9 = next(f9[:d] for d in digits if f9[d:].strip("0") == "") if frac else ""
    return f"{base}.{f9}Z" if f9 else f"{base}Z"


_ENC = json.encoder.encode_basestring_ascii  # the C encoder json.dumps uses


def dumps_indent(value: object, indent: str = "") -> str:
    """Same text as `json.dumps(value, indent=4)` for dict/list/str/int/bool/None trees,
    without the pure-Python encoder that `indent` forces (several times faster)."""
    inner = indent + "    "
    if isinstance(value, dict):
        if not value:
            return "{}"
        body = ",\n".join(f"{inner}{_ENC(k)}: {dumps_indent(v, inner)}" for k, v in value.items())
        return f"{{\n{body}\n{indent}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        body = ",\n".join(inner + dumps_indent(v, inner) for v in value)
        return f"[\n{body}\n{indent}]"
    if isinstance(value, str):
        return _ENC(value)
    return json.dumps(value)


def _proto_ts(ns: int) -> str:
    return rfc3339(ns, (0, 3, 6, 9), trim=False)


def instance_states(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """One dict per planned instance with its last-run aggregates (None when no events)."""
    return con.sql(INSTANCE_STATE_SQL).to_arrow_table().to_pylist()


def is_online(r: dict) -> bool:
    """Registered at `end`: enrolled before the window or last main run succeeded, not gone."""
    if r["offline"] or r["unsupported"]:
        return False
    return bool(r["pre_window"] or (r["last_main_kind"] or "").endswith("_ok"))


def _labels(r: dict) -> list[tuple[str, str]]:
    if r["cloud"] == "aws":
        lab = {"teleport.dev/instance-id": r["key"], "teleport.dev/account-id": r["account"],
               "teleport.dev/discovered-name": r["name"], "aws/Name": r["name"],
               "aws/env": "prod" if r["integration"] == "aws-prod" else "nonprod"}
    else:
        lab = {"teleport.internal/vm-id": r["key"].upper(),
               "teleport.internal/subscription-id": r["account"],
               "teleport.internal/resource-group": r["resource_group"],
               "teleport.internal/region": r["region"], "azure/env": "prod"}
    return sorted(lab.items())


_I2, _I3, _I4, _I5, _I6 = (" " * n for n in (8, 12, 16, 20, 24))


def _items(pairs: list[tuple[str, str]], indent: str) -> str:
    return ",\n".join(f"{indent}{_ENC(k)}: {_ENC(v)}" for k, v in pairs)


def _node_text(name: str, labels: list[tuple[str, str]], expires: str, revision: str,
               addr: str, hostname: str, aws: list[tuple[str, str]] | None) -> str:
    """One node of nodes.json as `json.dumps(nodes, indent=4)` prints a list element."""
    spec = [f'{_I3}"addr": {_ENC(addr)}', f'{_I3}"hostname": {_ENC(hostname)}',
            f'{_I3}"version": {_ENC(cat.TELEPORT_VERSION)}']
    if not addr:
        spec.append(f'{_I3}"use_tunnel": true')
    if aws:
        spec.append(f'{_I3}"cloud_metadata": {{\n{_I4}"aws": {{\n{_items(aws, _I5)}\n'
                    f"{_I4}}}\n{_I3}}}")
    body = ",\n".join(spec)
    return (f'    {{\n{_I2}"kind": "node",\n{_I2}"version": "v2",\n{_I2}"metadata": {{\n'
            f'{_I3}"name": {_ENC(name)},\n{_I3}"labels": {{\n{_items(labels, _I4)}\n{_I3}}},\n'
            f'{_I3}"expires": {_ENC(expires)},\n{_I3}"revision": {_ENC(revision)}\n{_I2}}},\n'
            f'{_I2}"spec": {{\n{body}\n{_I2}}}\n    }}')


def nodes_json(states: list[dict], seed: int, end_ns: int) -> tuple[str, int]:
    """nodes.json text (`json.dumps(nodes, indent=4)` plus a newline) and the node count:
    online cloud nodes plus a few non-cloud nodes, sorted by name (backend key order)."""
    rng = random.Random(f"nodes:{seed}")
    times: dict[int, str] = {}

    def node(name: str, labels: list, hostname: str, addr: str, aws: list | None) -> tuple:
        expires = end_ns + 7 * 60 * NS + rng.randrange(3 * 60 * NS)
        sec, frac = divmod(expires, NS)
        if sec not in times:
            times[sec] = rfc3339(sec * NS)[:-1]
        stamp = times[sec] + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"
        return name, _node_text(name, labels, stamp, guid(rng), addr, hostname, aws)

    out = []
    for r in states:
        if not is_online(r):
            continue
        aws = None
        addr = ""
        if r["cloud"] == "aws":
            addr = r["ip"] + ":3022"
            if r["node_meta"]:
                aws = [("account_id", r["account"]), ("instance_id", r["key"]),
                       ("region", r["region"]), ("vpc_id", r["vpc_id"])]
                if r["integration"]:
                    aws.append(("integration", r["integration"]))
        out.append(node(r["host_id"], _labels(r), r["hostname"], addr, aws))
    for n, (host, env) in enumerate(NON_CLOUD):
        out.append(node(guid(rng), [("env", env)], host, f"192.168.10.{11 + n}:3022", None))
    out.sort(key=lambda x: x[0])
    return "[\n" + ",\n".join(text for _, text in out) + "\n]\n", len(out)


def _ec2_instance(r: dict, sync_ns: int) -> dict:
    url = "" if r["last_kind"] == "aws_legacy" or not r["last_cmd"] else (
        f"https://{r['region']}.console.aws.amazon.com/systems-manager/run-command/"
        f"{r['last_cmd']}/{r['key']}")
    return {"instance_id": r["key"], "name": r["name"], "invocation_url": url,
            "discovery_config": cat.DISCOVERY_CONFIG, "discovery_group": cat.DISCOVERY_GROUP,
            "sync_time": _proto_ts(sync_ns)}


def _vm_instance(r: dict) -> dict:
    return {"vm_id": r["key"], "resource_id": r["resource_id"], "name": r["vm_name"],
            "discovery_config": cat.DISCOVERY_CONFIG, "discovery_group": cat.DISCOVERY_GROUP,
            "sync_time": _proto_ts(r["last_ts"]), "last_attempt_time": _proto_ts(r["last_ts"]),
            "retry_after_time": _proto_ts(r["last_ts"] + cat.RETRY_SECONDS * NS),
            "attempts": r["n_fail"]}


def _task_groups(states: list[dict], seed: int, end_ns: int) -> dict[tuple, list]:
    """(cloud, integration, issue, account, region, resource group) -> [(instance, since)]."""
    rng = random.Random(f"tasks:{seed}")
    groups: dict[tuple, list] = defaultdict(list)
    for r in states:
        if not r["integration"]:
            continue  # failures without an integration are not reported as user tasks
        if r["unsupported"]:
            sync = end_ns - rng.randrange(1, 15 * 60) * NS
            key = ("aws", r["integration"], "ec2-ssm-unsupported-os", r["account"], r["region"], "")
            groups[key].append((_ec2_instance(r, sync), sync))
        elif r["last_failed"]:
            issue = ISSUE_BY_KIND[r["last_kind"]]
            if r["cloud"] == "aws":
                key = ("aws", r["integration"], issue, r["account"], r["region"], "")
                groups[key].append((_ec2_instance(r, r["last_ts"]), r["first_fail_ts"]))
            else:
                key = ("azure", r["integration"], issue, r["account"], r["region"],
                       r["resource_group"])
                groups[key].append((_vm_instance(r), r["first_fail_ts"]))
    return groups


def user_tasks_json(states: list[dict], seed: int, end_ns: int, tenant: str,
                    client: str) -> list[dict]:
    """OPEN user tasks, one per (integration, issue, account, region[, resource group])."""
    out = []
    for key, members in _task_groups(states, seed, end_ns).items():
        cloud, integration, issue, account, region, rg = key
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/" + "/".join(key)))
        idkey = "instance_id" if cloud == "aws" else "vm_id"
        instances = {m[idkey]: m for m, _ in sorted(members, key=lambda x: x[0][idkey])}
        if cloud == "aws":
            detail = {"discover_ec2": {"instances": instances, "account_id": account,
                                       "region": region, "ssm_document": cat.SSM_DOCUMENT,
                                       "installer_script": cat.INSTALLER_SCRIPT}}
        else:
            detail = {"discover_azure_vm": {"instances": instances, "subscription_id": account,
                                            "resource_group": rg, "region": region,
                                            "tenant_id": tenant, "client_id": client}}
        out.append({"kind": "user_task", "version": "v1",
                    "metadata": {"name": name, "revision": str(uuid.uuid5(uuid.NAMESPACE_OID, name))},
                    "spec": {"integration": integration,
                             "task_type": "discover-ec2" if cloud == "aws" else "discover-azure-vm",
                             "issue_type": issue, "state": "OPEN", **detail},
                    "status": {"last_state_change": _proto_ts(min(s for _, s in members))}})
    return sorted(out, key=lambda t: t["metadata"]["name"])


def write_text(path: Path, text: str) -> None:
    """Write `path` aside, then rename it into place."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def state_files(cur: duckdb.DuckDBPyConnection, plan: FleetPlan, seed: int, end_ns: int,
                out: Path) -> dict[str, int]:
    """Write nodes.json and user_tasks.json from the instances' last runs (`ev` read through
    `cur`, which is closed); return the summary's counts about them."""
    try:
        states = instance_states(cur)
    finally:
        cur.close()
    return write_state(states, plan, seed, end_ns, out)


def write_state(states: list[dict], plan: FleetPlan, seed: int, end_ns: int,
                out: Path) -> dict[str, int]:
    """`state_files` from `instance_states` already read."""
    nodes, n_nodes = nodes_json(states, seed, end_ns)
    tasks = user_tasks_json(states, seed, end_ns, plan.azure_tenant_id, plan.azure_client_id)
    write_text(out / "nodes.json", nodes)
    write_text(out / "user_tasks.json", dumps_indent(tasks) + "\n")
    return {"instances_with_events": sum(1 for r in states if r["n_events"]),
            "failing_instances": sum(1 for r in states if r["last_failed"]),
            "online_nodes": n_nodes - len(NON_CLOUD), "user_tasks": len(tasks)}
