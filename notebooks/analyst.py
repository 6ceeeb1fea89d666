"""Analyst notebook (marimo): which instances fail to enroll, why, how often they are retried,
whether it is getting better. Every number comes from the `sql/` relations through
`pipeline.query.analytics` (which opens the store with `pipeline.query.views.connect`).

    marimo edit notebooks/analyst.py -- --store demo/lake
    marimo export html notebooks/analyst.py -o analyst.html -- --store demo/lake --days 7
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from datetime import UTC, datetime, timedelta

    import marimo as mo

    from pipeline.publish import charts
    from pipeline.publish.history import cell, records, schema_columns
    from pipeline.query import analytics
    from pipeline.report.nodes import nodes_report
    from pipeline.report.render import render_text
    from pipeline.timeutil import to_ns
    return (UTC, analytics, cell, charts, datetime, mo, nodes_report, os, records,
            render_text, schema_columns, timedelta, to_ns)


@app.cell
def _(analytics, mo, os):
    args = mo.cli_args()
    store = str(args.get("store") or os.environ.get("DISCOVERY_HISTORY_STORE", "lake"))
    con = analytics.connect(store)  # pipeline.query.views.connect + <store>/failure_reasons.csv
    mo.md(f"# Teleport auto-discovery history\n\nStore: `{store}`")
    return args, con


@app.cell
def _(UTC, args, con, datetime, mo, timedelta):
    # The window: --from/--to, else the last --days (7) whole UTC days of stored events.
    newest = con.sql("SELECT max(time) FROM runs").fetchall()[0][0]
    if args.get("to"):
        end = datetime.fromisoformat(str(args["to"])).replace(tzinfo=UTC)
    elif newest is None:
        end = datetime(1970, 1, 2, tzinfo=UTC)
    else:
        end = datetime(newest.year, newest.month, newest.day, tzinfo=UTC) + timedelta(days=1)
    days = int(args.get("days") or 7)
    start = (datetime.fromisoformat(str(args["from"])).replace(tzinfo=UTC) if args.get("from")
             else end - timedelta(days=days))
    mo.md(f"Window: **{start:%Y-%m-%d %H:%M}** to **{end:%Y-%m-%d %H:%M}** UTC (half-open).")
    return end, start


@app.cell
def _(cell, records, schema_columns):
    def show(table, limit=None):
        """An analytics table as readable rows (RFC 3339 times, Go durations, percents)."""
        cols = schema_columns(table)
        rows = records(table)[:limit]
        return [{c.header: cell(r[c.field], c.kind) for c in cols} for r in rows]
    return (show,)


@app.cell
def _(analytics, con, end, mo, show, start):
    summary = analytics.summary(con, start, end)
    mo.vstack([mo.md("## 1. How much was attempted, and how much failed?"),
               mo.ui.table(show(summary), selection=None)])
    return


@app.cell
def _(analytics, charts, con, end, mo, records, start, to_ns):
    trends = analytics.failure_trends(con, start, end, bucket="day", by="category")
    trend_fig = charts.trend_figure(records(trends), to_ns(start), to_ns(end), "day")
    mo.vstack([mo.md("## 2. Is it getting better? Failed attempts per day by reason"), trend_fig])
    return


@app.cell
def _(analytics, charts, con, end, mo, records, show, start):
    reasons = analytics.top_reasons(con, start, end)
    mo.vstack([mo.md("## 3. Which failure reasons dominate, and what to do about them"),
               charts.reasons_figure(records(reasons)),
               mo.ui.table(show(reasons), selection=None)])
    return


@app.cell
def _(analytics, con, end, mo, records, show, start):
    history = analytics.instance_history(con, start, end)
    failing = [r for r in records(history) if r["failures"]]
    mo.vstack([mo.md(f"## 4. Which instances failed, and how often were they retried?\n\n"
                     f"{len(failing)} of {history.num_rows} attempted instances failed at least "
                     "once; most failures first."),
               mo.ui.table(show(history, limit=50), selection=None)])
    return failing, history


@app.cell
def _(failing, mo):
    from matplotlib.figure import Figure

    retry_fig = Figure(figsize=(8, 3), layout="constrained")
    ax = retry_fig.add_subplot()
    ax.hist([r["attempts"] - 1 for r in failing] or [0], bins=30, color="#4e79a7")
    ax.set_xlabel("retries per failing instance")
    ax.set_ylabel("instances")
    mo.vstack([mo.md("### Retries per failing instance"), retry_fig])
    return (Figure,)


@app.cell
def _(Figure, failing, mo):
    dup = {}
    for _r in failing:
        _key = f"{_r['account_id']} {_r['region']}"
        dup[_key] = dup.get(_key, 0) + _r["duplicate_runs"]
    dup = dict(sorted(((k, v) for k, v in dup.items() if v), key=lambda kv: -kv[1])[:12])
    dup_fig = Figure(figsize=(8, 0.4 * max(len(dup), 2) + 1), layout="constrained")
    dax = dup_fig.add_subplot()
    dax.barh(list(dup)[::-1], list(dup.values())[::-1], color="#f28e2b")
    dax.set_xlabel("duplicate runs (attempts < 2 min after the previous one)")
    mo.vstack([mo.md("## 5. Overlapping matchers: duplicate runs by account and region"),
               dup_fig if dup else mo.md("No duplicate runs.")])
    return


@app.cell
def _(Figure, history, mo, records):
    enrolled = [r["time_to_enroll"] / 3.6e12 for r in records(history) if r["time_to_enroll"]]
    enroll_fig = Figure(figsize=(8, 3), layout="constrained")
    eax = enroll_fig.add_subplot()
    eax.hist(enrolled or [0], bins=30, color="#59a14f")
    eax.set_xlabel("hours from first attempt to enrolment (instances that failed first)")
    mo.vstack([mo.md("## 6. How long does enrolment take after a failure?"), enroll_fig])
    return


@app.cell
def _(analytics, con, end, mo, records, show, start):
    period = end - start
    changes = analytics.compare_periods(con, (start - period, start), (start, end))
    counts = {}
    for _r in records(changes):
        counts[_r["change"]] = counts.get(_r["change"], 0) + 1
    mo.vstack([mo.md("## 7. What changed since the previous period? "
                     + ", ".join(f"{k}: **{v}**" for k, v in counts.items())),
               mo.ui.table(show(changes, limit=50), selection=None)])
    return


@app.cell
def _(analytics, con, end, failing, mo, show, start):
    worst = failing[0]["instance_key"] if failing else None
    timeline = analytics.attempts(con, start, end, instance=worst) if worst else None
    mo.vstack([mo.md(f"## 8. The timeline of the most-failing instance: `{worst}`"),
               mo.ui.table(show(timeline, limit=100), selection=None) if worst
               else mo.md("No failing instance.")])
    return


@app.cell
def _(con, end, mo, nodes_report, render_text, start):
    rows = nodes_report(con, start, end, failures_only=True)
    mo.vstack([mo.md("## 9. `tctl discovery nodes --failures-only` for the window"),
               mo.plain_text(render_text(rows, width=160).decode())])
    return


if __name__ == "__main__":
    app.run()
