"""The `discovery-history` command line: adapts arguments, calls the library, maps errors to one
line on stderr and a non-zero exit. Only this module (and DAG tasks) read the clock and env."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

import click

from pipeline.timeutil import InputError, parse_duration_ns, parse_instant

ENV_STORE = "DISCOVERY_HISTORY_STORE"
FORMATS = ("text", "json", "yaml", "csv", "markdown")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"discovery-history: error: {message}", err=True)
    sys.exit(code)


def friendly(fn: Callable) -> Callable:
    """Turn the library's user-facing errors into one line on stderr and exit status 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from pipeline.ingest.snapshots import SnapshotError
        from pipeline.report.gofmt import GoYAMLError
        from pipeline.report.table import TableWidthError
        from pipeline.sources import SourceError
        from pipeline.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (InputError, SourceError, StoreError, SnapshotError, GoYAMLError,
                TableWidthError) as e:
            _fail(str(e))
        except BrokenPipeError:
            sys.stderr.close()  # `| head`: not an error
            sys.exit(0)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


class Progress:
    """Throttled progress on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.count = 0
        self._last = 0.0

    def __call__(self, name: str, n: int) -> None:
        import time

        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last > 0.2:
            self._last = now
            short = name if len(name) < 50 else "…" + name[-49:]
            sys.stderr.write(f"\r{self.label}: {self.count:,} lines ({short})\x1b[K")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar=ENV_STORE,
    default="lake",
    show_default=True,
    help=f"Store root folder (env {ENV_STORE}).",
)
@click.version_option(package_name="discovery-history")
@click.pass_context
def main(ctx: click.Context, store: str) -> None:
    """Stored history of Teleport auto-discovery enrollment (ssm.run / azure.run events)."""
    ctx.obj = {"store": store}


def _store(ctx: click.Context):
    from pipeline.store import Store

    return Store(ctx.obj["store"])


@main.group()
def ingest() -> None:
    """Load audit events or tctl snapshots into the store."""


@ingest.command("events")
@click.argument("paths", nargs=-1, required=True)
@click.option("--since", help="Skip events before this time (RFC 3339 or date).")
@click.option("--until", help="Skip events at or after this time (RFC 3339 or date).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
@friendly
def ingest_events_cmd(ctx, paths, since, until, as_json) -> None:
    """Ingest ssm.run / azure.run / instance.join events from files, folders, globs or URLs:
    Teleport file logs, event-handler/Fluentd exports (gzip or not), Athena-layout Parquet."""
    from pipeline.ingest.events import ingest_events

    window = None
    if since or until:
        start = parse_instant(since) if since else datetime(1678, 1, 1, tzinfo=UTC)
        end = parse_instant(until) if until else datetime(2262, 1, 1, tzinfo=UTC)
        if end <= start:
            raise InputError("--until must be after --since")
        window = (start, end)
    progress = Progress("ingest")
    summary = ingest_events(_store(ctx), list(paths), window=window, progress=progress)
    progress.done()
    _report_ingest(summary, as_json)


def _report_ingest(summary, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    click.echo(summary.conservation_line(), err=as_json)


def _snapshot_cmd(kind: str):
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--at", "at", help="Capture time (RFC 3339 or date); default: now.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
    @click.pass_context
    @friendly
    def cmd(ctx, file, at, as_json) -> None:
        from pipeline.ingest.snapshots import ingest_snapshot

        when = parse_instant(at) if at else datetime.now(UTC)
        _report_ingest(ingest_snapshot(_store(ctx), kind, file, when), as_json)

    return cmd


ingest.command("nodes", help="Ingest `tctl get nodes --format=json` output as a node snapshot.")(
    _snapshot_cmd("nodes")
)
ingest.command(
    "user-tasks", help="Ingest `tctl get user_tasks --format=json` output as a user-task snapshot."
)(_snapshot_cmd("user_tasks"))


def parse_clouds(value: str) -> list[str]:
    """tctl's --cloud: comma list of aws/azure, case-insensitive; empty means both."""
    if value == "":
        return ["aws", "azure"]
    out: list[str] = []
    for part in value.split(","):
        name = part.strip().lower()
        if name == "":
            raise InputError("empty cloud provider in --cloud (allowed: aws, azure)")
        if name not in ("aws", "azure"):
            raise InputError(f"unknown cloud provider {part!r} (allowed: aws, azure)")
        if name not in out:
            out.append(name)
    return out


def resolve_window(last: str | None, start: str | None, end: str | None, now: datetime):
    """The half-open window [from, to): --last ends now; --from/--to are explicit."""
    if last and (start or end):
        raise InputError("use either --last or --from/--to, not both")
    if start:
        frm = parse_instant(start)
        to = parse_instant(end) if end else now
        if to <= frm:
            raise InputError(f"--to ({to:%Y-%m-%dT%H:%M:%SZ}) must be after --from")
        return frm, to
    if end:
        raise InputError("--to needs --from (or use --last)")
    from datetime import timedelta

    span = parse_duration_ns(last or "1h")
    return now - timedelta(microseconds=span // 1000), now


def terminal_width(explicit: int | None) -> int:
    """--width, else $COLUMNS, else the terminal's width, else 80 (tctl's default)."""
    if explicit:
        return explicit
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 80


@main.command("nodes")
@click.option("--last", help="Window ending now: Go duration (30m, 24h, 1h30m) or 7d, 2w. Default 1h.")
@click.option("--from", "start", help="Window start (RFC 3339 or date), inclusive.")
@click.option("--to", "end", help="Window end (RFC 3339 or date), exclusive; default now.")
@click.option("--cloud", default="", help="Comma list of clouds: aws, azure (default both).")
@click.option("--failures-only", is_flag=True, help="Only instances whose last run failed or with a user task.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--width", type=click.IntRange(min=1), help="Table width for text (default: terminal, else 80).")
@click.pass_context
@friendly
def nodes_cmd(ctx, last, start, end, cloud, failures_only, fmt, width) -> None:
    """The `tctl discovery nodes` report for any window, from the stored history."""
    from pipeline.query import connect, nodes_report
    from pipeline.report.render import RENDERERS

    frm, to = resolve_window(last, start, end, datetime.now(UTC))
    clouds = parse_clouds(cloud)
    with connect(_store(ctx)) as con:
        rows = nodes_report(con, frm, to, clouds, failures_only)
    out = RENDERERS[fmt](rows, width=terminal_width(width)) if fmt == "text" else RENDERERS[fmt](rows)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()


@main.group()
def demo() -> None:
    """Synthetic demo data."""


@demo.command("generate")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--aws-instances", default=3000, show_default=True, type=click.IntRange(min=0))
@click.option("--azure-vms", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--store", "as_store", is_flag=True,
              help="Make OUT_DIR a store (new or without events) holding what ingesting the "
                   "fleet would store, written straight from the generator: no JSON.")
@friendly
def demo_generate(out_dir, seed, days, aws_instances, azure_vms, as_store) -> None:
    """Write a deterministic synthetic fleet: a Teleport file-log folder, nodes.json, user_tasks.json."""
    from pipeline.generate import GenerateError, generate_fleet

    fn = generate_fleet
    if as_store:
        from pipeline.gen.tostore import generate_fleet_store as fn
    try:
        s = fn(out_dir, seed=seed, days=days, aws_instances=aws_instances, azure_vms=azure_vms,
               progress=sys.stderr.isatty())
    except GenerateError as e:
        _fail(str(e))
    click.echo(f"wrote {out_dir}: {s}")


from pipeline.cli_admin import compact_cmd, migrate_cmd, rollup_cmd, verify_cmd  # noqa: E402
from pipeline.cli_history import history_cmd, report_cmd, trends_cmd  # noqa: E402
from pipeline.cli_receive import ingest_dynamodb_cmd, ingest_spool_cmd, receive_cmd  # noqa: E402

for _cmd in (history_cmd, trends_cmd, report_cmd, verify_cmd, compact_cmd, rollup_cmd,
             migrate_cmd):
    main.add_command(_cmd)

main.add_command(receive_cmd)
ingest.add_command(ingest_spool_cmd)  # discovery-history ingest spool DIR
ingest.add_command(ingest_dynamodb_cmd)  # discovery-history ingest dynamodb --table T ...

if __name__ == "__main__":  # pragma: no cover
    main()
