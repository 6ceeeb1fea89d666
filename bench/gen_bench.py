"""Benchmark 1, the fleet generator: events/s writing Teleport file-log JSON lines, Athena
Parquet and a store's typed Parquet (`generate_fleet_store`), vs DuckDB alone writing the same
number of rows of a comparable schema (the same ssm.run fields, similar row width) to the same
format, interleaved."""

from __future__ import annotations

import os
import resource
import shutil

from bench.data import SEED, Ctx, dir_bytes, fleet_size
from bench.harness import Check, Row, interleave, median, timed
from bench.scales import human

NAME = "generator"

_STDOUT = ("Reading package lists...\\nBuilding dependency tree...\\nReading state information..."
           "\\nThe following NEW packages will be installed:\\n  teleport-ent\\n0 upgraded, 1 newly "
           "installed, 0 to remove and 12 not upgraded.\\nNeed to get 98.1 MB of archives.\\n"
           "Setting up teleport-ent (")

# one row per event, ssm.run's fields, values varying per row like the generator's
_ROW = f"""
    WITH g AS (SELECT i, md5(i::VARCHAR) AS h, md5((i // 3)::VARCHAR || 'c') AS c,
                      TIMESTAMP '2026-05-01' + to_microseconds(i * $step) AS t FROM range($n) r(i))
    SELECT 0 AS ei, 'ssm.run' AS event,
           concat_ws('-', h[1:8], h[9:12], h[13:16], h[17:20], h[21:32]) AS uid,
           CASE WHEN i % 7 = 0 THEN 'TDS00W' ELSE 'TDS00I' END AS code,
           strftime(t, '%Y-%m-%dT%H:%M:%S.%fZ') AS time, 'teleport.example.com' AS cluster_name,
           concat_ws('-', c[1:8], c[9:12], c[13:16], c[17:20], c[21:32]) AS command_id,
           'i-' || md5((i % 20011)::VARCHAR)[1:17] AS instance_id,
           CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END AS exit_code,
           CASE WHEN i % 7 = 0 THEN 'Failed' ELSE 'Success' END AS status,
           '0' || (62187499831 + i % 13)::VARCHAR AS account_id,
           (['us-east-1', 'eu-west-1', 'ap-southeast-2'])[1 + i % 3] AS region,
           '{_STDOUT}' || (i % 1000)::VARCHAR || ') ...\\n' AS stdout,
           CASE WHEN i % 7 = 0 THEN 'E: Could not get lock /var/lib/dpkg/lock-frontend' ELSE ''
           END AS stderr,
           'https://us-east-1.console.aws.amazon.com/systems-manager/run-command/' || c AS
           invocation_url, 'Ubuntu' AS platform_name, 'Linux' AS platform_type,
           '22.04' AS platform_version, t
    FROM g"""


def _sql(n: int, days: int) -> str:
    step = max(1, days * 86_400_000_000 // max(n, 1))
    return _ROW.replace("$n", str(n)).replace("$step", str(step))


def duckdb_jsonl(out, n: int, days: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"COPY (SELECT * EXCLUDE (t) FROM ({_sql(n, days)})) TO '{out}' (FORMAT json)")
    con.close()


_FIELDS = ("ei", "event", "uid", "code", "time", "cluster_name", "command_id", "instance_id",
           "exit_code", "status", "account_id", "region", "stdout", "stderr", "invocation_url",
           "platform_name", "platform_type", "platform_version")


def duckdb_parquet(out, n: int, days: int) -> None:
    import duckdb

    event = "struct_pack(" + ", ".join(f'"{f}" := "{f}"' for f in _FIELDS) + ")"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT uid, '' AS session_id, event AS event_type,
                   t::TIMESTAMP_MS AS event_time, '' AS "user",
                   to_json({event})::VARCHAR AS event_data, t::DATE AS day
                   FROM ({_sql(n, days)}) r)
                   TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (day))""")
    con.close()


def duckdb_typed(out, n: int, days: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * EXCLUDE (t), t AS time_ns, t::DATE AS day
                   FROM ({_sql(n, days)}) r)
                   TO '{out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1,
                   PARTITION_BY (day))""")
    con.close()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


# (output, label, target ev/s, DuckDB baseline): JSON and Athena count every line written;
# the store counts the rows it stores (runs + joins: each event once, other noise skipped)
_KINDS = (("json", "JSON lines (file log)", 250_000, duckdb_jsonl),
          ("athena", "Parquet (Athena layout)", 1_000_000, duckdb_parquet),
          ("store", "store Parquet (runs, joins, snapshots)", 1_000_000, duckdb_typed))


def _ours(ctx: Ctx, kind: str, aws: int, azure: int, days: int) -> dict:
    from pipeline.gen.generate import generate_events_parquet_athena, generate_fleet
    from pipeline.gen.tostore import generate_fleet_store

    out = ctx.tmp("gen-ours")
    fn = {"json": generate_fleet, "athena": generate_events_parquet_athena,
          "store": generate_fleet_store}[kind]
    cpu = _cpu()
    secs, s = timed(lambda: fn(out, seed=SEED, days=days, aws_instances=aws, azure_vms=azure))
    cpu = _cpu() - cpu
    size = dir_bytes(out / {"json": "auth", "athena": "athena", "store": "runs"}[kind])
    events = s.stored if kind == "store" else s.lines_written
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": secs, "cpu_seconds": cpu, "events": events, "bytes": size}


def _base(ctx: Ctx, kind: str, n: int, days: int) -> dict:
    out = ctx.tmp("gen-base")
    os.makedirs(out)
    target = out / ("events.jsonl" if kind == "json" else "parquet")
    copy = next(k[3] for k in _KINDS if k[0] == kind)
    cpu = _cpu()
    secs, _ = timed(lambda: copy(target, n, days))
    cpu = _cpu() - cpu
    size = dir_bytes(out)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": secs, "cpu_seconds": cpu, "events": n, "bytes": size}


def run(ctx: Ctx) -> list[Row]:
    s = ctx.scale
    aws, azure = fleet_size(s.gen_events, s.gen_days)
    rows = []
    for kind, label, limit, _ in _KINDS:
        n_box: list[int] = []

        def ours(kind=kind, n_box=n_box):
            res = _ours(ctx, kind, aws, azure, s.gen_days)
            n_box.append(res["events"])
            return res

        def base(kind=kind, n_box=n_box):  # same row count as ours (known after run 1)
            return _base(ctx, kind, n_box[0] if n_box else s.gen_events, s.gen_days)

        a, b = interleave(ctx.runs, ours, base, f"generator {label}")
        ours_rate = median([x["events"] / x["seconds"] for x in a])
        base_rate = median([x["events"] / x["seconds"] for x in b])
        ev = a[0]["events"]
        cpu_a, cpu_b = (median([x["cpu_seconds"] for x in xs]) for xs in (a, b))
        what = ("typed ssm.run columns (no JSON), zstd, by day" if kind == "store"
                else "to the same format")
        rows.append(Row(
            NAME, f"generator -> {label}, {human(s.gen_events)}", ours_rate, "ev/s",
            baseline=base_rate, baseline_what="DuckDB COPY of generated ssm.run-shaped rows "
            f"(same count) {what}",
            ratio=base_rate / ours_rate, ratio_what="ours time / DuckDB time",
            target=f">= {human(limit)}/s", checks=[Check("ours", "min", limit, ours_rate)],
            note=f"{ev} {'rows stored' if kind == 'store' else 'events'} ({aws} AWS + {azure}"
                 f" Azure instances, {s.gen_days} d); bytes/event ours "
                 f"{a[0]['bytes'] / ev:.0f}{' (runs/ only)' if kind == 'store' else ''}, "
                 f"baseline {b[0]['bytes'] / b[0]['events']:.0f}; whole call timed (plan, "
                 f"{'columns, write, commit, snapshot ingests' if kind == 'store' else 'render, write'}"
                 f"); CPU s (all threads, median) ours {cpu_a:.2f}, baseline {cpu_b:.2f}",
            samples={"ours": a, "base": b}))
    return rows
