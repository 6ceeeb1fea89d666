"""Benchmark 5, report latency over the history store, in-process on open connections:
`nodes_report` for 24 h vs the same SQL over the raw JSON lines; latest status of every
instance over the whole history; trends by day over the whole history."""

from __future__ import annotations

import duckdb

from bench.child import bare_columns
from bench.data import Ctx, History, ensure_history
from bench.harness import Check, Row, interleave, log, median, timed
from bench.scales import human

NAME = "report"
WHOLE_RAW_MAX_BYTES = 3 * 2**30  # above this the whole-log baseline takes minutes per run


def raw_runs_view(files: list[str]) -> str:
    """`runs` as a view straight over raw JSON lines: the store's columns derived with the
    ingest's own expressions, text '' and integers 0 when absent (as stored)."""
    from pipeline.ingest.events import derived
    from pipeline.store.layout import RUNS

    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    cols = []
    for c, typ in RUNS.columns + RUNS.partition:
        if c in ("raw", "extra", "source", "ingest_id"):  # provenance: not in the report
            cols.append(f"NULL::VARCHAR AS {c}")
        elif c == "time_text":
            cols.append("CAST(time AS VARCHAR) AS time_text")
        elif typ == "VARCHAR":
            cols.append(f"coalesce({derived(c)}, '') AS {c}")
        elif typ == "BIGINT":
            cols.append(f"coalesce({derived(c)}, 0) AS {c}")
        else:
            cols.append(f"{derived(c)} AS {c}")
    return (f"CREATE OR REPLACE VIEW runs AS SELECT {', '.join(cols)} FROM read_ndjson({listed},"
            f" columns = {bare_columns()}, ignore_errors = true) "
            "WHERE event IN ('ssm.run', 'azure.run') AND time IS NOT NULL")


def raw_connection(h: History, files: list[str]) -> duckdb.DuckDBPyConnection:
    """Our connection (snapshots, every sql/ relation) with `runs`, and `runs_on_days` (what
    runs_in_window reads: the store's files of those days), replaced by the raw view."""
    from pipeline.query import connect

    con = connect(h.store)
    con.execute(raw_runs_view(files))
    con.execute("CREATE OR REPLACE MACRO runs_on_days(first_day, last_day) AS TABLE "
                "SELECT * FROM runs WHERE event_date BETWEEN first_day AND last_day")
    return con


def _ms(fn) -> dict:
    secs, out = timed(fn)
    return {"seconds": secs, "ms": secs * 1000, "rows": out}


def _nodes_rows(ctx: Ctx, h: History, con) -> list[Row]:
    from pipeline.query import nodes_report

    lo, hi = h.report_window
    ours_rows = nodes_report(con, lo, hi)
    variants = [("window's day files", h.day_files(lo, hi), ctx.scale.report_runs)]
    raw_bytes = h.doc["raw_bytes"]
    if raw_bytes <= WHOLE_RAW_MAX_BYTES:
        variants.append(("whole raw log", h.history_files, ctx.runs))
    rows = []
    for label, files, runs in variants:
        raw = raw_connection(h, files)
        same = nodes_report(raw, lo, hi) == ours_rows
        a, b = interleave(runs, lambda: _ms(lambda: len(nodes_report(con, lo, hi))),
                          lambda r=raw: _ms(lambda: len(nodes_report(r, lo, hi))),
                          f"nodes 24h vs {label}")
        raw.close()
        ours, base = median([x["ms"] for x in a]), median([x["ms"] for x in b])
        checks = [Check("ratio", "min", 100, base / ours)]
        if not rows:
            checks.insert(0, Check("ours", "max", 100, ours))
        rows.append(Row(
            NAME, f"nodes 24h (vs raw JSON: {label})", ours, "ms", baseline=base,
            baseline_what=f"the same discovery_nodes SQL with runs = read_ndjson over {label}"
                          f" ({len(files)} files)",
            ratio=base / ours, ratio_what="raw time / ours (speed-up)",
            target=("<= 100 ms; " if len(checks) == 2 else "") + ">= 100x", checks=checks,
            note=f"{len(ours_rows)} report rows, identical to the raw baseline's: {same}",
            samples={"ours_ms": [x["ms"] for x in a], "base_ms": [x["ms"] for x in b],
                     "same_rows": same}))
    return rows


def _whole(con) -> tuple[int, int]:
    lo, hi = con.execute("SELECT epoch_ns(min(time)), epoch_ns(max(time)) + 1 FROM runs"
                         ).fetchall()[0]
    return lo, hi


W = "make_timestamp_ns($1), make_timestamp_ns($2)"
STATUS = "time, is_failure, exit_code, api_error"  # what a status line needs of the newest run


def _query_row(con, name: str, ours_sql: str, base_sql: str, base_what: str, limit: float,
               runs: int, params: list, note: str = "") -> Row:
    a, b = interleave(runs, lambda: _ms(lambda: con.execute(ours_sql, params).fetchall()),
                      lambda: _ms(lambda: con.execute(base_sql, params).fetchall()), name)
    ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
    return Row(NAME, name, ours, "s", baseline=base, baseline_what=base_what,
               ratio=ours / base, ratio_what="ours time / baseline time",
               target=f"<= {limit:g} s", checks=[Check("ours", "max", limit, ours)], note=note,
               samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                        "ours_rows": len(a[0]["rows"]), "base_rows": len(b[0]["rows"]),
                        "ours_first": a[0]["rows"][:3], "base_first": b[0]["rows"][:3]})


def run(ctx: Ctx) -> list[Row]:
    from pipeline.query import connect

    h = ensure_history(ctx)
    stored = h.doc["ingest"]["stored"]
    log(f"report benchmarks over {h.store} ({stored} events)")
    conn_a, conn_b = interleave(ctx.scale.report_runs,
                                lambda: {"seconds": timed(lambda: connect(h.store).close())[0]},
                                lambda: {"seconds": timed(lambda: duckdb.connect().close())[0]})
    con = connect(h.store)
    rows = [Row(NAME, "connect (views + sql/ relations)", median([x["seconds"] for x in conn_a]),
                "s", baseline=median([x["seconds"] for x in conn_b]),
                baseline_what="duckdb.connect() alone", note="paid once per process (CLI)")]
    rows += _nodes_rows(ctx, h, con)
    lo, hi = _whole(con)
    span = f"whole history ({ctx.scale.history_days} d, {human(stored)} events)"
    # the status columns are fetched: over a bare count(*) the engine skips computing them
    rows.append(_query_row(
        con, f"latest_runs status of every instance, {span}",
        f"SELECT cloud, instance_key, {STATUS} FROM latest_runs({W})",
        f"SELECT cloud, instance_key, arg_max(({STATUS}), (time, ei, uid)) FROM runs"
        " WHERE time >= make_timestamp_ns($1) AND time < make_timestamp_ns($2)"
        " AND instance_key <> '' GROUP BY ALL",
        "arg_max per instance over the same runs view (the engine's cheapest shape)", 3,
        ctx.runs, [lo, hi], note=f"fetched: cloud, instance_key, {STATUS}"))
    has_trends = con.execute("SELECT count(*) FROM duckdb_functions() "
                             "WHERE function_name = 'failure_trends'").fetchall()[0][0] > 0
    base_sql = ("SELECT date_trunc('day', time) AS day, cloud, count(*), count(*) FILTER "
                "(WHERE is_failure) FROM runs WHERE time >= make_timestamp_ns($1) "
                "AND time < make_timestamp_ns($2) GROUP BY ALL ORDER BY ALL")
    base_what = "GROUP BY day, cloud over the runs view (events, failures)"
    if has_trends:
        for dim in ("cloud", "category"):
            rows.append(_query_row(
                con, f"failure_trends day/{dim}, {span}",
                f"SELECT * FROM failure_trends({W}, 'day', '{dim}')", base_sql, base_what, 2,
                ctx.runs, [lo, hi], note="sql/140_failure_trends.sql (attempts, classified)"))
    else:
        rows.append(_query_row(con, f"trends by day (no trends relation), {span}", base_sql,
                               base_sql, base_what, 2, ctx.runs, [lo, hi],
                               note="no failure_trends relation loaded: GROUP BY day measured"))
    con.close()
    return rows
