"""Benchmark 5b (issue 18.2), the 24 h `nodes` report over the history store: `nodes_frame`
(the report's Arrow columns, what the renderers take; `nodes_report` would add a Python object
per row) in-process on an open connection (the whole report and `--failures-only`) vs the same SQL with
`runs` read from the raw JSON lines; opening the store; and the whole CLI process an SRE runs,
`nodes --last 24h --failures-only`, vs the interpreter importing the two engines; and tctl's text
and JSON rendered from the report's columns vs the renderers before (frozen in the tests). A one-day
window needs no rollups, so the history store is used as it is (none are refreshed)."""

from __future__ import annotations

import sys

import duckdb

from bench.child import bare_columns
from bench.data import Ctx, History, ensure_generated_report_history, ensure_history
from bench.harness import Check, Row, interleave, log, median, sample, timed

NAME = "nodes"
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


def _nodes_rows(ctx: Ctx, h: History, con) -> list[Row]:
    from pipeline.report.nodes import nodes_frame

    lo, hi = h.report_window
    variants = [("window's day files", h.day_files(lo, hi), ctx.scale.report_runs, False),
                ("window's day files", h.day_files(lo, hi), ctx.scale.report_runs, True)]
    raw_bytes = h.doc["raw_bytes"]
    if raw_bytes <= WHOLE_RAW_MAX_BYTES:
        variants.append(("whole raw log", h.history_files, ctx.runs, False))
    rows = []
    for label, files, runs, failures in variants:
        ours_rows = nodes_frame(con, lo, hi, failures_only=failures)
        raw = raw_connection(h, files)
        same = nodes_frame(raw, lo, hi, failures_only=failures).equals(ours_rows)
        what = "nodes 24h" + (" --failures-only" if failures else "")
        a, b = interleave(runs, lambda f=failures: sample(
                              lambda: nodes_frame(con, lo, hi, failures_only=f).num_rows),
                          lambda r=raw, f=failures: sample(
                              lambda: nodes_frame(r, lo, hi, failures_only=f).num_rows),
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
            note=f"{ours_rows.num_rows} report rows (the Arrow frame), identical to the raw "
                 f"baseline's: {same}",
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


def _render_rows(ctx: Ctx, h: History, con) -> list[Row]:
    """tctl's text and JSON for the whole 24 h report from its Arrow frame (what the CLI does)
    against the renderers before they took columns, frozen in tests/report/reference/ (the
    differential tests' oracle), fed the report as NodeRows: same bytes, checked."""
    from pipeline.report.nodes import nodes_frame, nodes_report
    from pipeline.report.render import RENDERERS
    from tests.report.reference import render as reference

    lo, hi = h.report_window
    frame, rows = nodes_frame(con, lo, hi), nodes_report(con, lo, hi)
    out = []
    for fmt in ("text", "json"):
        def ours(f=fmt):
            return RENDERERS[f](frame, width=160) if f == "text" else RENDERERS[f](frame)

        def before(f=fmt):
            return (reference.RENDERERS[f](rows, width=160) if f == "text"
                    else reference.RENDERERS[f](rows))

        same = ours() == before()
        a, b = interleave(ctx.scale.report_runs, lambda o=ours: sample(o),
                          lambda r=before: sample(r), f"render {fmt}")
        t_ours, t_base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
        out.append(Row(
            NAME, f"render {fmt}, the whole 24 h report", t_ours, "s", baseline=t_base,
            baseline_what="the renderers before (row objects), frozen in tests/report/reference",
            ratio=t_ours / t_base, ratio_what="ours time / before", target="<= 0.3 s",
            checks=[Check("ours", "max", 0.3, t_ours)],
            note=f"{frame.num_rows} rows, {len(a[0]['rows'])} bytes; byte-identical: {same}",
            samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                     "same_bytes": same}))
    return out


def run(ctx: Ctx) -> list[Row]:
    from pipeline.query.views import connect

    if ctx.history == "generated":
        h = ensure_generated_report_history(ctx, rollups=False)
    else:
        h = ensure_history(ctx, rollups=False)
    log(f"nodes benchmarks over {h.store} ({h.doc['ingest']['stored']} events)")
    rows = []
    for what, through in (("every sql/ relation", None), ("through discovery_nodes", "discovery_nodes")):
        a, b = interleave(ctx.scale.report_runs,
                          lambda t=through: {"seconds": timed(
                              lambda: connect(h.store, through=t).close())[0]},
                          lambda: {"seconds": timed(lambda: duckdb.connect().close())[0]},
                          f"connect, {what}")
        rows.append(Row(NAME, f"connect ({what})", median([x["seconds"] for x in a]), "s",
                        baseline=median([x["seconds"] for x in b]),
                        baseline_what="duckdb.connect() alone",
                        note="paid once per process (the CLI's nodes connects through "
                             "discovery_nodes)"))
    con = connect(h.store)
    rows += _nodes_rows(ctx, h, con)
    rows += _render_rows(ctx, h, con)
    con.close()
    rows.append(_cli_row(ctx, h))
    return rows
