"""`discovery-history nodes`: the `tctl discovery nodes` report for any window, from the store."""

from __future__ import annotations

import sys
import time

import click

from pipeline.cli.common import (
    choice,
    friendly,
    parse_clouds,
    resolve_window,
    store_of,
    terminal_width,
)

FORMATS = ("text", "json", "yaml", "csv", "markdown")


@click.command("nodes")
@click.option("--last", help="Window ending at --to or now: Go duration (30m, 24h, 1h30m) or 7d, 2w. Default 1h.")
@click.option("--from", "start", help="Window start (RFC 3339 or date), inclusive.")
@click.option("--to", "end", help="Window end (RFC 3339 or date), exclusive; default now.")
@click.option("--cloud", default="", help="Comma list of clouds: aws, azure (default both).")
@click.option("--failures-only", is_flag=True, help="Only instances whose last run failed or with a user task.")
@click.option("--format", "fmt", type=choice(FORMATS), default="text", show_default=True)
@click.option("--width", type=click.IntRange(min=1), help="Table width for text (default: terminal, else 80).")
@click.pass_context
@friendly
def nodes_cmd(ctx, last, start, end, cloud, failures_only, fmt, width) -> None:
    """The `tctl discovery nodes` report for any window, from the stored history."""
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_frame
    from pipeline.report.render import RENDERERS
    from pipeline.report.yamlv2 import GoYAMLError

    frm, to = resolve_window(last, start, end, time.time_ns())
    clouds = parse_clouds(cloud)
    with connect(store_of(ctx), through="discovery_nodes") as con:
        rows = nodes_frame(con, frm, to, clouds, failures_only)
    try:
        out = RENDERERS[fmt](rows, width=terminal_width(width)) if fmt == "text" else RENDERERS[fmt](rows)
    except GoYAMLError as e:  # as tctl: the documents before the refused row are printed first
        sys.stdout.buffer.write(e.partial)
        sys.stdout.flush()
        raise
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
