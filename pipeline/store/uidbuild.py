"""The uid index from the data: built whole for a store without one (or after a commit by a
version that does not know it), added for files stored without an ingest's dedup, and read
whole for `verify` (the format and the lookups: `pipeline.store.uidindex`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.store.layout import INDEXED, UID_INDEX
from pipeline.store.manifest import Manifest, Store, Writer
from pipeline.store.uidindex import (
    FORMAT,
    SLICE_ROWS,
    files_of,
    hash_sql,
    live_parts,
    local_copy,
    merge_tiers,
    open_file,
    place,
    write_file,
)

Say = Callable[[str], None]
_seq = itertools.count()


def ensure(con, w: Writer, say: Say | None = None) -> None:
    """Make the index list every stored event (build it from the data when the manifest does
    not vouch for it: a store written before the index, or by a version without it)."""
    if w.uid_index == FORMAT:
        return
    build(con, w, say)


def build(con, w: Writer, say: Say | None = None) -> int:
    """Rebuild the index of every indexed dataset from its stored files (replacing any index
    files); returns the entries written. Marks the index complete for `w`'s commit."""
    total = 0
    for dataset in INDEXED:
        old = files_of(w.base, dataset)
        if old:
            w.remove(UID_INDEX, old)
        rels = w.base.datasets.get(dataset, [])
        if rels and say:
            say(f"building the uid index of {dataset} from {len(rels)} files (once)")
        total += _index_files(con, w, dataset, rels)
    w.uid_index = FORMAT
    return total


def index_added(con, w: Writer, dataset: str) -> int:
    """Index the rows of every data file `w` placed into `dataset` (for writers that store
    events without an ingest's dedup, e.g. `generate --store` into a new store)."""
    rows = _index_files(con, w, dataset, w.added(dataset))
    if rows:
        merge_tiers(w, dataset, live_parts(w, dataset))
    return rows


def _index_files(con, w: Writer, dataset: str, rels: list[str]) -> int:
    """Add one index file of every row of the data files `rels` (in the store), sorted by
    DuckDB in one pass (spilling to its temp folder), written a slice at a time."""
    if not rels:
        return 0
    store = w.store
    parts = sorted({r.rsplit("/", 1)[0] for r in rels})
    where = {p: i for i, p in enumerate(parts)}
    files = pa.table({"filename": [store.path(dataset, r) for r in rels],
                      "code": pa.array([where[r.rsplit("/", 1)[0]] for r in rels], pa.int64())})
    con.register("uid_index_files", files)
    try:
        con.execute("SET VARIABLE uid_index_build = $1", [files.column(0).to_pylist()])
        reader = con.sql(
            f"SELECT {hash_sql()} AS uid_hash, f.code FROM read_parquet("
            "getvariable('uid_index_build'), filename = true, hive_partitioning = false) d "
            "JOIN uid_index_files f USING (filename) ORDER BY uid_hash"
        ).to_arrow_reader(SLICE_ROWS)
        path = w.scratch(f"uid-build-{next(_seq)}.arrow")
        try:
            rows = write_file(path, ((b.column(0).to_numpy(), b.column(1).to_numpy())
                                 for b in reader), parts)
        finally:
            reader.close()
    finally:
        con.unregister("uid_index_files")
    if rows:
        place(w, dataset, path, rows)
    return rows


def data_sql(store: Store, dataset: str) -> str:
    """SQL (uid_hash, part) of the rows of the files of `dataset` listed in the variable
    `uid_index_data`: what the index must hold for them."""
    base = store.path(dataset) + "/"
    return (f"SELECT {hash_sql()} AS uid_hash, substr(parse_dirpath(filename), "
            f"{len(base) + 1}) AS part FROM read_parquet(getvariable('uid_index_data'), "
            "filename = true, hive_partitioning = false)")


def read_all(store: Store, m: Manifest, dataset: str, local: Path) -> pa.Table:
    """Every entry (uid_hash, part: dictionary-encoded) of `dataset`'s index files."""
    chunks = []
    for rel in files_of(m, dataset):
        f = open_file(local_copy(store, rel, local))
        parts = pa.array(f.parts, pa.string())
        for h, c in zip(f.hashes, f.codes, strict=True):
            chunks.append(pa.record_batch([
                pa.array(h, pa.uint64()),
                pa.DictionaryArray.from_arrays(pa.array(c.astype(np.int32)), parts)],
                names=["uid_hash", "part"]))
    if not chunks:
        return pa.table({"uid_hash": pa.array([], pa.uint64()),
                         "part": pa.array([], pa.dictionary(pa.int32(), pa.string()))})
    return pa.Table.from_batches(chunks)
