"""CLI commands over the stored history: `history INSTANCE`, `trends`, `report`.

They adapt arguments, call `pipeline.query.analytics` / `pipeline.publish`, and print; errors
become one line through `pipeline.cli.common.friendly`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

from pipeline.cli.common import choice, friendly, resolve_window, store_of, terminal_width
from pipeline.publish.history import FORMATS, Column

DAY_NS = 86_400 * 10**9
BUCKETS = ("hour", "day")
DIMENSION_CHOICES = {"cloud": "cloud", "account": "account", "region": "region",
                     "exit-code": "exit_code", "category": "category"}
KEY_HEADERS = {"cloud": "Cloud", "account": "Account", "region": "Region",
               "exit_code": "Exit code", "category": "Reason"}
ATTEMPT_TEXT = (  # Exit: the exit label ('API error' when the Run Command API call failed)
    Column("Time", "time", "time"), Column("Result", "result"),
    Column("Exit", "exit_label"), Column("Reason", "reason"),
    Column("Since previous start", "since_previous", "duration"), Column("Output", "output"),
)
ATTEMPT_FULL = (
    Column("Time", "time", "time"), Column("Result", "result"), Column("Code", "code"),
    Column("Exit", "exit_code", "int"), Column("Status", "status"),
    Column("Reason", "reason"), Column("Remedy", "remedy"),
    Column("Since previous start", "since_previous", "duration"), Column("Steps", "steps", "int"),
    Column("Attempt", "attempt_id"), Column("UID", "uid"), Column("API error", "api_error"),
    Column("Stdout", "stdout"), Column("Stderr", "stderr"),
)


def window_options(default_last: str | None):
    """--last / --from / --to; without any, the last `default_last` (None: all history)."""
    everything = " Default: all stored history." if default_last is None else \
        f" Default: --last {default_last}."

    def decorate(fn: Callable) -> Callable:
        fn = click.option("--to", "end", help="Window end (RFC 3339 or date), exclusive; "
                          "default now. Alone: the default window ending there.")(fn)
        fn = click.option("--from", "start", help="Window start (RFC 3339 or date), inclusive.")(fn)
        return click.option("--last", help="Window ending at --to or now: 30m, 24h, 7d, 2w."
                            + everything)(fn)

    return decorate


def _window(last, start, end, default_last: str | None) -> tuple[int, int]:
    """The window in integer nanoseconds (pipeline.cli.common.resolve_window)."""
    return resolve_window(last, start, end, time.time_ns(), default_last)


def _emit(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _width(fmt: str, width: int | None) -> int | None:
    return terminal_width(width) if fmt == "text" else None


@click.command("history")
@click.argument("instance")
@window_options(None)
@click.option("--format", "fmt", type=choice(FORMATS), default="text", show_default=True)
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
    from pipeline.report.gofmt import rfc3339nano
    from pipeline.timeutil import InputError

    frm, to = _window(last, start, end, None)
    with analytics.connect(store_of(ctx)) as con:
        rows = records(analytics.attempts(con, frm, to, instance=instance))
        info = analytics.instance_history(con, frm, to, instance=instance)
        key, group = analytics.parse_instance(instance)
        groups = sorted({r["resource_group"] for r in records(
            analytics.attempts(con, frm, to, instance=key))}) if group and not rows else []
    if groups:
        raise InputError(f"no install attempts of instance {instance!r}: VM {key} is in resource "
                         f"group {', '.join(repr(g) for g in groups)}, not {group!r}")
    if not rows:
        raise InputError(f"no install attempts of instance {instance!r} in "
                         f"[{rfc3339nano(frm)}, {rfc3339nano(to)}) "
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
    codes, duplicate runs, enrolment and its evidence, online state."""
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
        parts.append(f"enrolled after {go_duration(r['time_to_enroll'])}{_evidence(r)}")
    parts.append({True: "online", False: "not online"}.get(
        r["is_online"], "online state unknown (no node snapshot)"))
    return "; ".join(parts) + "."


def _evidence(r: dict) -> str:
    """What ended the enrolment when it was not a successful attempt: the join, or the node
    snapshot that first listed the instance."""
    from pipeline.publish.history import cell

    at = r["first_seen"] + r["time_to_enroll"]
    if r["first_success"] == at:
        return ""
    if r["first_joined"] == at:
        return f" (agent joined {cell(at, 'time')})"
    return f" (online in the node snapshot of {cell(at, 'time')})"


@click.command("trends")
@window_options("24h")
@click.option("--by", "by", type=choice(DIMENSION_CHOICES), default="cloud",
              show_default=True, help="Group attempts by this dimension (category: failure reason).")
@click.option("--bucket", type=choice(BUCKETS),
              help="Time bucket (UTC); default: hour for windows up to 3 days, else day.")
@click.option("--format", "fmt", type=choice(FORMATS), default="text", show_default=True)
@click.pass_context
@friendly
def trends_cmd(ctx, last, start, end, by, bucket, fmt) -> None:
    """Attempts, failures, failure rate and failing instances per hour or day and per cloud,
    account, region, exit code or failure reason."""
    from pipeline.publish.history import auto_bucket, records, render_table
    from pipeline.query import analytics

    frm, to = _window(last, start, end, "24h")
    dim = DIMENSION_CHOICES[by]
    bucket = bucket or auto_bucket(frm, to)
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
@click.option("--bucket", type=choice(BUCKETS),
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
    from pipeline.publish.build import write_history_report

    frm, to = _window(last, start, end, "24h")
    trend_from = to - trend_days * DAY_NS if trend_days else None
    say = (lambda step: click.echo(f"report: {step}...", err=True)) if sys.stderr.isatty() \
        else (lambda step: None)
    summary = write_history_report(store_of(ctx).require(), out, start=frm, end=to,
                                   trend_from=trend_from, bucket=bucket,
                                   failures_only=not all_nodes, top=top, progress=say)
    click.echo(f"wrote {summary['dir']}: {', '.join(summary['files'])}")
    click.echo(f"{summary['attempts']} attempts, {summary['failed_attempts']} failed, "
               f"{summary['failing_instances']} failing instances, {summary['failures']} rows "
               "in the nodes table", err=True)

