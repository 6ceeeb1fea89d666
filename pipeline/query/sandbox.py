"""A read-only connection for people's own SQL (`discovery-history sql`): every view and macro of
`views.connect`, and nothing that writes or reaches outside the store.

DuckDB itself enforces it: the views live in a database opened `read_only` (INSERT, CREATE,
DROP, … refused by the engine); `enable_external_access = false` with `allowed_directories` set
to the store (no file, URL, extension or secret outside it); `lock_configuration = true` (no SET,
RESET, PRAGMA setting or re-enabling). Inside the store `allowed_directories` also permits writes
(DuckDB does not tell reading from writing there), and the temporary catalog takes TEMP objects,
so `run` also takes only what DuckDB's own parser classifies as a query (SELECT, WITH, FROM,
VALUES, DESCRIBE, SHOW, SUMMARIZE), one statement at a time.

    with open_read_only(Store("lake")) as con:
        reader = run(con, "SELECT cloud, count(*) FROM runs GROUP BY ALL")   # Arrow batches
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.query import analytics, views
from pipeline.store import Store
from pipeline.timeutil import InputError, to_ns

BATCH_ROWS = 10_000


class SqlError(InputError):
    """A statement refused by the sandbox, or DuckDB's own error for it (first line)."""


def store_prefix(store: Store) -> str:
    """The directory prefix DuckDB may read: the store root with a trailing separator (so that a
    sibling `lake2/` is not inside `lake/`)."""
    if store.remote:
        return store.url.rstrip("/") + "/"
    return str(Path(store.root).resolve()) + "/"


@contextlib.contextmanager
def open_read_only(store: Store | str, now: datetime | None = None
                   ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked, read-only connection over `store` with every view and macro (and the store's
    failure_reasons.csv rules) loaded, and `now` (UTC) as the variable `now` (TIMESTAMP_NS,
    `getvariable('now')`), so that a query can be pinned to an instant; its scratch folder is
    removed on exit."""
    store = store if isinstance(store, Store) else Store(store)
    scratch = Path(tempfile.mkdtemp(prefix="discovery-history-sql-"))
    try:
        db = scratch / "views.duckdb"
        analytics.connect(store, database=str(db)).close()  # views, macros, rules: persisted
        con = duckdb.connect(str(db), read_only=True)
        try:
            texts = [p.read_text() for p in views.sql_files()]
            views.set_files(con, store, store.manifest(), texts)
            if now is not None:
                con.execute("SET VARIABLE now = make_timestamp_ns($1)", [to_ns(now)])
            lock_down(con, store_prefix(store), scratch / "spill")
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def lock_down(con: duckdb.DuckDBPyConnection, allowed: str, spill: Path) -> None:
    """No external access but `allowed` (a directory prefix), spills to `spill`, no extension
    auto-loading, then the configuration locked."""
    spill.mkdir()
    con.execute("SET temp_directory = $1", [str(spill)])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_directories = $1", [[allowed]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise SqlError unless `sql` is exactly one statement that DuckDB's parser calls a query."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise SqlError(first_line(e)) from None
    if not statements:
        raise SqlError("no SQL statement given")
    if len(statements) > 1:
        raise SqlError(f"one statement at a time (got {len(statements)})")
    try:
        kind = statements[0].type
    except ValueError:  # a statement type the Python client has no name for (UPDATE EXTENSIONS)
        raise SqlError("only queries are allowed (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, "
                       "SUMMARIZE): this statement is not one") from None
    if kind != duckdb.StatementType.SELECT:
        raise SqlError(f"only queries are allowed (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, "
                       f"SUMMARIZE), not {kind.name}: this command reads the store, never writes")


def run(con: duckdb.DuckDBPyConnection, sql: str,
        batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """Check `sql` (check_query), then run it; the result streams as Arrow batches of up to
    `batch_rows` rows. Raises SqlError with DuckDB's message when it refuses or fails."""
    check_query(con, sql)
    try:
        return con.sql(sql).to_arrow_reader(batch_rows)
    except duckdb.Error as e:
        raise SqlError(first_line(e)) from None


def first_line(e: BaseException) -> str:
    """DuckDB's message on one line (its LINE/caret context dropped)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
