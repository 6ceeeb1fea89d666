"""CLI adapters for the pull/push sources: `receive` (event-handler receiver), `ingest spool`
(drain the receiver's spool) and `ingest dynamodb` (Teleport's DynamoDB audit table).

Registered by `pipeline.cli`; `pipeline.cli` is imported lazily here so either module can be
imported first. Only these commands read the clock, signals and the terminal.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

import click

from pipeline.timeutil import InputError, parse_duration_ns, parse_instant


def _friendly(fn, *args, **kwargs):
    from pipeline.cli import friendly

    return friendly(fn)(*args, **kwargs)


def parse_listen(addr: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every interface) as a bind address."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen wants HOST:PORT (e.g. 127.0.0.1:8888), got {addr!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


@click.command("receive")
@click.option("--listen", "listen", required=True, metavar="ADDR",
              help="HOST:PORT to accept the event handler's POSTs on (its --fluentd-url).")
@click.option("--spool", "spool_dir", required=True, type=click.Path(file_okay=False),
              help="Spool folder (one receiver per folder).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Server certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Server private key (PEM).")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False),
              help="Require client certificates signed by this CA (mTLS).")
@click.option("--rotate-mb", default=64, show_default=True, type=click.IntRange(min=1),
              help="Close a spool file at this size.")
@click.option("--rotate-seconds", default=60.0, show_default=True,
              type=click.FloatRange(min=0.1), help="Close a spool file at this age.")
@click.option("-v", "--verbose", is_flag=True, help="Log every request on stderr.")
def receive_cmd(**options) -> None:
    """Accept teleport-event-handler's events (Fluentd HTTP input format) and spool them;
    each POST is acknowledged only once its event is on disk (fsync). Stops on SIGTERM/SIGINT."""
    _friendly(_receive, **options)


def _receive(listen, spool_dir, tls_cert, tls_key, tls_client_ca, rotate_mb, rotate_seconds,
             verbose) -> None:
    import logging

    from pipeline.receiver import Receiver, TLSConfig
    from pipeline.spool import Spool

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="discovery-history: %(levelname)s: %(message)s")
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    if tls_client_ca and not tls_cert:
        raise InputError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is over TLS)")
    address = parse_listen(listen)
    tls = TLSConfig(tls_cert, tls_key, tls_client_ca) if tls_cert else None
    spool = Spool(spool_dir, max_bytes=rotate_mb << 20, max_age=rotate_seconds)
    receiver = Receiver(spool, address, tls)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver.start()
    host, port = receiver.address
    mode = " (mTLS)" if tls_client_ca else ""
    click.echo(f"discovery-history: receiving on {receiver.scheme}://{host}:{port}{mode}, "
               f"spooling to {spool_dir}", err=True)
    while not stop.wait(0.5):
        pass
    receiver.stop()
    click.echo(f"discovery-history: stopped after {receiver.received} events; drain with "
               f"`discovery-history ingest spool {spool_dir}`", err=True)


@click.command("spool")
@click.argument("spool_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def ingest_spool_cmd(ctx, spool_dir, as_json) -> None:
    """Ingest the receiver's closed spool files, then move them to SPOOL_DIR/archive/."""
    _friendly(_ingest_spool, ctx, spool_dir, as_json)


def _ingest_spool(ctx, spool_dir, as_json) -> None:
    from pipeline.cli import Progress, _report_ingest, _store
    from pipeline.spool import drain_spool

    progress = Progress("ingest")
    summary = drain_spool(_store(ctx), spool_dir, progress=progress)
    progress.done()
    if summary is None:
        click.echo(f"nothing to drain in {spool_dir}", err=True)
        return
    _report_ingest(summary, as_json)


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


@click.command("dynamodb")
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
def ingest_dynamodb_cmd(ctx, **options) -> None:
    """Ingest run and join events from Teleport's DynamoDB audit table for a window (one query
    per UTC day on its timesearchV2 index; AWS credentials from the standard chain)."""
    _friendly(_ingest_dynamodb, ctx, **options)


def _ingest_dynamodb(ctx, table, region, endpoint_url, since, until, last, types, as_json):
    from pipeline.cli import Progress, _report_ingest, _store
    from pipeline.ingest.events import ingest_events
    from pipeline.sources.dynamo import dynamo_days

    window = dynamo_window(since, until, last, datetime.now(UTC))
    event_types = [t.strip() for t in types.split(",") if t.strip()]
    days = dynamo_days(table, window, region=region, endpoint_url=endpoint_url,
                       event_types=event_types)
    progress = Progress("ingest")
    summary = ingest_events(_store(ctx), days, window=window, progress=progress)
    progress.done()
    _report_ingest(summary, as_json)
