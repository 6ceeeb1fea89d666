"""The SQL stage: expand planned episodes into audit events and render them as JSON lines.

All per-event randomness is `hash(seed, ids…, salt)` inside DuckDB, so the expansion is
vectorised and deterministic. Tables created on the connection: `att` (install runs), `ev`
(run events), `txt` (JSON-escaped outputs per instance and outcome), `dsel`/`msel` (events
to duplicate / to malform). `lines_query` returns (file_idx, line, ts, uid) rows in file
order; it also reads `noise` (other event types, see `pipeline.gen.noise`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from pipeline.gen import catalog as cat
from pipeline.gen.plan import DAY, NS, RETRY_NS

_U53 = "9007199254740992.0"
_UUID_KEEP = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)  # clear version nibble, variant bits
_UUID_SET = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant


@dataclass(frozen=True)
class Shape:
    """Fleet-wide numbers the SQL needs; all ints, inlined into the SQL text."""

    seed: int
    start_ns: int
    end_ns: int
    day0_ns: int  # UTC midnight on/before start_ns: day index origin
    n_days: int
    servers: int

    def rnd(self, cols: str, salt: str) -> str:
        """SQL for a uniform double in [0, 1) keyed by seed, `cols` and `salt`."""
        return f"((hash({self.seed}, {cols}, '{salt}') >> 11)::DOUBLE / {_U53})"

    def pick(self, cols: str, salt: str, n: int | str) -> str:
        """SQL for a uniform BIGINT in [0, n)."""
        return f"CAST(hash({self.seed}, {cols}, '{salt}') % CAST({n} AS UBIGINT) AS BIGINT)"

    def uuid(self, cols: str, salt: str) -> str:
        """SQL for a UUID v4 (DuckDB UUID type) from two 64-bit hashes of seed, cols, salt."""
        hi = f"hash({self.seed}, {cols}, '{salt}:hi')::UHUGEINT << 64"
        lo = f"hash({self.seed}, {cols}, '{salt}:lo')::UHUGEINT"
        return (f"CAST((({hi}) | {lo}) & {_UUID_KEEP}::UHUGEINT | {_UUID_SET}::UHUGEINT"
                " AS UUID)")


MACROS = """
CREATE OR REPLACE MACRO ts_str(ns) AS
  concat(strftime(make_timestamp(ns // 1000), '%Y-%m-%dT%H:%M:%S'),
         CASE WHEN ns % 1000000000 <> 0
              THEN '.' || rtrim(lpad(CAST(ns % 1000000000 AS VARCHAR), 9, '0'), '0') END, 'Z');
CREATE OR REPLACE MACRO fill(t, i_os, i_ver, i_pkg, free, vm, rid, iid) AS
  CASE WHEN t IS NULL OR strpos(t, '{') = 0 THEN t ELSE
  replace(replace(replace(replace(replace(replace(replace(t,
    '{os}', i_os), '{ver}', i_ver), '{pkg}', i_pkg), '{free}', free),
    '{vm}', vm), '{rid}', rid), '{iid}', iid) END;
"""


def outcomes_table(client_id: str) -> pa.Table:
    """The outcome catalog as an Arrow table (one row per kind)."""
    rows = [o._asdict() for o in cat.OUTCOMES]
    for r in rows:
        if r["api_error"]:
            r["api_error"] = r["api_error"].replace("{client}", client_id)
    return pa.Table.from_pylist(rows)


def build_attempts(con: duckdb.DuckDBPyConnection, s: Shape) -> None:
    """`att`: one row per install run (main run 0, overlapping-matcher duplicate run 1)."""
    jit = cat.JITTER_SECONDS * NS
    legacy_until = s.start_ns + int((s.end_ns - s.start_ns) * cat.LEGACY_UNTIL_SHARE)
    con.execute(f"""
    CREATE OR REPLACE TABLE att AS
    WITH exp AS (SELECT inst, ep, kind, t0, unnest(range(n)) AS k FROM ep),
    timed AS (
      SELECT inst, ep, k, 0 AS run, kind,
             t0 + k * {RETRY_NS} + CAST(({s.rnd('inst, ep, k', 'jit')} * 2 - 1) * {jit} AS BIGINT)
               AS ts
      FROM exp),
    main AS (
      SELECT * REPLACE (CASE WHEN ts < {legacy_until} AND kind IN {cat.LEGACY_KINDS}
                             THEN 'aws_legacy' ELSE kind END AS kind)
      FROM timed),
    dup AS (
      SELECT m.inst, m.ep, m.k, 1 AS run,
             CASE WHEN i.conflict AND m.kind = 'aws_ok' THEN 'aws_dpkg'
                  WHEN i.conflict AND m.kind = 'az_ok' THEN 'az_conflict'
                  ELSE m.kind END AS kind,
             m.ts + {cat.DUP_DELAY_SECONDS * NS}
               + CAST(({s.rnd('m.inst, m.ep, m.k', 'dup')} * 2 - 1) * {10 * NS} AS BIGINT) AS ts
      FROM main m JOIN inst i USING (inst) WHERE i.dup)
    SELECT * FROM main UNION ALL SELECT * FROM dup
    """)


def build_events(con: duckdb.DuckDBPyConnection, s: Shape) -> None:
    """`ev`: run events in the window (incl. the extra first-step event of some SSM runs),
    with ids, auth server and failure flag; `txt`: their outputs, filled and JSON-escaped."""
    con.execute(f"""
    CREATE OR REPLACE TABLE ev AS
    WITH a AS (SELECT *, 0 AS step FROM att WHERE ts >= {s.start_ns} AND ts < {s.end_ns}),
    steps AS (
      SELECT inst, ep, k, run, 'aws_step' AS kind,
             ts - {NS} - {s.pick('inst, ep, k, run', 'stepd', 3 * NS)} AS ts, 1 AS step
      FROM a
      WHERE kind LIKE 'aws%' AND kind <> 'aws_agent_lost'
        AND {s.rnd('inst, ep, k, run', 'step')} < 0.04),
    u AS (SELECT * FROM a UNION ALL SELECT * FROM steps WHERE ts >= {s.start_ns})
    SELECT u.*, o.code LIKE '%W' AS failed,
           {s.uuid('inst, ep, k, run', 'cmd')} AS command_id,
           {s.uuid('inst, ep, k, run, step', 'uid')} AS uid,
           {s.pick('inst, ep, k, run, step', 'srv', s.servers)} AS server
    FROM u JOIN outcomes o USING (kind)
    """)
    args = ("i.os_id, i.platform_version, i.pkg, CAST(200 + "
            + s.pick("i.inst", "free", 1000) + " AS VARCHAR), i.vm_name, i.resource_id, i.key")
    con.execute(f"""
    CREATE OR REPLACE TABLE txt AS
    SELECT inst, kind,
           to_json(fill(o.stdout, {args}))::VARCHAR AS out_j,
           to_json(fill(o.stderr, {args}))::VARCHAR AS err_j,
           to_json(fill(o.api_error, {args}))::VARCHAR AS api_j
    FROM (SELECT DISTINCT inst, kind FROM ev) JOIN inst i USING (inst) JOIN outcomes o USING (kind)
    """)


def obj(fields: list[tuple[str, str, str]]) -> str:
    """SQL `concat(...)` rendering a flat JSON object, keys in the given order.

    Each field is (key, value, how): "c" a Python constant (JSON-encoded here), "s" SQL
    yielding a string that needs no escaping, "j" SQL yielding JSON text, "?" SQL yielding
    JSON text or NULL (then the key is omitted: concat skips NULLs).
    """
    parts: list[tuple[bool, str]] = []  # (is_literal, text)
    for n, (key, value, how) in enumerate(fields):
        sep = "{" if n == 0 else ","
        if how == "c":
            parts.append((True, f"{sep}{json.dumps(key)}:{json.dumps(value)}"))
        elif how == "s":
            parts += [(True, f'{sep}"{key}":"'), (False, value), (True, '"')]
        elif how == "j":
            parts += [(True, f'{sep}"{key}":'), (False, value)]
        else:
            parts.append((False, f"'{sep}\"{key}\":' || {value}"))
    parts.append((True, "}"))
    merged: list[str] = []
    lit = ""
    for is_lit, text in parts:
        if is_lit:
            lit += text
            continue
        if lit:
            merged.append("'" + lit.replace("'", "''") + "'")
            lit = ""
        merged.append(text)
    merged.append("'" + lit.replace("'", "''") + "'")
    return "concat(" + ", ".join(merged) + ")"


def _envelope(event: str, code: str) -> list[tuple[str, str, str]]:
    return [("ei", "0", "j"), ("event", event, "s"), ("uid", "e.uid::VARCHAR", "s"),
            ("code", code, "s"), ("time", "ts_str(e.ts)", "s"), ("cluster_name", cat.CLUSTER, "c")]


def _run_line(s: Shape) -> str:
    """SQL rendering one run event (e = ev row, i = inst, o = outcomes, t = txt) as JSON."""
    status = ("split_part(o.statuses, '|', 1 + "
              + s.pick("e.uid", "st", "len(string_split(o.statuses, '|'))") + ")")
    pid = f"CAST(1000 + {s.pick('e.uid', 'pid', 60000)} AS VARCHAR)"

    def per_event(col: str) -> str:  # the only per-event placeholders: {pid}, {cmd}
        return (f"CASE WHEN strpos({col}, '{{') = 0 THEN {col}"
                f" ELSE replace(replace({col}, '{{pid}}', {pid}), '{{cmd}}', cmd) END")

    def unless_legacy(sql: str) -> str:  # old events predate these fields: present but empty
        return f"CASE WHEN o.kind = 'aws_legacy' THEN '' ELSE {sql} END"

    url = ("concat('https://', i.region, '.console.aws.amazon.com/systems-manager/run-command/',"
           " cmd, '/', i.key)")
    aws = obj(_envelope("'ssm.run'", "o.code") + [
        ("command_id", "cmd", "s"), ("instance_id", "i.key", "s"),
        ("exit_code", "o.exit_code::VARCHAR", "j"), ("status", status, "s"),
        ("account_id", "i.account", "s"), ("region", "i.region", "s"),
        ("stdout", per_event("t.out_j"), "j"), ("stderr", per_event("t.err_j"), "j"),
        ("invocation_url", unless_legacy(url), "s"),
        ("platform_name", unless_legacy("i.platform_name"), "s"),
        ("platform_type", unless_legacy("i.platform_type"), "s"),
        ("platform_version", unless_legacy("i.platform_version"), "s")])
    azure = obj(_envelope("'azure.run'", "o.code") + [
        ("subscription_id", "i.account", "s"), ("resource_group", "i.resource_group", "s"),
        ("resource_id", "i.resource_id", "s"), ("region", "i.region", "s"),
        ("vm_id", "i.key", "s"), ("vm_name", "i.vm_name", "s"),
        ("exit_code", "o.exit_code::VARCHAR", "j"), ("execution_state", "o.execution_state", "s"),
        ("stdout", per_event("t.out_j"), "j"), ("stderr", per_event("t.err_j"), "j"),
        ("api_error", "t.api_j", "?"), ("status", "to_json(o.az_status)::VARCHAR", "?")])
    return f"CASE WHEN o.cloud = 'aws' THEN {aws} ELSE {azure} END"


def _rendered(s: Shape, source: str) -> str:
    """SELECT of (server, ts, uid, var, line) for run-event rows of `source` (ev columns)."""
    return f"""
      SELECT e.server, e.ts, e.uid, e.var, {_run_line(s)} AS line
      FROM (SELECT *, command_id::VARCHAR AS cmd FROM {source}) e
      JOIN inst i USING (inst) JOIN outcomes o USING (kind) JOIN txt t USING (inst, kind)"""


def select_extras(con: duckdb.DuckDBPyConnection, s: Shape, n_dups: int, n_bad: int) -> None:
    """`dsel`: run events re-emitted into the next server's file; `msel`: sources of the
    malformed lines (rn numbers them). Both chosen by seeded hash order, exact counts."""
    con.execute(f"""
    CREATE OR REPLACE TABLE dsel AS
      SELECT uid FROM ev ORDER BY hash({s.seed}, uid, 'dupsel'), uid LIMIT {n_dups};
    CREATE OR REPLACE TABLE msel AS
      SELECT uid, row_number() OVER (ORDER BY hash({s.seed}, uid, 'mal'), uid) - 1 AS rn
      FROM ev ORDER BY hash({s.seed}, uid, 'mal'), uid LIMIT {n_bad};
    """)


def lines_query(s: Shape, lo_ns: int, hi_ns: int, newline: bool = True) -> str:
    """SQL for (file_idx, line, ts, uid) of events with time in [lo_ns, hi_ns), in file order.

    Rows: run events, their cross-server duplicates (`dsel`), malformed lines (`msel`), noise.
    file_idx = server * n_days + day index. Within a file rows are ordered by time, uid, then
    variant (a malformed line right after its source): a total order, so output is
    byte-identical across runs. Malformed lines cycle: truncated JSON, a non-object JSON
    value, an object without `time` (and with a fresh uid).
    """
    bad = ("CASE m.rn % 3 WHEN 0 THEN substr(r.line, 1, length(r.line) // 2)"
           " WHEN 1 THEN (['null', '[\"ssm.run\"]', '\"azure.run\"', '42'])[1 + (m.rn // 3) % 4]"
           f" ELSE regexp_replace(replace(r.line, r.uid::VARCHAR, "
           f"{s.uuid('r.uid', 'bad')}::VARCHAR), '\"time\":\"[^\"]*\",', '') END")
    span = f"ts >= {lo_ns} AND ts < {hi_ns}"
    return f"""
    WITH w AS (SELECT * FROM ev WHERE {span}),
    evx AS (
      SELECT *, 0 AS var FROM w
      UNION ALL SELECT w.* REPLACE ((w.server + 1) % {s.servers} AS server), 0 AS var
      FROM w SEMI JOIN dsel USING (uid)),
    mev AS (SELECT *, 1 AS var FROM w SEMI JOIN msel USING (uid)),
    runs AS ({_rendered(s, 'evx')}),
    bad AS (
      SELECT r.server, r.ts, r.uid, r.var, {bad} AS line
      FROM ({_rendered(s, 'mev')}) r JOIN msel m USING (uid)),
    al AS (
      SELECT * FROM runs UNION ALL SELECT * FROM bad
      UNION ALL SELECT server, ts, uid, 0 AS var, line FROM noise WHERE {span})
    SELECT CAST(server * {s.n_days} + (ts - {s.day0_ns}) // {DAY} AS INTEGER) AS file_idx,
           {"line || chr(10)" if newline else "line"} AS line, ts, uid
    FROM al ORDER BY file_idx, ts, uid, var
    """
