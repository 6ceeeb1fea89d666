"""`discovery-history metrics`: enrollment health as a Prometheus / OpenMetrics text exposition
(`pipeline.publish.metrics`), on stdout or written atomically for node_exporter's textfile
collector."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from pipeline.cli.common import friendly, store_of


@click.command("metrics")
@click.option("--openmetrics", is_flag=True, help="OpenMetrics 1.0 instead of Prometheus 0.0.4.")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write to this file atomically (node_exporter textfile collector: *.prom).")
@click.option("--at", "at", metavar="TIME",
              help="Compute the figures as of TIME (RFC 3339 or date) instead of now.")
@click.pass_context
@friendly
def metrics_cmd(ctx, openmetrics, out, at) -> None:
    """Print enrollment health as metrics: instances failing now by cloud, account, region and
    reason; attempts and failed attempts in the last hour; newest stored event per source; the
    last ingest's time and conservation counts; the newest snapshots."""
    from pipeline.publish.metrics import store_exposition, write_textfile
    from pipeline.timeutil import InputError, parse_instant

    now = parse_instant(at) if at else datetime.now(UTC)
    data = store_exposition(store_of(ctx).require(), now, openmetrics=openmetrics)
    if out:
        try:
            write_textfile(out, data)
        except OSError as e:
            raise InputError(f"cannot write {out}: {e.strerror or e}") from None
        click.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
