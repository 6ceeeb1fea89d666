"""The stored columns of the generated events, in DuckDB SQL over the plan tables (no JSON).

Each value is the one the ingest stores after parsing the line `pipeline.gen.templates` (run
events) or `pipeline.gen.noise` (instance.join) renders: the field as the JSON carries it,
named as the ingest stages it, then the ingest's own derivations
(`pipeline.store.layout.derived`) and the layout's types. Run fields that do not vary per
event are computed once per (instance, outcome kind) into `rt`; `run_events_sql` gives the
rest per event.
"""

from __future__ import annotations

import duckdb

from pipeline.gen import catalog as cat
from pipeline.gen.events import Shape, obj
from pipeline.gen.noise import JOIN_CODE, join_fields
from pipeline.gen.plan import DAY
from pipeline.store.layout import JOINS, RUNS, derived
from pipeline.store.write import sql_str

CLOUDS = ("aws", "azure")  # file_idx = cloud index * n_days + day index
# runs columns drawn per event (run_events_sql); every other one is constant per `rt` row
PER_EVENT = ("uid", "time", "time_text", "status", "stdout", "stderr", "command_id",
             "invocation_url", "extra")
CONSTANT = tuple(c for c, _ in RUNS.columns if c not in PER_EVENT)


def _staged_runs(s: Shape) -> str:
    """SQL of the per-(inst, kind) run fields as staged (text fields '' where the line has no
    such key); stdout/stderr keep their per-event `{pid}` `{cmd}` placeholders."""
    free = f"CAST(200 + {s.pick('i.inst', 'free', 1000)} AS VARCHAR)"

    def filled(col: str) -> str:
        return (f"coalesce(fill(o.{col}, i.os_id, i.platform_version, i.pkg, {free}, i.vm_name,"
                f" i.resource_id, i.key), '')")

    def aws(sql: str, legacy: bool = True) -> str:  # a cloud's fields are '' in the other's
        cond = "o.cloud = 'aws'" + ("" if legacy else " AND kind <> 'aws_legacy'")
        return f"CASE WHEN {cond} THEN {sql} ELSE '' END"  # (legacy lines: present, empty)

    def azure(sql: str) -> str:
        return f"CASE WHEN o.cloud = 'aws' THEN '' ELSE {sql} END"

    return f"""
    SELECT inst, kind, o.cloud = 'aws' AS aws,
           CASE WHEN o.cloud = 'aws' THEN 'ssm.run' ELSE 'azure.run' END AS event, o.code,
           0 AS ei, {sql_str(cat.CLUSTER)} AS cluster_name, o.exit_code, i.region,
           o.statuses, len(string_split(o.statuses, '|')) AS n_status,
           coalesce(o.az_status, '') AS az_status,
           {filled('stdout')} AS stdout, {filled('stderr')} AS stderr,
           {aws('i.key')} AS instance_id, {azure('i.key')} AS vm_id,
           {aws('i.account')} AS account_id, {azure('i.account')} AS subscription_id,
           {azure(filled('api_error'))} AS api_error,
           {aws("concat('https://', i.region, '.console.aws.amazon.com/systems-manager/"
                "run-command/')", legacy=False)} AS url_head,
           {aws('i.platform_name', False)} AS platform_name,
           {aws('i.platform_type', False)} AS platform_type,
           {aws('i.platform_version', False)} AS platform_version,
           {azure('i.resource_group')} AS resource_group, {azure('i.resource_id')} AS resource_id,
           {azure('i.vm_name')} AS vm_name, {azure('o.execution_state')} AS execution_state
    FROM (SELECT DISTINCT inst, kind FROM ev) JOIN inst i USING (inst)
         JOIN outcomes o USING (kind)"""


def build_run_values(con: duckdb.DuckDBPyConnection, s: Shape, source: str,
                     ingest_id: str) -> None:
    """`rt`: one row per (inst, kind) in `ev`, numbered `g` from 0: the CONSTANT stored
    columns, plus what `run_events_sql` needs (aws, statuses, n_status, az_status, url_head,
    stdout and stderr with placeholders and whether they have any)."""
    fixed = {"source": sql_str(source), "ingest_id": sql_str(ingest_id)}
    types = dict(RUNS.columns)
    cols = ", ".join(f"CAST({fixed.get(c) or derived(c)} AS {types[c]}) AS {c}" for c in CONSTANT)
    slots = {c: f"strpos({c}, '{{pid}}') > 0 OR strpos({c}, '{{cmd}}') > 0"
             for c in ("stdout", "stderr")}
    con.execute(f"""
    CREATE OR REPLACE TABLE rt AS
    SELECT CAST(row_number() OVER (ORDER BY inst, kind) - 1 AS INTEGER) AS g, inst, kind, aws,
           statuses, n_status, az_status, url_head, stdout, stderr,
           {slots['stdout']} AS stdout_slots, {slots['stderr']} AS stderr_slots, {cols}
    FROM ({_staged_runs(s)})
    """)


def run_events_sql(s: Shape, lo_ns: int, hi_ns: int) -> str:
    """SQL of the run events with time in [lo_ns, hi_ns), ordered by file_idx (CLOUDS) then
    time: file_idx, ts, g (their `rt` row) and the PER_EVENT columns but time, time_text and
    extra; stdout/stderr only where the `rt` text has placeholders (else NULL: the `rt` text
    is the value)."""
    cmd = "e.command_id::VARCHAR"
    pid = f"CAST(1000 + {s.pick('e.uid', 'pid', 60000)} AS VARCHAR)"
    status = f"split_part(r.statuses, '|', 1 + {s.pick('e.uid', 'st', 'r.n_status')})"

    def slots(col: str) -> str:
        return (f"CASE WHEN r.{col}_slots THEN"
                f" replace(replace(r.{col}, '{{pid}}', {pid}), '{{cmd}}', {cmd}) END")

    return f"""
    SELECT CAST(CASE WHEN r.aws THEN 0 ELSE {s.n_days} END + (e.ts - {s.day0_ns}) // {DAY}
                AS INTEGER) AS file_idx, e.ts, r.g, e.uid::VARCHAR AS uid,
           CASE WHEN NOT r.aws THEN r.az_status WHEN r.n_status > 1 THEN {status}
                ELSE r.statuses END AS status,
           {slots('stdout')} AS stdout, {slots('stderr')} AS stderr,
           CASE WHEN r.aws THEN {cmd} ELSE '' END AS command_id,
           CASE WHEN r.url_head = '' THEN '' ELSE concat(r.url_head, {cmd}, '/', r.instance_id)
                END AS invocation_url
    FROM ev e JOIN rt r USING (inst, kind) WHERE e.ts >= {lo_ns} AND e.ts < {hi_ns}
    ORDER BY file_idx, e.ts"""


def _staged_joins(s: Shape) -> str:
    """SQL of the instance.join events as staged: the fields the store has columns for typed,
    the others (success, error, addr.remote) as the JSON object `extra`."""
    known = set(JOINS.column_names)
    fields = join_fields(s)
    typed = ", ".join(f"{sql_str(v) if how == 'c' else v} AS {k}"
                      for k, v, how in fields if k in known)
    extra = obj([f for f in fields if f[0] not in known])
    return f"""
    SELECT uid::VARCHAR AS uid, 'instance.join' AS event, {JOIN_CODE} AS code,
           make_timestamp_ns(ts) AS time, ts_str(ts) AS time_text, 0 AS ei,
           {sql_str(cat.CLUSTER)} AS cluster_name, {typed}, {extra} AS extra
    FROM noise_src LEFT JOIN inst USING (inst) WHERE type = 'instance.join'"""


def joins_sql(s: Shape, source: str, ingest_id: str) -> str:
    """SQL of the `joins` rows (its columns derived and typed, partition keys last)."""
    fixed = {"source": sql_str(source), "ingest_id": sql_str(ingest_id)}
    cols = ", ".join(f"CAST({fixed.get(c) or derived(c)} AS {t}) AS {c}"
                     for c, t in JOINS.columns + JOINS.partition)
    return f"SELECT {cols} FROM ({_staged_joins(s)})"
