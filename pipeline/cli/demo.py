"""`discovery-history demo generate`: a deterministic synthetic fleet (a Teleport file-log
folder, nodes.json, user_tasks.json), or a store holding what ingesting it would store."""

from __future__ import annotations

import sys

import click

from pipeline.cli.common import fail, friendly


@click.group()
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
    from pipeline.gen.generate import GenerateError, generate_fleet

    fn = generate_fleet
    if as_store:
        from pipeline.gen.tostore import generate_fleet_store as fn
    try:
        s = fn(out_dir, seed=seed, days=days, aws_instances=aws_instances, azure_vms=azure_vms,
               progress=sys.stderr.isatty())
    except GenerateError as e:
        fail(str(e))
    click.echo(f"wrote {out_dir}: {s}")
