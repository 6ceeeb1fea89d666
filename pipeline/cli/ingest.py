"""`discovery-history ingest …`: audit events from files, folders, URLs, the receiver's spool
or DynamoDB, and tctl node / user-task snapshots, into the store. Each prints its conservation
line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from pipeline.cli.common import Progress, friendly, report_ingest, store_of
from pipeline.timeutil import InputError, parse_duration_ns, parse_instant


@click.group()
def ingest() -> None:
    """Load audit events or tctl snapshots into the store."""


@ingest.command("events")
@click.argument("paths", nargs=-1, required=True)
@click.option("--since", help="Skip events before this time (RFC 3339 or date).")
@click.option("--until", help="Skip events at or after this time (RFC 3339 or date).")
@click.option("--time-key", default="time", show_default=True, metavar="KEY",
              help="Record key holding the event time (Fluentd <inject> time_key); records "
                   "without it use `time`, else the Fluentd line's time column.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
@friendly
def ingest_events_cmd(ctx, paths, since, until, time_key, as_json) -> None:
    """Ingest ssm.run / azure.run / instance.join events from files, folders, globs or URLs:
    Teleport file logs, event-handler/Fluentd exports (JSON records or out_file's
    `<time><TAB><tag><TAB><record>` lines, gzip or not), Athena-layout Parquet."""
    from pipeline.ingest.events import ingest_events

    window = None
    if since or until:
        start = parse_instant(since) if since else datetime(1678, 1, 1, tzinfo=UTC)
        end = parse_instant(until) if until else datetime(2262, 1, 1, tzinfo=UTC)
        if end <= start:
            raise InputError("--until must be after --since")
        window = (start, end)
    progress = Progress("ingest")
    if not time_key.strip():
        raise InputError("--time-key must not be empty")
    summary = ingest_events(store_of(ctx), list(paths), window=window, progress=progress,
                            time_key=time_key)
    progress.done()
    report_ingest(summary, as_json)


def _snapshot_cmd(kind: str):
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--at", "at", help="Capture time (RFC 3339 or date); default: now.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
    @click.pass_context
    @friendly
    def cmd(ctx, file, at, as_json) -> None:
        from pipeline.ingest.snapshots import ingest_snapshot

        when = parse_instant(at) if at else datetime.now(UTC)
        report_ingest(ingest_snapshot(store_of(ctx), kind, file, when), as_json)

    return cmd


ingest.command("nodes", help="Ingest `tctl get nodes` output (JSON or YAML) as a node snapshot.")(
    _snapshot_cmd("nodes")
)
ingest.command(
    "user-tasks", help="Ingest `tctl get user_tasks` output (JSON or YAML) as a user-task snapshot."
)(_snapshot_cmd("user_tasks"))


@ingest.command("spool")
@click.argument("spool_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
@friendly
def ingest_spool_cmd(ctx, spool_dir, as_json) -> None:
    """Ingest the receiver's closed spool files, then move them to SPOOL_DIR/archive/."""
    from pipeline.ingest.drain import drain_spool

    progress = Progress("ingest")
    summary = drain_spool(store_of(ctx), spool_dir, progress=progress)
    progress.done()
    if summary is None:
        click.echo(f"nothing to drain in {spool_dir}", err=True)
        return
    report_ingest(summary, as_json)


def dynamo_window(since: str | None, until: str | None, last: str | None, now: datetime):
    """[since, until) (until defaults to now), or [now - last, now)."""
    if last and (since or until):
        raise InputError("use either --last or --since/--until, not both")
    if last:
        return now - timedelta(microseconds=parse_duration_ns(last) // 1000), now
    if not since:
        raise InputError("give the window: --since TIME [--until TIME], or --last DUR")
    start, end = parse_instant(since), parse_instant(until) if until else now
    if end <= start:
        raise InputError("--until must be after --since")
    return start, end


@ingest.command("dynamodb")
@click.option("--table", required=True, help="Teleport's audit events table.")
@click.option("--region", help="AWS region (default: the AWS configuration's).")
@click.option("--endpoint-url", help="A DynamoDB-compatible endpoint instead of AWS's.")
@click.option("--since", help="Window start (RFC 3339 or date), inclusive.")
@click.option("--until", help="Window end (RFC 3339 or date), exclusive; default now.")
@click.option("--last", help="Window ending now: 30m, 24h, 7d, ...")
@click.option("--types", default="ssm.run,azure.run,instance.join", show_default=True,
              help="Event types to fetch (filtered by DynamoDB).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
@friendly
def ingest_dynamodb_cmd(ctx, table, region, endpoint_url, since, until, last, types,
                        as_json) -> None:
    """Ingest run and join events from Teleport's DynamoDB audit table for a window (one query
    per UTC day on its timesearchV2 index; AWS credentials from the standard chain)."""
    from pipeline.ingest.events import ingest_events
    from pipeline.sources.dynamo import dynamo_days

    window = dynamo_window(since, until, last, datetime.now(UTC))
    event_types = [t.strip() for t in types.split(",") if t.strip()]
    days = dynamo_days(table, window, region=region, endpoint_url=endpoint_url,
                       event_types=event_types)
    progress = Progress("ingest")
    summary = ingest_events(store_of(ctx), days, window=window, progress=progress)
    progress.done()
    report_ingest(summary, as_json)
