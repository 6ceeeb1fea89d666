"""`discovery-history receive`: the event-handler receiver (Fluentd HTTP input format) in the
foreground, spooling to a folder that `ingest spool` drains. Stops on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import sys
import threading

import click

from pipeline.cli.common import friendly, store_of
from pipeline.timeutil import InputError


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
@click.option("--metrics/--no-metrics", default=True, show_default=True,
              help="Serve GET /metrics: enrollment health of --store (as `metrics` prints it).")
@click.pass_context
@friendly
def receive_cmd(ctx, metrics, **options) -> None:
    """Accept teleport-event-handler's events (Fluentd HTTP input format) and spool them;
    each POST is acknowledged only once its event is on disk (fsync). Stops on SIGTERM/SIGINT.
    GET /healthz answers ok; GET /metrics the store's enrollment health."""
    _receive(**options, metrics=store_metrics(store_of(ctx)) if metrics else None)


def store_metrics(store):
    """The receiver's /metrics: `store`'s exposition at the time of each scrape, OpenMetrics when
    the scraper accepts it; one scrape at a time (each opens the store)."""
    lock = threading.Lock()

    def produce(accept: str) -> tuple[bytes, str]:
        from datetime import UTC, datetime

        from pipeline.publish.metrics import OPENMETRICS_TYPE, PROMETHEUS_TYPE, store_exposition

        openmetrics = "application/openmetrics-text" in accept
        with lock:
            body = store_exposition(store.require(), datetime.now(UTC), openmetrics=openmetrics)
        return body, OPENMETRICS_TYPE if openmetrics else PROMETHEUS_TYPE

    return produce


def _receive(listen, spool_dir, tls_cert, tls_key, tls_client_ca, rotate_mb, rotate_seconds,
             verbose, metrics=None) -> None:
    import logging

    from pipeline.sources.receiver import Receiver, TLSConfig
    from pipeline.sources.spool import Spool

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="discovery-history: %(levelname)s: %(message)s")
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    if tls_client_ca and not tls_cert:
        raise InputError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is over TLS)")
    address = parse_listen(listen)
    tls = TLSConfig(tls_cert, tls_key, tls_client_ca) if tls_cert else None
    spool = Spool(spool_dir, max_bytes=rotate_mb << 20, max_age=rotate_seconds)
    receiver = Receiver(spool, address, tls, metrics=metrics)
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
