"""CLI commands over the stored history: `history INSTANCE`, `trends`, `report`.

They adapt arguments, call `pipeline.query.analytics` / `pipeline.publish`, and print; errors
become one line through `pipeline.cli.common.friendly`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime

import click

from pipeline.cli.common import friendly, resolve_window, store_of, terminal_width
from pipeline.publish.history import FORMATS, Column

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DIMENSION_CHOICES = {"cloud": "cloud", "account": "account", "region": "region",
                     "exit-code": "exit_code", "category": "category"}
KEY_HEADERS = {"cloud": "Cloud", "account": "Account", "region": "Region",
               "exit_code": "Exit code", "category": "Reason"}
ATTEMPT_TEXT = (
    Column("Time", "time", "time"), Column("Result", "result"),
    Column("Exit", "exit_code", "int"), Column("Reason", "reason"),
    Column("Since previous", "since_previous", "duration"), Column("Output", "output"),
)
ATTEMPT_FULL = (
    Column("Time", "time", "time"), Column("Result", "result"), Column("Code", "code"),
    Column("Exit", "exit_code", "int"), Column("Status", "status"),
    Column("Reason", "reason"), Column("Remedy", "remedy"),
    Column("Since previous", "since_previous", "duration"), Column("Steps", "steps", "int"),
    Column("Attempt", "attempt_id"), Column("UID", "uid"), Column("API error", "api_error"),
    Column("Stdout", "stdout"), Column("Stderr", "stderr"),
)


def window_options(default_last: str | None):
    """--last / --from / --to; without any, the last `default_last` (None: all history)."""
    everything = " Default: all stored history." if default_last is None else \
        f" Default: --last {default_last}."

    def decorate(fn: Callable) -> Callable:
        fn = click.option("--to", "end", help="Window end (RFC 3339 or date), exclusive; default now.")(fn)
        fn = click.option("--from", "start", help="Window start (RFC 3339 or date), inclusive.")(fn)
        return click.option("--last", help="Window ending now: 30m, 24h, 7d, 2w." + everything)(fn)

    return decorate


def _window(last, start, end, default_last: str | None):
    now = datetime.now(UTC)
    if not (last or start or end):
        if default_last is None:
            return EPOCH, now
        last = default_last
    return resolve_window(last, start, end, now)


def _emit(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _width(fmt: str, width: int | None) -> int | None:
    return terminal_width(width) if fmt == "text" else None


@click.command("history")
@click.argument("instance")
@window_options(None)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--width", type=click.IntRange(min=1), help="Text width (default: terminal, else 80).")
@click.pass_context
@friendly
def history_cmd(ctx, instance, last, start, end, fmt, width) -> None:
    """Every install attempt of one INSTANCE (EC2 instance id, Azure VM id or <rg>/<vm-id>),
    oldest first: time, result, exit code, reason, time since the previous attempt, output."""
    import json

    from pipeline.publish.history import (
        excerpt,
        records,
        render_json,
        render_table,
        schema_columns,
    )
    from pipeline.query import analytics
    from pipeline.timeutil import InputError

    frm, to = _window(last, start, end, None)
    with analytics.connect(store_of(ctx)) as con:
        rows = records(analytics.attempts(con, frm, to, instance=instance))
        info = analytics.instance_history(con, frm, to, instance=instance)
    if not rows:
        raise InputError(f"no install attempts of instance {instance!r} in "
                         f"[{frm:%Y-%m-%dT%H:%M:%SZ}, {to:%Y-%m-%dT%H:%M:%SZ}) "
                         "(check the id, or widen the window)")
    for r in rows:
        r.update(result="failed" if r["is_failure"] else "ok", output=excerpt(r))
    if fmt == "json":
        doc = {"instance": json.loads(render_json(schema_columns(info), records(info)))[0],
               "attempts": json.loads(render_json(ATTEMPT_FULL, rows))}
        _emit((json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    elif fmt == "csv":
        _emit(render_table("csv", ATTEMPT_FULL, rows))
    else:
        text = render_table(fmt, ATTEMPT_TEXT, rows, width=_width(fmt, width))
        _emit((headline(records(info)[0]) + "\n\n").encode() + text)


def headline(r: dict) -> str:
    """One line about an instance_history record: counts, failure streak, last success, exit
    codes, duplicate runs, enrolment, online state."""
    from pipeline.publish.history import cell, go_duration, instance_label

    where = ", ".join(x for x in (r["cloud"], r["account_id"], r["region"]) if x)
    plural = "" if r["attempts"] == 1 else "s"
    parts = [f"{instance_label(r)} ({where}): {r['attempts']} attempt{plural}, {r['failures']} failed"]
    if r["first_failure"] is not None:
        parts.append(f"first failure {cell(r['first_failure'], 'time')}")
    if r["last_failed"]:
        parts.append(f"failing: {r['failure_streak']} in a row, last reason {r['last_reason']}")
    if r["last_success"] is not None:
        parts.append(f"last success {cell(r['last_success'], 'time')}")
    if r["exit_codes"]:
        parts.append(f"exit codes {cell(r['exit_codes'], 'list')}")
    parts.append(f"duplicate runs {r['duplicate_runs']}")
    if r["time_to_enroll"] is not None:
        parts.append(f"enrolled after {go_duration(r['time_to_enroll'])}")
    parts.append("online" if r["is_online"] else "not online")
    return "; ".join(parts) + "."


@click.command("trends")
@window_options("24h")
@click.option("--by", "by", type=click.Choice(list(DIMENSION_CHOICES)), default="cloud",
              show_default=True, help="Group attempts by this dimension (category: failure reason).")
@click.option("--bucket", type=click.Choice(["hour", "day"]),
              help="Time bucket (UTC); default: hour for windows up to 3 days, else day.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.pass_context
@friendly
def trends_cmd(ctx, last, start, end, by, bucket, fmt) -> None:
    """Attempts, failures, failure rate and failing instances per hour or day and per cloud,
    account, region, exit code or failure reason."""
    from pipeline.publish.history import auto_bucket, records, render_table
    from pipeline.query import analytics
    from pipeline.timeutil import to_ns

    frm, to = _window(last, start, end, "24h")
    dim = DIMENSION_CHOICES[by]
    bucket = bucket or auto_bucket(to_ns(frm), to_ns(to))
    with analytics.connect(store_of(ctx)) as con:
        rows = records(analytics.failure_trends(con, frm, to, bucket=bucket, by=dim))
    columns = [Column("Bucket", "bucket_start", "time"), Column(KEY_HEADERS[dim], "key"),
               Column("Attempts", "attempts", "int"), Column("Failures", "failures", "int"),
               Column("Rate", "failure_rate", "rate"),
               Column("Failing instances", "failing_instances", "int"),
               Column("Instances", "instances", "int")]
    _emit(render_table(fmt, columns, rows, empty="No install attempts in the window."))


@click.command("report")
@window_options("24h")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for index.html, report.md, CSVs and PNG charts (created).")
@click.option("--trend-days", type=click.IntRange(min=1),
              help="The trend covers this many days before the window end (default: the window).")
@click.option("--bucket", type=click.Choice(["hour", "day"]),
              help="Trend bucket; default: hour for up to 3 days, else day.")
@click.option("--all-nodes", is_flag=True, help="Nodes table of every instance, not only failures.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Rows in the top-instances and changes tables.")
@click.pass_context
@friendly
def report_cmd(ctx, last, start, end, out, trend_days, bucket, all_nodes, top) -> None:
    """Write the history report of the window: a self-contained HTML page (summary figures,
    failure trend, top reasons, top failing instances, changes, nodes table), Markdown, CSVs
    and PNG charts."""
    from datetime import timedelta

    from pipeline.publish.build import write_history_report

    frm, to = _window(last, start, end, "24h")
    trend_from = to - timedelta(days=trend_days) if trend_days else None
    say = (lambda step: click.echo(f"report: {step}...", err=True)) if sys.stderr.isatty() \
        else (lambda step: None)
    summary = write_history_report(store_of(ctx).require(), out, start=frm, end=to,
                                   trend_from=trend_from, bucket=bucket,
                                   failures_only=not all_nodes, top=top, progress=say)
    click.echo(f"wrote {summary['dir']}: {', '.join(summary['files'])}")
    click.echo(f"{summary['attempts']} attempts, {summary['failed_attempts']} failed, "
               f"{summary['failing_instances']} failing instances, {summary['failures']} rows "
               "in the nodes table", err=True)

