"""Lines that are not run events: noise (other event types) and malformed lines.

Noise: instance.join, session.start, user.login.
Ingest must skip them by event type (some carry failure codes: TJ002E, T1000W). Rendered in
DuckDB as whole lines (a small share of the lines); `noise` has (type, ts, uid, server, line,
user, session_id), the last two as the Athena layout's columns take them from the event.
"""

from __future__ import annotations

import re

import duckdb

from pipeline.gen import catalog as cat
from pipeline.gen.events import Shape, obj, rows_query

NOT_OBJECTS = ("null", '["ssm.run"]', '"azure.run"', "42")


def build_noise(con: duckdb.DuckDBPyConnection, s: Shape, n: int, n_inst: int) -> None:
    """`noise`: n events of other types (instance.join, session.start, user.login)."""
    build_noise_src(con, s, n, n_inst)
    con.execute(f"""
    CREATE OR REPLACE TABLE noise AS
    SELECT type, ts, uid, server,
      CASE WHEN type IN ('session.start', 'user.login') THEN usr ELSE '' END AS "user",
      CASE WHEN type = 'session.start' THEN sid ELSE '' END AS session_id,
      CASE type WHEN 'instance.join' THEN {_join(s)}
                WHEN 'session.start' THEN {_session(_ip(s))}
                ELSE {_login(_ip(s))} END AS line
    FROM noise_src LEFT JOIN inst USING (inst)
    """)


def build_noise_src(con: duckdb.DuckDBPyConnection, s: Shape, n: int, n_inst: int) -> None:
    """`noise_src`: the per-event values of `build_noise`'s n events (no text yet): j, ts,
    type, inst, ok, uid, sid, usr, ec2, server."""
    span = s.end_ns - s.start_ns
    users = "['alice', 'bob', 'carol', 'dave', 'erin', 'svc-ci']"
    first = "'instance.join'" if n_inst else "'user.login'"
    second = "'session.start'" if n_inst else "'user.login'"
    con.execute(f"""
    CREATE OR REPLACE TABLE noise_src AS
    SELECT range AS j, {s.start_ns} + {s.pick('range', 't', span)} AS ts,
           CASE WHEN {s.rnd('range', 'type')} < 0.4 THEN {first}
                WHEN {s.rnd('range', 'type')} < 0.75 THEN {second}
                ELSE 'user.login' END AS type,
           {s.pick('range', 'inst', max(n_inst, 1))} AS inst,
           {s.rnd('range', 'ok')} < 0.9 AS ok,
           {s.uuid('range', 'noise')} AS uid, {s.uuid('range', 'sid')}::VARCHAR AS sid,
           {users}[1 + {s.pick('range', 'user', 6)}] AS usr,
           {s.rnd('range', 'method')} < 0.6 AS ec2,
           {s.pick('range', 'srv', s.servers)} AS server
    FROM range({n})
    """)


def _envelope(code: str) -> list[tuple[str, str, str]]:
    return [("ei", "0", "j"), ("event", "type", "s"), ("uid", "uid::VARCHAR", "s"),
            ("code", code, "s"), ("time", "ts_str(ts)", "s"), ("cluster_name", cat.CLUSTER, "c")]


def _ip(s: Shape) -> str:
    return (f"concat('203.0.113.', 1 + {s.pick('j', 'ip', 254)}, ':',"
            f" 32768 + {s.pick('j', 'port', 28000)})")


JOIN_CODE = "CASE WHEN ok THEN 'TJ002I' ELSE 'TJ002E' END"


def join_fields(s: Shape) -> list[tuple[str, str, str]]:
    """The fields of an instance.join after its envelope, as `obj` takes them (over
    `noise_src` joined with `inst`)."""
    azure = obj([("subscription", "account", "s"), ("resource_group", "resource_group", "s")])
    ec2 = obj([("account", "account", "s"), ("instance_id", "key", "s"), ("region", "region", "s")])
    iam = obj([("account", "account", "s"),
               ("arn", "concat('arn:aws:sts::', account, ':assumed-role/TeleportDiscoveryNode/',"
                       " key)", "s"),
               ("user_id", "concat('AROA', upper(substr(md5(account), 1, 17)), ':', key)", "s")])
    return [
        ("success", "ok::VARCHAR", "j"),
        ("error", "CASE WHEN NOT ok THEN '\"token is expired or not found\"' END", "?"),
        ("addr.remote", f"concat(ip, ':', 32768 + {s.pick('j', 'jport', 28000)})", "s"),
        ("node_name", "CASE WHEN cloud = 'aws' AND ec2 THEN concat(account, '-', key)"
                      " ELSE hostname END", "s"),
        ("host_id", "host_id", "s"), ("role", "Node", "c"),
        ("method", "CASE WHEN cloud = 'azure' THEN 'azure' WHEN ec2 THEN 'ec2' ELSE 'iam' END",
         "s"),
        ("token_name", "CASE WHEN cloud = 'azure' THEN 'azure-discovery-token'"
                       " ELSE 'aws-discovery-iam-token' END", "s"),
        ("attributes", f"CASE WHEN cloud = 'azure' THEN {azure} WHEN ec2 THEN {ec2} ELSE {iam} END",
         "j")]


def _join(s: Shape) -> str:
    """instance.join (TJ002I / TJ002E): an agent joining, with join-method attributes."""
    return obj(_envelope(JOIN_CODE) + join_fields(s))


def _session(ip: str) -> str:
    """session.start (T2000I): an SSH session on an enrolled node."""
    return obj(_envelope("'T2000I'") + [
        ("user", "usr", "s"),
        ("login", "CASE WHEN cloud = 'azure' THEN 'azureuser' ELSE 'ec2-user' END", "s"),
        ("sid", "sid", "s"), ("namespace", "default", "c"), ("server_id", "host_id", "s"),
        ("server_hostname", "hostname", "s"), ("addr.remote", ip, "s"), ("proto", "ssh", "c"),
        ("size", "80:25", "c"), ("session_recording", "node", "c")])


def _login(ip: str) -> str:
    """user.login (T1000I / T1000W): an SSO login, sometimes failed."""
    return obj(_envelope("CASE WHEN ok THEN 'T1000I' ELSE 'T1000W' END") + [
        ("user", "usr", "s"), ("method", "saml", "c"), ("success", "ok::VARCHAR", "j"),
        ("error", "CASE WHEN NOT ok THEN '\"SAML response has expired\"' END", "?"),
        ("addr.remote", ip, "s"), ("user_agent", "Mozilla/5.0 (X11; Linux x86_64)", "c")])


def _malform(line: str, rn: int, uid: str, new_uid: str) -> str:
    """Malformed line number `rn` from its source line: truncated JSON, a JSON value that is
    not an object, or an object without `time` (and with a fresh uid), in turn."""
    if rn % 3 == 0:
        return line[: len(line) // 2]
    if rn % 3 == 1:
        return NOT_OBJECTS[(rn // 3) % len(NOT_OBJECTS)]
    return re.sub(r'"time":"[^"]*",', "", line.replace(uid, new_uid), count=1)


def build_bad(con: duckdb.DuckDBPyConnection, s: Shape, render) -> None:
    """Fill `bad` with the malformed lines made from the `msel` events (Python per line: few)."""
    rows = con.sql(rows_query(s, s.start_ns, s.end_ns, render.lit, only_bad_sources=True)
                   ).to_arrow_table()
    if not rows.num_rows:
        return
    sel = {u: (rn, new) for u, rn, new in con.sql(
        "SELECT uid::VARCHAR, rn, new_uid FROM msel").fetchall()}
    lines = render.lines(rows.combine_chunks().to_batches()[0]).to_pylist()
    bad = [(u, _malform(line, sel[u][0], u, sel[u][1]))
           for u, line in zip(rows["uid"].to_pylist(), lines, strict=True)]
    con.executemany("INSERT INTO bad VALUES (?::UUID, ?)", bad)
