"""A year of hourly node snapshots written straight into a store's change-history datasets, in
bulk (not 8,760 ingests), plus the listings a snapshot ingest would read.

The fleet: `nodes` slots, each always holding one node; every day `churn_pct` % of the slots get
a new node (another name and instance) at a random hour. Each node's `expires` at a capture is
the capture time + 7 min + a uniform part of 3 min, as the project's generator makes it: to the
nanosecond (law "ns"), or whole seconds (law "s", what Teleport's DynamoDB backend keeps). User
tasks: one row per 50 nodes, 5 % replaced a day. Identities follow `node_row` exactly, so the
listing of any capture (`listing_json`) ingests back to the same rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from bench.data import dir_bytes
from bench.harness import log, timed

HOUR_NS = 3600 * 10**9
REGIONS = "['us-east-1','us-west-2','eu-west-1','eu-central-1','ap-southeast-2','ca-central-1']"
AZ_REGIONS = "['eastus','westeurope','northeurope','uksouth']"


@dataclass(frozen=True)
class YearSpec:
    nodes: int
    days: int
    churn_pct: int = 1
    law: str = "ns"
    seed: int = 7

    @property
    def captures(self) -> int:
        return self.days * 24


def capture_ns(start_ns: int, k: int) -> int:
    return start_ns + k * HOUR_NS


def _identities(con, spec: YearSpec, table: str, slots: int, churn_pct: int, prefix: str) -> None:
    """TABLE `table`: one row per (slot, generation): its first and last capture number."""
    c = spec.captures
    con.execute(f"""CREATE OR REPLACE TABLE {table} AS
        WITH starts AS (
            SELECT s, 0 AS k FROM range({slots}) a(s)
            UNION ALL
            SELECT s, d * 24 + (hash(s, d, {spec.seed}, '{prefix}h') % 24)::BIGINT
            FROM range({slots}) a(s), range(1, {spec.days}) b(d)
            WHERE hash(s, d, {spec.seed}, '{prefix}') % 100 < {churn_pct}
        )
        SELECT s, k AS first_k,
               coalesce(lead(k) OVER (PARTITION BY s ORDER BY k) - 1, {c - 1}) AS last_k,
               md5(concat_ws('-', '{prefix}', s, k, {spec.seed})) AS token
        FROM starts""")


def _guid(expr: str) -> str:
    return (f"concat_ws('-', substr({expr}, 1, 8), substr({expr}, 9, 4), substr({expr}, 13, 4), "
            f"substr({expr}, 17, 4), substr({expr}, 21, 12))")


NODES_SQL = """
CREATE OR REPLACE TABLE node_spans AS
WITH named AS (
    SELECT *, s % 4 = 0 AS azure, {guid_name} AS name, {guid_vm} AS vm,
           'i-0' || substr(token, 1, 16) AS ec2
    FROM node_slots
)
SELECT s, first_k, last_k, name,
       'ip-10-' || (s // 65536) || '-' || (s // 256 % 256) || '-' || (s % 256) AS hostname,
       CASE WHEN azure THEN 'azure' ELSE 'aws' END AS cloud,
       CASE WHEN azure THEN vm ELSE ec2 END AS instance_key,
       CASE WHEN azure THEN '' ELSE ec2 END AS instance_id,
       CASE WHEN azure THEN upper(vm) ELSE '' END AS vm_id,
       CASE WHEN azure THEN {guid_sub} ELSE (100000000000 + s % 40)::VARCHAR END AS account_id,
       CASE WHEN azure THEN {az}[1 + s % 4] ELSE {aws}[1 + s % 6] END AS region,
       CASE WHEN azure THEN 'rg-' || (s % 30) ELSE '' END AS resource_group,
       md5(token || 'rev') AS revision
FROM named
"""

# the node resource, as `tctl get nodes --format=json` prints it (its JSON text)
RAW_SQL = """
CAST(to_json({{'kind': 'node', 'version': 'v2', 'metadata': {{'name': name,
  'labels': CASE WHEN cloud = 'aws' THEN MAP {{'teleport.dev/instance-id': instance_id,
      'teleport.dev/account-id': account_id, 'teleport.dev/discovered-name': hostname,
      'aws/Name': hostname, 'aws/env': 'prod'}}
    ELSE MAP {{'teleport.internal/vm-id': vm_id, 'teleport.internal/subscription-id': account_id,
      'teleport.internal/resource-group': resource_group, 'teleport.internal/region': region,
      'azure/env': 'prod'}} END,
  'expires': {expires}, 'revision': revision}},
  'spec': CASE WHEN cloud = 'aws' THEN to_json({{'addr': hostname || ':3022', 'hostname': hostname,
      'version': '18.1.4', 'cloud_metadata': {{'aws': {{'account_id': account_id,
      'instance_id': instance_id, 'region': region, 'vpc_id': 'vpc-0' || substr(revision, 1, 8)}}}}}})
    ELSE to_json({{'addr': '', 'hostname': hostname, 'version': '18.1.4', 'use_tunnel': true}}) END
}}) AS VARCHAR)"""


def offset_sql(spec: YearSpec, k: str) -> str:
    """SQL: the expiry offset (ns after the capture) of interval `interval_id` at capture `k`."""
    span = f"hash(interval_id, {k}, {spec.seed}) % {180 * 10**9}"
    if spec.law == "s":
        span = f"hash(interval_id, {k}, {spec.seed}) % 181 * 1000000000"
    return f"({7 * 60 * 10**9} + {span})::BIGINT"


def _ts(start_ns: int, k: str) -> str:
    return f"make_timestamp_ns({start_ns} + {k} * {HOUR_NS})"


def build(con, spec: YearSpec, start_ns: int, out: Path, ingest_id: str) -> dict:
    """Write the history datasets under `out/<dataset>/` (files named for `ingest_id`) and the
    snapshot log; returns counts. Tables node_spans/task_spans stay on `con` for listings."""
    c = spec.captures
    out.mkdir(parents=True, exist_ok=True)
    (out / "snapshot_log").mkdir(exist_ok=True)
    _identities(con, spec, "node_slots", spec.nodes, spec.churn_pct, "n")
    con.execute(NODES_SQL.format(guid_name=_guid("token"), guid_vm=_guid("md5(token || 'vm')"),
                                 guid_sub=_guid("md5('sub' || (s % 10))"), az=AZ_REGIONS,
                                 aws=REGIONS))
    _identities(con, spec, "task_slots", max(1, spec.nodes // 50), 5, "t")
    con.execute("""CREATE OR REPLACE TABLE task_spans AS SELECT s, first_k, last_k,
        'task-' || (s % 40) AS name, 'discover-ec2' AS task_type,
        ['ec2-ssm-script-failure', 'ec2-ssm-agent-connection-lost', 'ec2-join-failure'][1 + s % 3]
          AS issue_type, 'OPEN' AS state, 'aws' AS cloud, 'i-0' || substr(token, 1, 16)
          AS instance_key, CAST(to_json({'kind': 'user_task', 'metadata': {'name': 'task-' ||
          (s % 40)}, 'spec': {'task_type': 'discover-ec2', 'state': 'OPEN'}}) AS VARCHAR) AS raw
          FROM task_slots""")
    first = _ts(start_ns, "first_k")
    first_expiry = f"strftime({first} + INTERVAL 8 MINUTE, '%Y-%m-%dT%H:%M:%S.%nZ')"
    con.execute(f"""CREATE OR REPLACE TABLE node_ids AS SELECT *, {RAW_SQL.format(
        expires=first_expiry)} AS raw, row_number() OVER (ORDER BY first_k, name, hostname, cloud,
        instance_key, instance_id, vm_id, account_id, region, resource_group) - 1 AS interval_id
        FROM node_spans""")
    con.execute("""CREATE OR REPLACE TABLE task_ids AS SELECT *, row_number() OVER (ORDER BY
        first_k, name, task_type, issue_type, state, cloud, instance_key) - 1 AS interval_id
        FROM task_spans""")
    con.execute(f"""CREATE OR REPLACE TABLE months AS SELECT CAST(date_trunc('month',
        {_ts(start_ns, 'k')}) AS DATE) AS period, min(k) AS lo, max(k) AS hi FROM range({c}) t(k)
        GROUP BY 1""")
    ids = {"node": "name, hostname, cloud, instance_key, instance_id, vm_id, account_id, region, "
                   "resource_group", "user_task": "name, task_type, issue_type, state, cloud, "
                                                  "instance_key"}
    opts = "FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION V2"
    for kind, table in (("node", "node_ids"), ("user_task", "task_ids")):
        con.execute(f"""COPY (SELECT interval_id, {first} AS first_seen, {ids[kind]}, raw, period
            FROM {table} JOIN months ON first_k <= hi AND last_k >= lo ORDER BY interval_id)
            TO '{out / f"{kind}_history"}' ({opts}, PARTITION_BY (period),
            FILENAME_PATTERN 'part-{ingest_id}-{{i}}')""")
        last = _ts(start_ns, "last_k")
        con.execute(f"""COPY (SELECT interval_id, {last} AS last_seen,
            CAST(date_trunc('month', {last}) AS DATE) AS period FROM {table}
            WHERE last_k < {c - 1} ORDER BY interval_id) TO '{out / f"{kind}_history_ends"}'
            ({opts}, PARTITION_BY (period), FILENAME_PATTERN 'part-{ingest_id}-{{i}}')""")
    expiry_bytes = write_expiry(con, spec, start_ns, out / "node_expiry", ingest_id)
    con.execute(f"""COPY (SELECT kind, {_ts(start_ns, 'k')} AS captured_at, n::BIGINT AS rows,
        'bench:' || kind AS source, '{ingest_id}' AS ingest_id FROM range({c}) t(k),
        (VALUES ('nodes', {spec.nodes}), ('user_tasks', {max(1, spec.nodes // 50)})) v(kind, n)
        ORDER BY captured_at, kind) TO '{out / "snapshot_log" / f"part-{ingest_id}.parquet"}'
        (FORMAT parquet, COMPRESSION zstd)""")
    counts = con.execute("SELECT (SELECT count(*) FROM node_ids), (SELECT count(*) FROM "
                         "task_ids)").fetchall()[0]
    return {"node_intervals": counts[0], "task_intervals": counts[1], "expiry_bytes": expiry_bytes}


def write_expiry(con, spec: YearSpec, start_ns: int, out: Path, ingest_id: str,
                 days: int | None = None) -> int:
    """node_expiry, one file per day (the ingest writes one per capture; compaction merges a
    day's into one): every node present at each capture (of the first `days` days only, when
    given). Returns bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    for d in range(spec.days if days is None else days):
        lo, hi = d * 24, d * 24 + 23
        day = (datetime(1970, 1, 1) + timedelta(microseconds=capture_ns(start_ns, lo) // 1000))
        folder = out / f"capture_date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"""COPY (SELECT {_ts(start_ns, 'k')} AS captured_at, interval_id,
            {offset_sql(spec, 'k')} AS expires_offset
            FROM (SELECT interval_id, first_k, last_k FROM node_ids
                  WHERE first_k <= {hi} AND last_k >= {lo}) n, range({lo}, {hi + 1}) t(k)
            WHERE k BETWEEN first_k AND last_k ORDER BY k, interval_id)
            TO '{folder / f"part-{ingest_id}-0.parquet"}' (FORMAT parquet, COMPRESSION zstd,
            PARQUET_VERSION V2)""")
        if d % 30 == 29:
            log(f"  node_expiry: {d + 1}/{spec.days} days")
    return dir_bytes(out)


def listing_json(con, spec: YearSpec, start_ns: int, k: int, path: Path, *,
                 renamed: int = 0) -> int:
    """The nodes listing (`tctl get nodes --format=json`) at capture `k` (k = captures: the hour
    after the last, the nodes of the last), `renamed` of them re-registered under a new name.
    Returns the node count."""
    at = min(k, spec.captures - 1)
    expires = f"strftime({_ts(start_ns, str(k))} + to_microseconds({offset_sql(spec, str(k))} // " \
              f"1000), '%Y-%m-%dT%H:%M:%S.%nZ')"
    if spec.law == "ns":  # to the nanosecond: microseconds above plus the last three digits
        expires = (f"regexp_replace({expires}, '\\d{{3}}Z$', lpad(({offset_sql(spec, str(k))} % 1000)"
                   "::VARCHAR, 3, '0') || 'Z')")
    text = con.execute(f"""SELECT json_group_array(json({RAW_SQL.format(expires=expires)})) FROM (
        SELECT * REPLACE (CASE WHEN row_number() OVER (ORDER BY interval_id) <= {renamed}
                          THEN name || '-re' ELSE name END AS name)
        FROM node_ids WHERE first_k <= {at} AND last_k >= {at})""").fetchall()[0][0]
    path.write_text(text)
    return con.execute(f"SELECT count(*) FROM node_ids WHERE first_k <= {at} AND last_k >= {at}"
                       ).fetchall()[0][0]


def ensure_year_store(work: Path, spec: YearSpec, end_ns: int) -> tuple[Path, dict]:
    """A store holding the year's history (built once, reused) and facts about it; next to it
    `ids.duckdb`, the intervals with their identities (what `listing_json` reads)."""
    import json

    from bench.data import _done, _mark
    from pipeline.store import Store

    root = work / f"year-{spec.nodes}n-{spec.days}d-c{spec.churn_pct}-{spec.law}-s{spec.seed}"
    store = root / "store"
    doc = _done(root)
    if doc is not None:
        return store, doc
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    start_ns = end_ns - spec.days * 24 * HOUR_NS
    log(f"building a year store in bulk: {spec} -> {store}")
    with Store(store).writer() as w:
        con = duckdb.connect(str(root / "ids.duckdb"))
        con.execute(f"SET temp_directory = '{root / 'spill'}'")
        secs, counts = timed(lambda: build(con, spec, start_ns, w.scratch("out"), w.ingest_id))
        con.close()
        for name in ("node_history", "node_history_ends", "node_expiry", "user_task_history",
                     "user_task_history_ends", "snapshot_log"):
            w.add_tree(name, w.scratch("out") / name)
        w.commit()
    from pipeline.store.verify import verify

    vsecs, problems = timed(lambda: verify(Store(store)))  # a bulk-built store is still a store
    doc = {"spec": spec.__dict__, "start_ns": start_ns, "build_seconds": secs, **counts,
           "verify": {"seconds": vsecs, "problems": problems}}
    _mark(root, doc)
    log(f"  built in {secs:.0f}s: {json.dumps(counts)}")
    return store, doc
