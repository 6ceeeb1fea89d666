"""What a connection offers to people's own SQL: each relation's signature, kind, description,
grain and inputs, read from the header comment of its `sql/` file (the one source of truth), plus
the store's dataset views; and the columns of any of them (`describe`).

A header is the file's leading `--` comment: `name(args): description. … grain: … inputs: …`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from pipeline.query.views import sql_files
from pipeline.store.layout import DATASETS, ROLLUPS
from pipeline.timeutil import InputError

_CREATE = re.compile(r"CREATE OR REPLACE (?:TEMP )?(MACRO|VIEW|TABLE) (\w+)\s*(\([^)]*\))?"
                     r"\s*AS(\s+TABLE)?", re.S)
# a value of each parameter name the sql/ macros use: enough to bind them (for their columns)
_SAMPLE_ARGS = {
    "from_ts": "TIMESTAMP_NS '1970-01-01'", "to_ts": "TIMESTAMP_NS '1970-01-01'",
    "as_of": "TIMESTAMP_NS '1970-01-01'", "a_from": "TIMESTAMP_NS '1970-01-01'",
    "a_to": "TIMESTAMP_NS '1970-01-01'", "b_from": "TIMESTAMP_NS '1970-01-01'",
    "b_to": "TIMESTAMP_NS '1970-01-01'", "first_day": "DATE '1970-01-01'",
    "last_day": "DATE '1970-01-01'", "clouds": "['aws', 'azure']", "failures_only": "false",
    "bucket": "'day'", "dimension": "'cloud'", "dimensions": "['cloud']",
    "months": "[]::DATE[]", "skip_months": "[]::DATE[]", "snap_kind": "'nodes'",
    "src": "''", "ingest_kind": "'events'",
}


class UnknownRelation(InputError):
    """`describe` of a name no relation has."""


@dataclass(frozen=True)
class Relation:
    """One relation a connection offers: name, call signature, kind (dataset | view | table |
    table macro | macro), one-line summary, full description, grain and inputs."""

    name: str
    signature: str
    kind: str
    summary: str
    description: str
    grain: str
    inputs: str
    params: tuple[str, ...] = ()  # required parameters, in order (macros)


def parse_header(text: str) -> Relation:
    """The Relation a `sql/` file defines, from its header comment and CREATE statement.

    Raises ValueError when the header lacks a description, `grain:` or `inputs:`."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    header = " ".join(lines)
    m = _CREATE.search(text)
    if m is None or "grain:" not in header or "inputs:" not in header:
        raise ValueError("a sql/ file needs a header with a description, grain: and inputs:, "
                         "then CREATE OR REPLACE MACRO|VIEW|TABLE")
    what, name, args, table = m.group(1), m.group(2), m.group(3), m.group(4)
    described, _, rest = header.partition("grain:")
    grain, _, inputs = rest.partition("inputs:")
    signature, sep, description = described.partition(": ")
    if not sep or not signature.startswith(name):
        signature, description = name + (args or ""), described
    description = description.strip()
    summary = re.split(r"(?<=\.)\s", description, maxsplit=1)[0]
    kind = {"VIEW": "view", "TABLE": "table"}.get(what) or ("table macro" if table else "macro")
    params = tuple(p.strip() for p in (args or "()")[1:-1].split(",") if p.strip())
    return Relation(name, signature.strip(), kind, summary.rstrip(".;") + ".", description,
                    grain.strip().rstrip("."), inputs.strip().rstrip("."), params)


def dataset_relations() -> list[Relation]:
    """The store's dataset views (and their `<name>_on_days` macros), from the layout."""
    out = []
    for name, ds in DATASETS.items():
        if name in ROLLUPS:
            continue
        keys = ", ".join(c for c, _ in ds.partition) or "none"
        out.append(Relation(name, name, "dataset",
                            f"The store's {name}/ files (committed ones only).",
                            f"The store's {name}/ files (committed ones only), partition keys: "
                            f"{keys}.", "one row per stored row", "the store"))
        if "event_date" in dict(ds.partition):
            sig = f"{name}_on_days(first_day, last_day, skip_months := [])"
            out.append(Relation(f"{name}_on_days", sig, "table macro",
                                f"The {name} files of days [first_day, last_day] only.",
                                f"The {name} files of days [first_day, last_day] only (chosen by "
                                "their event_date= folder before planning), outside the months "
                                "skip_months.", "one row per stored row", name,
                                ("first_day", "last_day")))
    return out


def relations() -> list[Relation]:
    """Every relation a `views.connect` connection offers: datasets first, then `sql/` in load
    order."""
    return dataset_relations() + [parse_header(p.read_text()) for p in sql_files()]


def find(name: str) -> Relation:
    """The relation called `name` (case-insensitive); UnknownRelation otherwise."""
    for rel in relations():
        if rel.name.lower() == name.lower():
            return rel
    raise UnknownRelation(f"no relation {name!r} (discovery-history sql --list shows them)")


def describe(con: duckdb.DuckDBPyConnection, rel: Relation) -> pa.Table:
    """Columns (`column_name`, `column_type`) of `rel` on `con`; a scalar macro has one, `value`."""
    required = [p for p in rel.params if ":=" not in p]
    call = ", ".join(_SAMPLE_ARGS.get(p, "NULL") for p in required)
    if rel.kind == "macro":
        query = f"SELECT {rel.name}({call}) AS value"
    elif rel.kind == "table macro":
        query = f"SELECT * FROM {rel.name}({call})"
    else:
        query = f"SELECT * FROM {rel.name}"
    return con.sql(f"SELECT column_name, column_type FROM (DESCRIBE {query})").to_arrow_table()
