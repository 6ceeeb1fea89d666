"""The SQL stage: expand planned episodes into audit events, one narrow row per line.

All per-event randomness is `hash(seed, ids…, salt)` inside DuckDB, so the expansion is
vectorised and deterministic. Tables created on the connection: `ev` (run events, from the
install runs of `attempts_sql`), `dsel`/`msel` (events to duplicate / to malform), `bad`
(the malformed lines). `rows_query` returns the lines of a time span as template ids plus
per-event values (`pipeline.gen.templates` has the templates, `pipeline.gen.render`
assembles the text); it also reads `noise` (other event types, see `pipeline.gen.noise`).
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


def attempts_sql(s: Shape) -> str:
    """SQL of the install runs, one row each (main run 0, overlapping-matcher duplicate run 1),
    as CTEs ending in `att`."""
    jit = cat.JITTER_SECONDS * NS
    legacy_until = s.start_ns + int((s.end_ns - s.start_ns) * cat.LEGACY_UNTIL_SHARE)
    return f"""
    exp AS (SELECT inst, ep, kind, t0, unnest(range(n)) AS k FROM ep),
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
      FROM main m JOIN inst i USING (inst) WHERE i.dup),
    att AS (SELECT * FROM main UNION ALL SELECT * FROM dup)"""


def build_events(con: duckdb.DuckDBPyConnection, s: Shape) -> None:
    """`ev`: run events in the window (incl. the extra first-step event of some SSM runs),
    with ids, auth server and failure flag."""
    con.execute(f"""
    CREATE OR REPLACE TABLE ev AS
    WITH {attempts_sql(s)},
    a AS (SELECT *, 0 AS step FROM att WHERE ts >= {s.start_ns} AND ts < {s.end_ns}),
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


def select_extras(con: duckdb.DuckDBPyConnection, s: Shape, n_dups: int, n_bad: int) -> None:
    """`dsel`: run events re-emitted into the next server's file; `msel`: sources of the
    malformed lines (rn numbers them, new_uid for the kind that gets a fresh uid). Both
    chosen by seeded hash order, exact counts; `bad` (their lines) starts empty."""
    con.execute(f"""
    CREATE OR REPLACE TABLE dsel AS
      SELECT uid FROM ev ORDER BY hash({s.seed}, uid, 'dupsel'), uid LIMIT {n_dups};
    CREATE OR REPLACE TABLE msel AS
      SELECT uid, row_number() OVER (ORDER BY h, uid) - 1 AS rn,
             {s.uuid('uid', 'bad')}::VARCHAR AS new_uid
      FROM (SELECT uid, hash({s.seed}, uid, 'mal') AS h FROM ev ORDER BY h, uid LIMIT {n_bad});
    CREATE OR REPLACE TABLE bad (uid UUID, line VARCHAR);
    """)


SORT_KEYS = [("key", "ascending"), ("uid", "ascending"), ("var", "ascending")]


def rows_query(s: Shape, lo_ns: int, hi_ns: int, lit: int, *, athena: bool = False,
               only_bad_sources: bool = False) -> str:
    """SQL for the lines with time in [lo_ns, hi_ns), one narrow row each, unordered.

    Rows: run events (template `g` of `tpl`, per-event slot values uid, cmd, status, pid),
    their cross-server duplicates (`dsel`), malformed lines (`bad`, var 1: right after their
    source) and noise, the last two as literal `line`s with template `lit`. file_idx =
    server * n_days + day index; file order is (key, uid, var), key = the file's day start
    plus the time since (`SORT_KEYS`): a total order, so output is byte-identical across
    runs. `athena` adds event_type, user and session_id; `only_bad_sources` gives just the
    (unduplicated) sources of `msel`.
    """
    span = f"ts >= {lo_ns} AND ts < {hi_ns}"
    status = ("CASE WHEN t.has_status THEN split_part(t.statuses, '|', 1 + "
              + s.pick("e.uid", "st", "t.n_status") + ") ELSE '' END")
    pid = f"CASE WHEN t.has_pid THEN CAST(1000 + {s.pick('e.uid', 'pid', 60000)} AS VARCHAR) END"
    extra = ", event_type, \"user\", session_id" if athena else ""
    if only_bad_sources:
        evx = f"SELECT *, 0 AS var FROM ev SEMI JOIN msel USING (uid) WHERE {span}"
        others = ""
    else:
        evx = f"""
      SELECT *, 0 AS var FROM w
      UNION ALL SELECT w.* REPLACE ((w.server + 1) % {s.servers} AS server), 0 AS var
      FROM w SEMI JOIN dsel USING (uid)"""
        others = f"""
      UNION ALL
      SELECT w.server, w.ts, w.uid, 1 AS var, {lit} AS g, '' AS cmd, '' AS status, '' AS pid,
             b.line, CASE WHEN w.kind LIKE 'aws%' THEN 'ssm.run' ELSE 'azure.run' END,
             '' AS "user", '' AS session_id
      FROM w JOIN bad b USING (uid)
      UNION ALL
      SELECT server, ts, uid, 0 AS var, {lit} AS g, '', '', '', line, type, "user", session_id
      FROM noise WHERE {span}"""
    return f"""
    WITH w AS (SELECT * FROM ev WHERE {span}),
    evx AS ({evx}),
    al AS (
      SELECT e.server, e.ts, e.uid, e.var, t.g,
             CASE WHEN t.has_cmd THEN e.command_id::VARCHAR ELSE '' END AS cmd,
             {status} AS status, coalesce({pid}, '') AS pid, '' AS line, t.event_type,
             '' AS "user", '' AS session_id
      FROM evx e JOIN tpl t USING (inst, kind){others})
    SELECT CAST(server * {s.n_days} + (ts - {s.day0_ns}) // {DAY} AS INTEGER) AS file_idx,
           server * {s.n_days * DAY} + (ts - {s.day0_ns}) AS key, CAST(var AS TINYINT) AS var,
           g, uid::VARCHAR AS uid, ts, cmd, status, pid, line{extra}
    FROM al
    """


