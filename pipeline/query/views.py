"""A DuckDB connection over the store with every view and macro of `sql/` loaded.

    con = connect("lake")                     # notebooks, reports, the CLI
    con.sql("SELECT * FROM latest_runs(TIMESTAMP_NS '2026-05-01', TIMESTAMP_NS '2026-05-02')")
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

from pipeline.query import rollups
from pipeline.store import Store
from pipeline.store.layout import DATASETS, ROLLUPS
from pipeline.store.manifest import Manifest


def sql_dir() -> Path:
    """The folder of the project's SQL files: `sql/` in a checkout (editable install), or the
    copy a wheel ships as package data `pipeline.sql`."""
    checkout = Path(__file__).resolve().parents[2] / "sql"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("pipeline.sql")))


def sql_files() -> list[Path]:
    """The SQL files in load order (their numeric prefix)."""
    return sorted(p for p in sql_dir().glob("*.sql"))


def connect(store: Store | str, *, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection with one view per dataset (committed files only) and every `sql/` relation.

    Raises StoreError when there is no store at the path."""
    store = store if isinstance(store, Store) else Store(store)
    store.require()
    con = duckdb.connect(database)
    attach_views(con, store)
    return con


def attach_views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """(Re)create the dataset views from the store's current manifest, then the SQL relations."""
    manifest = store.manifest()
    texts = [path.read_text() for path in sql_files()]
    set_files(con, store, manifest, texts)
    for name, ds in DATASETS.items():
        if name in ROLLUPS:  # read through latest_runs and analytics.failure_trends only; a
            continue         # store from before rollups has no schema file for a view yet
        hive = ", ".join(f"'{c}': '{t}'" for c, t in ds.partition)
        options = f", hive_partitioning = true, hive_types = {{{hive}}}" if ds.partition else ""
        files = f"getvariable('{name}_files')"
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                    f"{files}, union_by_name = true{options})")
        if "event_date" in dict(ds.partition):
            con.execute(f"CREATE OR REPLACE MACRO {name}_on_days(first_day, last_day, "
                        "skip_months := []::DATE[]) AS TABLE SELECT * FROM read_parquet("
                        f"{_days_filter(files)}, union_by_name = true{options})")
    for text in texts:
        con.execute(text)


def set_files(con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest,
              texts: list[str]) -> None:
    """Set the variables the views read through (each dataset's committed files of `manifest`,
    the fresh rollups) and let `con` read the store's files; `texts` are the `sql/` texts loaded."""
    store.register(con)
    for name in DATASETS:
        con.execute(f"SET VARIABLE {name}_files = $1", [store.files(name, manifest)])
    rollups.attach(con, store, manifest.datasets, texts)


def _days_filter(files: str) -> str:
    """SQL keeping, of the list `files`, the schema file (first) and days [first_day, last_day]
    outside the months `skip_months` (DATEs, first of the month)."""
    # by the `event_date=` folder, before binding: union_by_name reads the footer of every file
    # listed, which grows with the history. A file without that folder is kept.
    day = r"nullif(regexp_extract(f, '[/\\]event_date=([0-9-]+)[/\\]', 1), '')"
    return (f"list_filter({files}, lambda f, i: i = 1 OR coalesce({day} BETWEEN"
            " strftime(first_day, '%Y-%m-%d') AND strftime(last_day, '%Y-%m-%d') AND NOT"
            f" list_contains(skip_months, TRY_CAST(left({day}, 7) || '-01' AS DATE)), true))")
