"""`discovery-history demo generate`: a deterministic synthetic fleet (a Teleport file-log
folder, nodes.json, user_tasks.json), or a store holding what ingesting it would store."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from pipeline.cli.common import fail, friendly
from pipeline.timeutil import parse_instant


@click.group()
def demo() -> None:
    """Synthetic demo data."""


@demo.command("generate")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--aws-instances", default=3000, show_default=True, type=click.IntRange(min=0))
@click.option("--azure-vms", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--end", "end", metavar="TIME", default=None,
              help="The fleet's events cover [END - DAYS, END); default: now (to the second), "
                   "so a demo fleet is recent enough for the hourly ingest. Pass a fixed TIME "
                   "for the same files every time (make demo uses 2026-05-31).")
@click.option("--store", "as_store", is_flag=True,
              help="Make OUT_DIR a store (new or without events) holding what ingesting the "
                   "fleet would store, written straight from the generator: no JSON.")
@friendly
def demo_generate(out_dir, seed, days, aws_instances, azure_vms, end, as_store) -> None:
    """Write a synthetic fleet, deterministic for a given --end: a Teleport file-log folder,
    nodes.json, user_tasks.json."""
    from pipeline.gen.generate import GenerateError, generate_fleet

    until = parse_instant(end) if end else datetime.now(UTC).replace(microsecond=0)
    fn = generate_fleet
    if as_store:
        from pipeline.gen.tostore import generate_fleet_store as fn
    try:
        s = fn(out_dir, seed=seed, days=days, end=until, aws_instances=aws_instances,
               azure_vms=azure_vms, progress=sys.stderr.isatty())
    except GenerateError as e:
        fail(str(e))
    click.echo(f"wrote {out_dir}: {s}")
