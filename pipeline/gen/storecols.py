"""The stored columns of the generated events, in DuckDB SQL over the plan tables (no JSON).

Each value is the one the ingest stores after parsing the line `pipeline.gen.templates` (run
events) or `pipeline.gen.noise` (instance.join) renders: the field as the JSON carries it,
named as the ingest stages it, then the ingest's own derivations
(`pipeline.store.layout.derived`) and the layout's types. Run fields that do not vary per
event are computed once per (instance, outcome kind) into `rt`; the per-event values of a span
of files are sorted into file order (`evs`), and `run_events_sql` reads its files in pieces.
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
SLOTS = ("", "pid", "cmd")  # per-event placeholders of output texts: `{pid}`, `{cmd}`
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
    columns, plus what the per-event columns need: `status_opts` (the statuses an event may
    draw, `n_status` of them for SSM), `url_head` and `url_tail` (an invocation URL is head,
    command id, tail; no head: no URL), and for stdout and stderr the text with its per-event
    placeholder cut out: `<col>_slot` (0 none, SLOTS.index of the placeholder), `<col>_pre`,
    `<col>_post` (a text holds at most one placeholder; checked)."""
    fixed = {"source": sql_str(source), "ingest_id": sql_str(ingest_id)}
    types = dict(RUNS.columns)
    cols = ", ".join(f"CAST({fixed.get(c) or derived(c)} AS {types[c]}) AS {c}" for c in CONSTANT)
    marks = [f"{{{name}}}" for name in SLOTS[1:]]

    def cut(col: str) -> str:
        kind = " ".join(f"WHEN strpos({col}, '{m}') > 0 THEN {k}" for k, m in enumerate(marks, 1))
        parts = col
        for m in marks[1:]:
            parts = f"replace({parts}, '{m}', '{marks[0]}')"
        parts = f"string_split({parts}, '{marks[0]}')"
        return (f"CAST(CASE {kind} ELSE 0 END AS UTINYINT) AS {col}_slot, {parts}[1] AS {col}_pre,"
                f" coalesce({parts}[2], '') AS {col}_post, len({parts}) AS {col}_parts")

    con.execute(f"""
    CREATE OR REPLACE TABLE rt AS
    SELECT CAST(row_number() OVER (ORDER BY inst, kind) - 1 AS INTEGER) AS g, inst, kind, aws,
           n_status, CASE WHEN aws THEN string_split(statuses, '|') ELSE [az_status] END
               AS status_opts,
           url_head, '/' || instance_id AS url_tail, stdout, stderr,
           {cut('stdout')}, {cut('stderr')}, {cols}
    FROM ({_staged_runs(s)})
    """)
    most = con.sql("SELECT max(greatest(stdout_parts, stderr_parts)) FROM rt").fetchall()[0][0]
    if (most or 1) > 2:
        raise AssertionError("a generated output text holds more than one per-event placeholder")


def event_files_sql(s: Shape) -> str:
    """SQL of `ev` joined to `rt` with each event's file_idx (CLOUDS index * n_days + day
    index)."""
    return f"""
    SELECT CAST(CASE WHEN r.aws THEN 0 ELSE {s.n_days} END + (e.ts - {s.day0_ns}) // {DAY}
                AS INTEGER) AS file_idx, e.*, r.g, r.aws, r.n_status, r.stdout_slot,
           r.stderr_slot
    FROM ev e JOIN rt r USING (inst, kind)"""


def file_rows(con: duckdb.DuckDBPyConnection, s: Shape) -> list[tuple[int, int]]:
    """(file_idx, rows) of every runs file the events fill, in file order."""
    return con.sql(f"SELECT file_idx, count(*) FROM ({event_files_sql(s)}) GROUP BY ALL"
                   " ORDER BY ALL").fetchall()


def build_sorted_events(con: duckdb.DuckDBPyConnection, s: Shape, lo_idx: int,
                        hi_idx: int) -> None:
    """`evs`: the run events of the files [lo_idx, hi_idx) (one cloud) in file order (file_idx,
    time), narrow and fixed-width: file_idx, ts, g (their `rt` row), uid, command_id, st
    (which of the row's `status_opts`), and the stdout/stderr placeholder kinds. A file's rows
    are then one range of the table, which `run_events_sql` reads in order without sorting."""
    (cloud, lo_day), hi_day = divmod(lo_idx, s.n_days), hi_idx - (lo_idx - lo_idx % s.n_days)
    if hi_day > s.n_days:
        raise ValueError(f"files [{lo_idx}, {hi_idx}) span both clouds")
    st = s.pick("uid", "st", "n_status")
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE evs AS
    SELECT file_idx, ts, g, uid, command_id,
           CAST(CASE WHEN aws AND n_status > 1 THEN {st} ELSE 0 END AS UTINYINT) AS st,
           stdout_slot, stderr_slot
    FROM ({event_files_sql(s)})
    WHERE aws = {cloud == 0} AND ts >= {s.day0_ns + lo_day * DAY}
      AND ts < {s.day0_ns + hi_day * DAY}
    ORDER BY file_idx, ts, uid
    """)


def run_events_sql(s: Shape, lo_idx: int, hi_idx: int) -> str:
    """SQL of the `evs` rows of the files [lo_idx, hi_idx), in file order (the table's order:
    a filtered scan keeps insertion order): file_idx, ts, g, st, uid, command_id, and stdout
    and stderr as the value of their placeholder (NULL without one)."""
    cmd = "command_id::VARCHAR"
    values = {"pid": f"CAST(1000 + {s.pick('uid', 'pid', 60000)} AS VARCHAR)", "cmd": cmd}
    slot = {c: "CASE " + " ".join(f"WHEN {c}_slot = {k} THEN {values[n]}"
                                  for k, n in enumerate(SLOTS) if n) + " END"
            for c in ("stdout", "stderr")}
    return f"""
    SELECT file_idx, ts, g, st, uid::VARCHAR AS uid,
           CASE WHEN file_idx < {s.n_days} THEN {cmd} ELSE '' END AS command_id,
           {slot['stdout']} AS stdout, {slot['stderr']} AS stderr
    FROM evs WHERE file_idx >= {lo_idx} AND file_idx < {hi_idx}"""


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
