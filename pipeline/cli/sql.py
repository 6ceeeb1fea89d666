"""`discovery-history sql`: people's own SQL over the store, read-only, with every view and macro
loaded (`pipeline.query.sandbox`); `--list` and `--describe` from the `sql/` headers
(`pipeline.query.catalog`). Results stream to stdout or `--out` (`pipeline.publish.results`)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from pipeline.cli.common import fail, friendly, store_of, terminal_width
from pipeline.timeutil import InputError

FORMATS = ("text", "csv", "json", "markdown", "parquet")


@click.command("sql")
@click.argument("query", required=False)
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Read the query from this file ('-': stdin).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write the result to this file (written aside, renamed when complete).")
@click.option("--width", type=click.IntRange(min=20),
              help="Text width (default: $COLUMNS, the terminal's, else 80).")
@click.option("--at", "at", metavar="TIME",
              help="The instant getvariable('now') holds (RFC 3339 or date; default: now).")
@click.option("--list", "list_", is_flag=True,
              help="List the relations (views, macros, datasets) with description, grain, inputs.")
@click.option("--describe", "describe", metavar="NAME", help="Show one relation and its columns.")
@click.pass_context
@friendly
def sql_cmd(ctx, query, file, fmt, out, width, at, list_, describe) -> None:
    """Run one read-only query (QUERY, '-' for stdin, or --file) over the store with every view
    and macro loaded. Only queries run (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE);
    nothing outside the store can be read and nothing written. getvariable('now') is the time
    of the invocation (or --at), in UTC."""
    from datetime import UTC, datetime

    from pipeline.timeutil import parse_instant

    now = parse_instant(at) if at else datetime.now(UTC)
    if fmt == "parquet" and not out:
        raise InputError("--format parquet writes a file: give --out FILE")
    text_width = terminal_width(width) if fmt == "text" and not out else None
    if list_ or describe:
        if query or file:
            raise InputError("--list and --describe take no query")
        return _catalog(ctx, describe, fmt, out, text_width)
    sql = _query_text(query, file)
    _run(ctx, sql, fmt, out, text_width, now)


def _query_text(query: str | None, file: str | None) -> str:
    if query and file:
        raise InputError("give the query as an argument or with --file, not both")
    if file:
        try:
            return sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read {file}: {getattr(e, 'strerror', None) or e}") from None
    if query == "-":
        return sys.stdin.read()
    if not query:
        raise InputError("give a query (or '-' / --file for one from stdin or a file, --list to "
                         "see the relations)")
    return query


@contextmanager
def _output(out: str | None):
    """stdout, or a file written aside and renamed into place only when complete."""
    if not out:
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    part = Path(out).with_name(Path(out).name + ".part")
    try:
        with part.open("wb") as f:
            yield f
        os.replace(part, out)
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        part.unlink(missing_ok=True)


def _run(ctx, sql: str, fmt: str, out: str | None, width: int | None, now) -> None:
    import duckdb
    import pyarrow as pa

    from pipeline.publish.results import write_results
    from pipeline.query.sandbox import first_line, open_read_only, run

    with open_read_only(store_of(ctx), now) as con:
        reader = run(con, sql)
        try:
            with _output(out) as sink:
                rows = write_results(reader, reader.schema, fmt, sink, width=width)
        except (duckdb.Error, pa.ArrowException) as e:  # raised while the result streams
            fail(first_line(e))
    if out:
        click.echo(f"wrote {rows} row{'' if rows == 1 else 's'} to {out}", err=True)


def _catalog(ctx, name: str | None, fmt: str, out: str | None, width: int | None) -> None:
    import pyarrow as pa

    from pipeline.publish.results import write_results
    from pipeline.query import catalog
    from pipeline.query.sandbox import open_read_only

    if name is None:
        rels = catalog.relations()
        table = pa.table({"name": [r.name for r in rels], "kind": [r.kind for r in rels],
                          "signature": [r.signature for r in rels],
                          "grain": [r.grain for r in rels], "inputs": [r.inputs for r in rels],
                          "description": [r.summary for r in rels]})
        if fmt == "text":  # one screen: the signature says the name
            table = table.select(["signature", "kind", "grain", "inputs", "description"])
    else:
        rel = catalog.find(name)
        with open_read_only(store_of(ctx)) as con:
            table = catalog.describe(con, rel)
    with _output(out) as sink:
        if name is not None and fmt == "text":
            sink.write((f"{rel.signature}  ({rel.kind})\n{rel.description}\ngrain: {rel.grain}\n"
                        f"inputs: {rel.inputs}\n\n").encode())
        write_results(table.to_batches(), table.schema, fmt, sink, width=width)
