"""The `discovery-history` command line: the root group and its commands, one module per group
(`pipeline.cli.<group>`). Commands adapt arguments, call the library and map its errors to one
line on stderr and a non-zero exit (`pipeline.cli.common`). Only the CLI (and DAG tasks) read
the clock and the environment."""

from __future__ import annotations

import click

from pipeline.cli.admin import compact_cmd, migrate_cmd, rollup_cmd, verify_cmd
from pipeline.cli.common import ENV_STORE, OneLineGroup
from pipeline.cli.demo import demo
from pipeline.cli.history import history_cmd, report_cmd, trends_cmd
from pipeline.cli.ingest import ingest
from pipeline.cli.metrics import metrics_cmd
from pipeline.cli.nodes import nodes_cmd
from pipeline.cli.receive import receive_cmd
from pipeline.cli.sql import sql_cmd


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


for _cmd in (ingest, nodes_cmd, history_cmd, trends_cmd, report_cmd, verify_cmd, compact_cmd,
             rollup_cmd, migrate_cmd, receive_cmd, sql_cmd, metrics_cmd, demo):
    main.add_command(_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
