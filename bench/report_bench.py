"""Benchmark 5, report latency over the history store, in-process on open connections:
`nodes_report` for 24 h vs the same SQL over the raw JSON lines; latest status of every
instance over the whole history; trends by day over the whole history."""

from __future__ import annotations

import sys

import duckdb

from bench.child import bare_columns
from bench.data import Ctx, History, ensure_generated_report_history, ensure_history
from bench.harness import Check, Row, interleave, log, median, timed
from bench.scales import human

NAME = "report"
WHOLE_RAW_MAX_BYTES = 3 * 2**30  # above this the whole-log baseline takes minutes per run


def raw_runs_view(files: list[str]) -> str:
    """`runs` as a view straight over raw JSON lines: the store's columns derived with the
    ingest's own expressions, text '' and integers 0 when absent (as stored)."""
    from pipeline.store.layout import RUNS, derived

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
    from pipeline.query import rollups
    from pipeline.query.views import connect

    con = connect(h.store)
    con.execute(raw_runs_view(files))
    con.execute("CREATE OR REPLACE MACRO runs_on_days(first_day, last_day, skip_months := "
                "[]::DATE[]) AS TABLE SELECT * FROM runs WHERE event_date BETWEEN first_day "
                "AND last_day")
    rollups.ignore_latest(con)  # no rollups of raw JSON
    return con


def _ms(fn) -> dict:
    secs, out = timed(fn)
    return {"seconds": secs, "ms": secs * 1000, "rows": out}


def _nodes_rows(ctx: Ctx, h: History, con) -> list[Row]:
    from pipeline.report.nodes import nodes_report

    lo, hi = h.report_window
    variants = [("window's day files", h.day_files(lo, hi), ctx.scale.report_runs, False),
                ("window's day files", h.day_files(lo, hi), ctx.scale.report_runs, True)]
    raw_bytes = h.doc["raw_bytes"]
    if raw_bytes <= WHOLE_RAW_MAX_BYTES:
        variants.append(("whole raw log", h.history_files, ctx.runs, False))
    rows = []
    for label, files, runs, failures in variants:
        ours_rows = nodes_report(con, lo, hi, failures_only=failures)
        raw = raw_connection(h, files)
        same = nodes_report(raw, lo, hi, failures_only=failures) == ours_rows
        what = "nodes 24h" + (" --failures-only" if failures else "")
        a, b = interleave(runs, lambda f=failures: _ms(
                              lambda: len(nodes_report(con, lo, hi, failures_only=f))),
                          lambda r=raw, f=failures: _ms(
                              lambda: len(nodes_report(r, lo, hi, failures_only=f))),
                          f"{what} vs {label}")
        raw.close()
        ours, base = median([x["ms"] for x in a]), median([x["ms"] for x in b])
        checks = [Check("ratio", "min", 100, base / ours)]
        if label == "window's day files":
            checks.insert(0, Check("ours", "max", 100, ours))
        rows.append(Row(
            NAME, f"{what} (vs raw JSON: {label})", ours, "ms", baseline=base,
            baseline_what=f"the same discovery_nodes SQL with runs = read_ndjson over {label}"
                          f" ({len(files)} files)",
            ratio=base / ours, ratio_what="raw time / ours (speed-up)",
            target=("<= 100 ms; " if len(checks) == 2 else "") + ">= 100x", checks=checks,
            note=f"{len(ours_rows)} report rows, identical to the raw baseline's: {same}",
            samples={"ours_ms": [x["ms"] for x in a], "base_ms": [x["ms"] for x in b],
                     "same_rows": same}))
    return rows


def _cli_row(ctx: Ctx, h: History) -> Row:
    """The whole CLI process for the window's report, failures only (what an SRE types), against
    the interpreter importing the two engines every such process needs."""
    from bench.cli_bench import _wall, import_profile, script

    lo, hi = h.report_window
    args = ["--store", str(h.store), "nodes", "--last", "24h", "--to",
            hi.strftime("%Y-%m-%dT%H:%M:%SZ"), "--failures-only", "--width", "160"]
    floor = [sys.executable, "-c", "import duckdb, pyarrow"]
    a, b = interleave(ctx.scale.cli_runs, lambda: _wall([script(), *args]), lambda: _wall(floor),
                      "nodes --last 24h --failures-only, whole process")
    ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
    prof = import_profile(args)
    return Row(
        NAME, "`nodes --last 24h --failures-only`, whole CLI process", ours, "s", baseline=base,
        baseline_what="`python -c 'import duckdb, pyarrow'` (the interpreter and the two engines)",
        ratio=ours / base, ratio_what="ours wall / that floor's wall", target="<= 0.5 s",
        checks=[Check("ours", "max", 0.5, ours)],
        note=f"{a[0]['stdout_bytes']} bytes of report; {prof['modules']} modules imported; "
             f"slowest packages (ms, cumulative): {prof['slowest_ms']}",
        samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                 "imports": prof, "argv": args})


def _whole(con) -> tuple[int, int]:
    lo, hi = con.execute("SELECT epoch_ns(min(time)), epoch_ns(max(time)) + 1 FROM runs"
                         ).fetchall()[0]
    return lo, hi


W = "make_timestamp_ns($1), make_timestamp_ns($2)"
STATUS = "time, is_failure, exit_code, api_error"  # what a status line needs of the newest run


def _query_row(name: str, ours_fn, base_fn, base_what: str, limit: float, runs: int,
               note: str = "") -> Row:
    """`ours_fn` and `base_fn` (each returning rows, a list or a table) timed interleaved."""
    a, b = interleave(runs, lambda: _ms(ours_fn), lambda: _ms(base_fn), name)
    ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
    return Row(NAME, name, ours, "s", baseline=base, baseline_what=base_what,
               ratio=ours / base, ratio_what="ours time / baseline time",
               target=f"<= {limit:g} s", checks=[Check("ours", "max", limit, ours)], note=note,
               samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                        "ours_rows": len(a[0]["rows"]), "base_rows": len(b[0]["rows"])})


def _sql(con, sql: str, params: list):
    return lambda: con.execute(sql, params).fetchall()


def _latest_rows(con, runs_only, lo: int, hi: int, span: str, runs: int) -> list[Row]:
    """Latest status with the month rollups (what users get) and from runs alone."""
    ours = f"SELECT cloud, instance_key, {STATUS} FROM latest_runs({W}) ORDER BY ALL"
    base = (f"SELECT cloud, instance_key, arg_max(({STATUS}), (time, ei, uid)) FROM runs"
            " WHERE time >= make_timestamp_ns($1) AND time < make_timestamp_ns($2)"
            " AND instance_key <> '' GROUP BY ALL")
    base_what = "arg_max per instance over the runs view (the engine's cheapest full scan)"
    same = _sql(con, ours, [lo, hi])() == _sql(runs_only, ours, [lo, hi])()
    months = len(con.execute(f"SELECT rolled_months({W})", [lo, hi]).fetchall()[0][0])
    # the status columns are fetched: over a bare count(*) the engine skips computing them
    return [_query_row(f"latest_runs status of every instance, {span}",
                       _sql(con, ours, [lo, hi]), _sql(con, base, [lo, hi]), base_what, 3, runs,
                       note=f"{months} whole months from rollup_latest, the rest scanned; rows "
                            f"identical to runs only: {same}"),
            _query_row(f"latest_runs status of every instance, runs only, {span}",
                       _sql(runs_only, ours, [lo, hi]), _sql(con, base, [lo, hi]), base_what, 3,
                       runs, note="no rollups (before the first refresh, or all stale)")]


def _trend_rows(con, lo: int, hi: int, span: str, runs: int) -> list[Row]:
    from pipeline.query import analytics, rollups

    base = ("SELECT date_trunc('day', time) AS day, cloud, count(*), count(*) FILTER "
            "(WHERE is_failure) FROM runs WHERE time >= make_timestamp_ns($1) "
            "AND time < make_timestamp_ns($2) GROUP BY ALL ORDER BY ALL")
    plan = rollups.plan_trends(con, lo, hi)
    live_days = sum((b - a).days + 1 for a, b in plan.live)
    rows = []
    for dim in ("cloud", "category"):
        rows.append(_query_row(
            f"failure_trends day/{dim}, {span}",
            lambda dim=dim: analytics.failure_trends(con, lo, hi, bucket="day", by=dim),
            _sql(con, base, [lo, hi]), "GROUP BY day, cloud over the runs view (events, failures)",
            2, runs, note=f"analytics.failure_trends: {len(plan.rolled)} days from rollup_trends,"
                          f" {live_days} computed from runs"))
    return rows


def run(ctx: Ctx) -> list[Row]:
    from pipeline.query import rollups
    from pipeline.query.views import connect

    h = ensure_generated_report_history(ctx) if ctx.history == "generated" else ensure_history(ctx)
    stored = h.doc["ingest"]["stored"]
    log(f"report benchmarks over {h.store} ({stored} events)")
    conn_a, conn_b = interleave(ctx.scale.report_runs,
                                lambda: {"seconds": timed(lambda: connect(h.store).close())[0]},
                                lambda: {"seconds": timed(lambda: duckdb.connect().close())[0]})
    con = connect(h.store)
    rows = [Row(NAME, "connect (views + sql/ relations)", median([x["seconds"] for x in conn_a]),
                "s", baseline=median([x["seconds"] for x in conn_b]),
                baseline_what="duckdb.connect() alone", note="paid once per process (CLI)")]
    if "rollup" in h.doc:
        r = h.doc["rollup"]
        rows.append(Row(NAME, f"rollup refresh: {r['months_built']} months, {r['days_built']} days",
                        r["seconds"], "s", note="last full build (discovery-history rollup)"))
    rows += _nodes_rows(ctx, h, con)
    rows.append(_cli_row(ctx, h))
    lo, hi = _whole(con)
    span = f"whole history ({ctx.scale.history_days} d, {human(stored)} events)"
    runs_only = connect(h.store)
    rollups.ignore_latest(runs_only)
    rows += _latest_rows(con, runs_only, lo, hi, span, ctx.runs)
    runs_only.close()
    rows += _trend_rows(con, lo, hi, span, ctx.runs)
    con.close()
    return rows
