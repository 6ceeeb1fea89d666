"""A DuckDB connection over the store with every view and macro of `sql/` loaded.

    con = connect("lake")                     # notebooks, reports, the CLI
    con.sql("SELECT * FROM latest_runs(TIMESTAMP_NS '2026-05-01', TIMESTAMP_NS '2026-05-02')")
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

from pipeline.query import rollups
from pipeline.store import Store, history
from pipeline.store.layout import DATASETS, HISTORY, ROLLUPS, Dataset, legacy_in, uniform_since
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


def connect(store: Store | str, *, database: str = ":memory:",
            through: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection with one view per dataset (committed files only) and every `sql/` relation,
    or, with `through` (a relation's name), the relations up to the file defining it (what it
    needs: files load in order, each after its inputs), as a command that asks one question
    does: defining a relation costs ~3 ms.

    Raises StoreError when there is no store at the path."""
    store = store if isinstance(store, Store) else Store(store)
    store.require()
    con = duckdb.connect(database)
    attach_views(con, store, through=through)
    return con


def attach_views(con: duckdb.DuckDBPyConnection, store: Store, *,
                 through: str | None = None) -> None:
    """(Re)create the dataset views from the store's current manifest, then the SQL relations
    (all, or up to the file defining the relation `through`)."""
    manifest = store.manifest()
    paths = sql_files()
    texts = [path.read_text() for path in paths]
    set_files(con, store, manifest, texts)
    legacy = legacy_in(manifest.datasets)
    for name, ds in DATASETS.items():
        if name in ROLLUPS:  # read through latest_runs and analytics.failure_trends only; a
            continue         # store from before rollups has no schema file for a view yet
        if name in HISTORY and (legacy or not manifest.datasets.get(name)):
            # full copies are converted below; an empty dataset needs no file (a store written
            # before schema 3 has no schema file for it)
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {_empty(ds)}")
            continue
        if name in HISTORY or uniform_since(name, manifest.schema_version):
            # its files all have the layout's schema (history: written from schema 3 on; runs and
            # joins: once no schema-1 file may remain; verify checks): binding reads one footer,
            # not a year of them (`<name>_scan`, see set_files)
            _dataset_view(con, name, ds, f"getvariable('{name}_scan')", by_name=False)
            continue
        _dataset_view(con, name, ds, f"getvariable('{name}_files')")
    if legacy:  # a store not yet migrated: its full copies read as the change history
        for kind in history.KINDS.values():
            source = f"legacy_{kind.legacy.name}"
            if kind.legacy.name in legacy:
                _dataset_view(con, source, kind.legacy, f"getvariable('{source}_files')")
            else:
                con.execute(f"CREATE OR REPLACE VIEW {source} AS {_empty(kind.legacy)}")
            history.legacy_views(con, kind, source)
    for path, text in zip(paths, texts, strict=True):
        con.execute(text)
        if through is not None and path.stem.split("_", 1)[-1] == through:
            break
    else:
        if through is not None:
            raise ValueError(f"no sql/ file defines {through!r}")


def set_files(con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest,
              texts: list[str]) -> None:
    """Set the variables the views read through (each dataset's committed files of `manifest`,
    the fresh rollups) and let `con` read the store's files; `texts` are the `sql/` texts loaded.
    Each list is also kept with a data file first and the schema file last (`<name>_scan`,
    what the views of datasets whose files share one layout read): the planner sizes a scan by
    its first file, and a zero-row anchor would make it a join's build side, so that a capture's
    day and month would not prune files (and a year of runs would be a hash table). A
    store of full copies (schema 1-2) lists them as `legacy_<dataset>_files`."""
    store.register(con)
    for name in DATASETS:
        files = store.files(name, manifest)
        con.execute(f"SET VARIABLE {name}_files = $1", [files])
        con.execute(f"SET VARIABLE {name}_scan = $1", [files[1:] + files[:1]])
    for name in legacy_in(manifest.datasets):
        con.execute(f"SET VARIABLE legacy_{name}_files = $1", [store.files(name, manifest)])
    rollups.attach(con, store, manifest.datasets, texts)


def _dataset_view(con, name: str, ds: Dataset, files: str, by_name: bool = True) -> None:
    """The view `name` over the Parquet files of the list expression `files`, hive keys typed
    (columns matched by name across files unless `by_name` is False); and, for event datasets,
    the macro `<name>_on_days` reading only some days' files (of `<name>_files`, whose first
    entry is the schema file; their footers are read: a window's days are few)."""
    hive = ", ".join(f"'{c}': '{t}'" for c, t in ds.partition)
    options = f", hive_partitioning = true, hive_types = {{{hive}}}" if ds.partition else ""
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                f"{files}, union_by_name = {str(by_name).lower()}{options})")
    if "event_date" in dict(ds.partition):
        listed = _days_filter(f"getvariable('{name}_files')")
        con.execute(f"CREATE OR REPLACE MACRO {name}_on_days(first_day, last_day, "
                    "skip_months := []::DATE[]) AS TABLE SELECT * FROM read_parquet("
                    f"{listed}, union_by_name = true{options})")


def _empty(ds: Dataset) -> str:
    """SELECT of no rows with the dataset's columns and partition keys, typed."""
    cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in ds.columns + ds.partition)
    return f"SELECT {cols} LIMIT 0"


def _days_filter(files: str) -> str:
    """SQL keeping, of the list `files`, the schema file (first) and days [first_day, last_day]
    outside the months `skip_months` (DATEs, first of the month)."""
    # by the `event_date=` folder, before binding: union_by_name reads the footer of every file
    # listed, which grows with the history. A file without that folder is kept.
    day = r"nullif(regexp_extract(f, '[/\\]event_date=([0-9-]+)[/\\]', 1), '')"
    return (f"list_filter({files}, lambda f, i: i = 1 OR coalesce({day} BETWEEN"
            " strftime(first_day, '%Y-%m-%d') AND strftime(last_day, '%Y-%m-%d') AND NOT"
            f" list_contains(skip_months, TRY_CAST(left({day}, 7) || '-01' AS DATE)), true))")
