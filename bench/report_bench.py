"""Benchmark 5, year-long questions over the history store, in-process on an open connection:
latest status of every instance and trends by day over the whole history (with the rollups
brought up to date first, and without them). The 24 h `nodes` report is `bench.nodes_bench`."""

from __future__ import annotations

from bench.data import Ctx, ensure_generated_report_history, ensure_history
from bench.harness import Check, Row, interleave, log, median, sample
from bench.scales import human

NAME = "report"


def _whole(con) -> tuple[int, int]:
    lo, hi = con.execute("SELECT epoch_ns(min(time)), epoch_ns(max(time)) + 1 FROM runs"
                         ).fetchall()[0]
    return lo, hi


W = "make_timestamp_ns($1), make_timestamp_ns($2)"
STATUS = "time, is_failure, exit_code, api_error"  # what a status line needs of the newest run


def _query_row(name: str, ours_fn, base_fn, base_what: str, limit: float, runs: int,
               note: str = "") -> Row:
    """`ours_fn` and `base_fn` (each returning rows, a list or a table) timed interleaved."""
    a, b = interleave(runs, lambda: sample(ours_fn), lambda: sample(base_fn), name)
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
    con = connect(h.store)
    rows = []
    if "rollup" in h.doc:
        r = h.doc["rollup"]
        rows.append(Row(NAME, f"rollup refresh: {r['months_built']} months, {r['days_built']} days",
                        r["seconds"], "s", note="last full build (discovery-history rollup)"))
    lo, hi = _whole(con)
    span = f"whole history ({ctx.scale.history_days} d, {human(stored)} events)"
    runs_only = connect(h.store)
    rollups.ignore_latest(runs_only)
    rows += _latest_rows(con, runs_only, lo, hi, span, ctx.runs)
    runs_only.close()
    rows += _trend_rows(con, lo, hi, span, ctx.runs)
    con.close()
    return rows
