"""CLI commands that look after a store: `verify` (a read-only consistency check), `compact`
and `rollup`.

They adapt arguments, call `pipeline.store` and `pipeline.query.rollup_build`, and print; errors
become one line through `pipeline.cli.common.friendly`.
"""

from __future__ import annotations

import sys

import click

from pipeline.cli.common import friendly, store_of

LOCK_TIMEOUT_HELP = "Seconds to wait for a running writer to finish."
lock_timeout_option = click.option("--lock-timeout", type=click.FloatRange(min=0), default=60.0,
                                   show_default=True, help=LOCK_TIMEOUT_HELP)


def _store(ctx: click.Context):
    return store_of(ctx).require()


def row_counts(store) -> dict[str, tuple[int, int]]:
    """dataset -> (rows, data files) over the committed files (Parquet footers only)."""
    import duckdb

    from pipeline.store.layout import DATASETS

    manifest = store.manifest()
    con = duckdb.connect()
    try:
        store.register(con)
        out = {}
        for name in DATASETS:
            files = store.files(name, manifest)
            rows = con.execute("SELECT count(*) FROM read_parquet($1, hive_partitioning = false)",
                               [files]).fetchall()[0][0]
            out[name] = (rows, len(files) - 1)  # the first file is the zero-row schema anchor
        return out
    finally:
        con.close()


def describe(store) -> str:
    """One line of what a sound store holds: manifest version, rows per dataset, files."""
    counts = row_counts(store)
    rows = ", ".join(f"{name} {n}" for name, (n, _) in counts.items())
    files = sum(f for _, f in counts.values())
    return f"{store.url} (manifest v{store.manifest().version}): {rows} rows in {files} files"


@click.command("verify")
@lock_timeout_option
@click.pass_context
@friendly
def verify_cmd(ctx: click.Context, lock_timeout: float) -> None:
    """Check the store: the manifest, each file's schema, partition folders against their rows,
    unique uids, row counts against the ingest and snapshot logs, files on disk that the
    manifest does not name (and the reverse), leftover staging. Lists every problem and exits 1
    if there is any; prints `store OK: ...` with the row counts otherwise."""
    from pipeline.store.verify import verify

    store = _store(ctx)
    problems = verify(store, lock_timeout=lock_timeout)
    if problems:
        click.echo(f"store {store.url}: {len(problems)} problem{'' if len(problems) == 1 else 's'}")
        for p in problems:
            click.echo(f"  - {p}")
        sys.exit(1)
    click.echo(f"store OK: {describe(store)}")


@click.command("compact")
@lock_timeout_option
@click.option("--rebuild-index", is_flag=True,
              help="Rebuild the uid index from the stored events (when verify finds it short).")
@click.pass_context
@friendly
def compact_cmd(ctx: click.Context, lock_timeout: float, rebuild_index: bool) -> None:
    """Rewrite every partition holding more than one file into one file, rows kept exactly, in
    one transaction (readers see the old files or the new ones, never a mix). Files of an older
    store layout are first migrated to the current one, in a step of their own logged in
    ingest_log (schema 1's `raw` line becomes typed columns plus `extra`)."""
    from pipeline.store import maintenance

    s = maintenance.compact(_store(ctx), lock_timeout=lock_timeout, rebuild_index=rebuild_index)
    if s["migrated"]:
        click.echo(f"migrated {s['migrated']} file{'' if s['migrated'] == 1 else 's'} of an older "
                   "layout to the current one (logged in ingest_log as kind migrate)")
    if "indexed" in s:
        click.echo(f"rebuilt the uid index: {s['indexed']} uids")
    if not s["partitions"]:
        click.echo("nothing to compact: every partition holds one file")
        return
    click.echo(f"compacted {s['partitions']} partition{'' if s['partitions'] == 1 else 's'}: "
               f"{s['files_before']} files -> {s['files_after']}, {s['rows']} rows kept")


@click.command("rollup")
@lock_timeout_option
@click.pass_context
@friendly
def rollup_cmd(ctx: click.Context, lock_timeout: float) -> None:
    """Bring the rollups up to date with the stored runs (the newest run per instance of each
    month, each day's trends), in one transaction. Year-long `history`/`trends` queries and
    reports read them; answers are the same without them, only slower. Run after ingests and
    compaction (the maintenance DAG does, daily)."""
    from pipeline.query import rollup_build

    say = (lambda msg: click.echo(msg, err=True)) if sys.stderr.isatty() else None
    s = rollup_build.refresh(_store(ctx), lock_timeout=lock_timeout, say=say)
    if not (s["months_built"] or s["days_built"] or s["month_files_removed"]
            or s["day_files_removed"]):
        click.echo("rollups up to date")
        return
    click.echo(f"rollups: built {s['months_built']} month(s) and {s['days_built']} day(s); "
               f"removed {s['month_files_removed'] + s['day_files_removed']} stale file(s)")


COMMANDS = (verify_cmd, compact_cmd, rollup_cmd)
