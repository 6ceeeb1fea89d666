"""Run-event line templates: one JSON text per (instance, outcome kind), cut at the per-event slots.

An `ssm.run` / `azure.run` line is the same for every retry of one instance with one outcome,
apart from a few values drawn per event: uid, time, command id, SSM status, a pid. The
template holds everything else, rendered once per (instance, kind) in DuckDB; each slot is
marked `\\x01name\\x01` (a control character JSON text never holds unescaped) and the text is
split there into segments. `pipeline.gen.render` fills the slots column-wise per event.
"""

from __future__ import annotations

import duckdb

from pipeline.gen import catalog as cat
from pipeline.gen.events import Shape, obj

SLOTS = ("", "uid", "time", "cmd", "status", "pid", "line")  # slot codes: index in this tuple
MAX_SLOTS = 6  # segments seg0..seg6 around slots 1..6


def mark(name: str) -> str:
    """SQL for the marker of slot `name` inside a template."""
    return f"(chr(1) || '{name}' || chr(1))"


def _envelope(event: str) -> list[tuple[str, str, str]]:
    return [("ei", "0", "j"), ("event", event, "s"), ("uid", mark("uid"), "s"),
            ("code", "o.code", "s"), ("time", mark("time"), "s"),
            ("cluster_name", cat.CLUSTER, "c")]


def _json(s: Shape, col: str) -> str:
    """JSON text (or NULL) of an outcome text column, instance placeholders filled."""
    free = s.pick("i.inst", "free", 1000)
    return (f"to_json(fill(o.{col}, i.os_id, i.platform_version, i.pkg,"
            f" CAST(200 + {free} AS VARCHAR), i.vm_name, i.resource_id, i.key))::VARCHAR")


def _text(s: Shape, col: str) -> str:
    """`_json` with the per-event placeholders `{pid}` `{cmd}` turned into slots."""
    return (f"replace(replace({_json(s, col)}, '{{pid}}', {mark('pid')}), '{{cmd}}',"
            f" {mark('cmd')})")


def _template(s: Shape) -> str:
    """SQL for the template text of a run event (i = inst, o = outcomes)."""
    status = f"CASE WHEN strpos(o.statuses, '|') > 0 THEN {mark('status')} ELSE o.statuses END"

    def unless_legacy(sql: str) -> str:  # old events predate these fields: present but empty
        return f"CASE WHEN o.kind = 'aws_legacy' THEN '' ELSE {sql} END"

    url = (f"concat('https://', i.region, '.console.aws.amazon.com/systems-manager/run-command/',"
           f" {mark('cmd')}, '/', i.key)")
    out, err = _text(s, "stdout"), _text(s, "stderr")
    aws = obj(_envelope("'ssm.run'") + [
        ("command_id", mark("cmd"), "s"), ("instance_id", "i.key", "s"),
        ("exit_code", "o.exit_code::VARCHAR", "j"), ("status", status, "s"),
        ("account_id", "i.account", "s"), ("region", "i.region", "s"),
        ("stdout", out, "j"), ("stderr", err, "j"),
        ("invocation_url", unless_legacy(url), "s"),
        ("platform_name", unless_legacy("i.platform_name"), "s"),
        ("platform_type", unless_legacy("i.platform_type"), "s"),
        ("platform_version", unless_legacy("i.platform_version"), "s")])
    azure = obj(_envelope("'azure.run'") + [
        ("subscription_id", "i.account", "s"), ("resource_group", "i.resource_group", "s"),
        ("resource_id", "i.resource_id", "s"), ("region", "i.region", "s"),
        ("vm_id", "i.key", "s"), ("vm_name", "i.vm_name", "s"),
        ("exit_code", "o.exit_code::VARCHAR", "j"), ("execution_state", "o.execution_state", "s"),
        ("stdout", out, "j"), ("stderr", err, "j"),
        ("api_error", _json(s, "api_error"), "?"),
        ("status", "to_json(o.az_status)::VARCHAR", "?")])
    return f"CASE WHEN o.cloud = 'aws' THEN {aws} ELSE {azure} END"


def build_templates(con: duckdb.DuckDBPyConnection, s: Shape) -> int:
    """`tpl`: one row per (inst, kind) in `ev` with its segments seg0..seg6 and slot codes
    c1..c6, plus what the per-event columns need; returns the row count (the id `g` of the
    literal-line template that `pipeline.gen.render` appends)."""
    code = " ".join(f"WHEN '{n}' THEN {k}" for k, n in enumerate(SLOTS) if n)
    cols = [f"coalesce(p[{2 * j + 1}], '') AS seg{j}" for j in range(MAX_SLOTS + 1)]
    cols += [f"CAST(CASE p[{2 * j}] {code} ELSE 0 END AS TINYINT) AS c{j}"
             for j in range(1, MAX_SLOTS + 1)]
    con.execute(f"""
    CREATE OR REPLACE TABLE tpl AS
    WITH k AS (SELECT DISTINCT inst, kind FROM ev),
    t AS (SELECT inst, kind, o.cloud = 'aws' AS aws, o.statuses,
                 len(string_split(o.statuses, '|')) AS n_status, {_template(s)} AS text
          FROM k JOIN inst i USING (inst) JOIN outcomes o USING (kind)),
    sp AS (SELECT *, string_split(text, chr(1)) AS p FROM t)
    SELECT CAST(row_number() OVER (ORDER BY inst, kind) - 1 AS INTEGER) AS g, inst, kind,
           CASE WHEN aws THEN 'ssm.run' ELSE 'azure.run' END AS event_type,
           strpos(text, {mark('cmd')}) > 0 AS has_cmd,
           strpos(text, {mark('status')}) > 0 AS has_status,
           strpos(text, {mark('pid')}) > 0 AS has_pid, statuses, n_status,
           len(p) AS n_parts, {", ".join(cols)}
    FROM sp
    """)
    n, most = con.sql("SELECT count(*), coalesce(max(n_parts), 1) FROM tpl").fetchall()[0]
    if most > 2 * MAX_SLOTS + 1:
        raise AssertionError(f"a run template has {most // 2} slots, more than {MAX_SLOTS}")
    return n
