"""The uid index: for every stored event, a 64-bit hash of its uid and the partition holding it,
so that an ingest finds a uid stored anywhere (another day, another cloud) at a cost that
follows its input, not the history.

Files: `uid_index/<dataset>/part-<ingest id>-<n>-r<rows>.arrow`, Arrow IPC without compression,
so that a lookup memory-maps them and its binary search reads only the pages it needs, in
record batches of about SLICE_ROWS entries (a lookup pays per batch). Columns: `uid_hash`
(UINT64, ascending; `md5_number_upper(uid)`: the first 8 bytes of the uid's MD5, stable across
DuckDB versions) and `part` (an unsigned code into the partition folders listed in the file's
schema metadata). 10 bytes per stored event.

Each write that stores events adds one file holding their entries; then the newest files are
merged (size-tiered: a file stays only while it holds more than RATIO times the rows of every
newer file together), so a store keeps O(log N) files and an event's entry is rewritten
O(log N) times in all. A merge streams through hash ranges, in bounded memory.

An entry says "this uid may be stored in that partition": a lookup's hits are confirmed
against the rows of the partitions they name (pipeline.ingest.dedup). So a hash collision costs
one extra read, never a wrong verdict, and entries of partitions retention dropped do no harm
(a merge drops them). `Manifest.uid_index` holds FORMAT while the index lists every stored
event; a commit by a version that does not know the index drops it, and the next ingest
rebuilds the index from the data (`pipeline.store.uidbuild.ensure`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.store.layout import INDEXED, UID_INDEX
from pipeline.store.manifest import Manifest, Store, Writer

FORMAT = 1  # md5_number_upper(uid), sorted, partition codes in the schema metadata
RATIO = 4
SLICE_ROWS = 4_000_000  # rows per record batch written by a merge (bounds its memory)
_NAME = re.compile(r"part-(?P<id>.+)-(?P<n>\d+)-r(?P<rows>\d+)\.arrow$")
_seq = itertools.count()

def hash_sql(column: str = "uid") -> str:
    """SQL of the UINT64 hash the index keeps for a uid."""
    return f"md5_number_upper({column})"


def part_sql(keys: Iterable[tuple[str, str]]) -> str:
    """SQL of a partition folder (`cloud=aws/event_date=2026-05-04`) from (key, expression)."""
    return " || '/' || ".join(f"'{k}=' || CAST({e} AS VARCHAR)" for k, e in keys)


def files_of(m: Manifest, dataset: str) -> list[str]:
    """The index files of `dataset` (relative to `uid_index/`), oldest first."""
    return sorted((r for r in m.datasets.get(UID_INDEX, []) if r.startswith(f"{dataset}/")),
                  key=_order)


def _order(rel: str) -> tuple[str, int]:
    m = _NAME.search(rel)
    return (m["id"], int(m["n"])) if m else (rel, 0)


def rows_of(rel: str) -> int:
    """Entries in an index file (its name says)."""
    m = _NAME.search(rel)
    return int(m["rows"]) if m else 0


# ---- reading -------------------------------------------------------------------------------


@dataclass
class IndexFile:
    """One memory-mapped index file: its sorted hashes and partition codes per record batch."""

    hashes: list[np.ndarray]
    codes: list[np.ndarray]
    parts: list[str]

    def __len__(self) -> int:
        return sum(len(h) for h in self.hashes)


def open_file(path: str | Path) -> IndexFile:
    """Memory-map one index file (its arrays are views on the map: nothing is read yet)."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    parts = json.loads(reader.schema.metadata[b"parts"])
    hashes, codes = [], []
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        if batch.num_rows:
            hashes.append(batch.column(0).to_numpy(zero_copy_only=True))
            codes.append(batch.column(1).to_numpy(zero_copy_only=True))
    return IndexFile(hashes, codes, parts)


def find(f: IndexFile, probes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(hash, partition) of every entry of `f` whose hash is in `probes` (sorted UINT64):
    arrays of the hashes found and of their partition folders."""
    found_h, found_p = [], []
    for h, c in zip(f.hashes, f.codes, strict=True):
        p = probes[np.searchsorted(probes, h[0], "left"):np.searchsorted(probes, h[-1], "right")]
        if not len(p):
            continue
        left = np.searchsorted(h, p, side="left")
        hit = h[np.minimum(left, len(h) - 1)] == p
        if not hit.any():
            continue
        p, left = p[hit], left[hit]  # the right ends only for hits (usually few)
        n = np.searchsorted(h, p, side="right") - left
        # every matching entry (usually one per hit): positions left .. right-1
        left, n = left[n > 0], n[n > 0]
        pos = np.repeat(left, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        found_h.append(h[pos])
        found_p.extend(f.parts[i] for i in c[pos].tolist())
    if not found_h:
        return np.empty(0, np.uint64), []
    return np.concatenate(found_h), found_p


def partitions_holding(con, w: Writer, dataset: str, hashes: str) -> set[str]:
    """Partition folders of `dataset` that the index says may hold a uid whose hash
    (`hash_sql`) the query `hashes` on `con` returns (one column)."""
    rels = current_files(w, dataset)  # committed, or built by this writer (`ensure`)
    if not rels:
        return set()
    probes = con.execute(f"SELECT DISTINCT * FROM ({hashes}) t(h) ORDER BY h").fetchnumpy()["h"]
    if w.store.remote:
        local = cache_dir(w.store)
        hits = lookup(w.store, rels, probes, local)
        prune_cache(local, [r for name in INDEXED for r in current_files(w, name)])
    else:
        hits = lookup(w.store, rels, probes, w.scratch("uid-index"))
    return set(pc.unique(hits.column("part")).to_pylist())


def lookup(store: Store, rels: list[str], probes: np.ndarray, local: Path) -> pa.Table:
    """Entries (uid_hash, part) whose hash is one of `probes`, from the index files `rels`;
    object-storage files are fetched into `local` once (`local_copy`)."""
    probes = np.sort(np.asarray(probes, np.uint64))  # (np.unique's first call costs ~15 ms)
    probes = probes[np.concatenate(([True], probes[1:] != probes[:-1]))] if len(probes) else probes
    hs, ps = [], []
    for rel in rels:
        h, p = find(open_file(local_copy(store, rel, local)), probes)
        hs.append(h)
        ps.extend(p)
    h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
    return pa.table({"uid_hash": pa.array(h, pa.uint64()), "part": pa.array(ps, pa.string())})


def local_copy(store: Store, rel: str, local: Path) -> Path:
    """A local path of index file `rel`: the file itself, or (object storage) a copy under
    `local`, downloaded once (index files are never rewritten: their names are unique)."""
    if not store.remote:
        return Path(store.path(UID_INDEX, rel))
    dest = local / rel.replace("/", "__")
    if not dest.exists():
        local.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        store.fs.get_file(store.fs_path(UID_INDEX, rel), str(tmp))
        os.replace(tmp, dest)
    return dest


def cache_dir(store: Store) -> Path:
    """Where index files of an object-storage store are kept between writes: a folder of this
    user's (mode 0700) in the temporary directory, one per store URL."""
    base = Path(tempfile.gettempdir()) / f"discovery-history-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{base} is not a private folder of this user")
    return base / hashlib.sha256(store.url.encode()).hexdigest()[:16] / "uid_index"


def prune_cache(local: Path, rels: list[str]) -> None:
    """Delete cached copies of index files other than `rels`."""
    keep = {rel.replace("/", "__") for rel in rels}
    if local.is_dir():
        for p in local.iterdir():
            if p.name not in keep:
                p.unlink(missing_ok=True)


# ---- writing -------------------------------------------------------------------------------


def write_file(path: Path, batches: Iterable[tuple[np.ndarray, np.ndarray]], parts: list[str]) -> int:
    """Write sorted (hashes, codes) batches as one index file; returns its rows."""
    code = pa.uint16() if len(parts) <= 0xFFFF else pa.uint32()
    schema = pa.schema([("uid_hash", pa.uint64()), ("part", code)],
                       metadata={"parts": json.dumps(parts), "format": str(FORMAT)})
    rows = 0
    with pa.OSFile(str(path), "wb") as out, pa.ipc.new_file(out, schema) as w:
        for h, c in _coalesced(batches):
            w.write_batch(pa.record_batch([pa.array(h, pa.uint64()), pa.array(c, code)],
                                          schema=schema))
            rows += len(h)
    return rows


def _coalesced(batches: Iterable[tuple[np.ndarray, np.ndarray]]
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches joined into about SLICE_ROWS entries each (DuckDB hands out small ones; a
    lookup pays per batch), empty ones dropped."""
    hs, cs, n = [], [], 0
    for h, c in batches:
        if len(h):
            hs.append(h)
            cs.append(c)
            n += len(h)
        if n >= SLICE_ROWS:
            yield np.concatenate(hs), np.concatenate(cs)
            hs, cs, n = [], [], 0
    if n:
        yield np.concatenate(hs), np.concatenate(cs)


def place(w: Writer, dataset: str, path: Path, rows: int) -> str:
    rel = f"{dataset}/part-{w.ingest_id}-{next(_seq)}-r{rows}.arrow"
    w.add_files(UID_INDEX, {rel: path})
    return rel


def add(w: Writer, dataset: str, entries: pa.Table, live: set[str] | None = None) -> None:
    """Add entries (uid_hash UINT64, part) for events `w` stores in `dataset`, then merge the
    newest index files as the tiers require. `live`: the dataset's partition folders after the
    commit (default: from the writer's base and its added files)."""
    h = entries.column("uid_hash").to_numpy().astype(np.uint64, copy=False)
    part = entries.column("part").combine_chunks().dictionary_encode()
    order = np.argsort(h, kind="stable")
    parts = part.dictionary.to_pylist()
    codes = part.indices.to_numpy(zero_copy_only=False)[order]
    add_sorted(w, dataset, h[order], codes, parts)
    merge_tiers(w, dataset, live if live is not None else live_parts(w, dataset))


def add_sorted(w: Writer, dataset: str, hashes: np.ndarray, codes: np.ndarray,
               parts: list[str]) -> None:
    """Add one index file of entries already sorted by hash (`codes` into `parts`) for events
    `w` stores in `dataset`, without merging the tiers (the caller runs `merge_tiers` once its
    writes are done: an ingest, after its last batch)."""
    if len(hashes):
        path = w.scratch(f"uid-index-{next(_seq)}.arrow")
        place(w, dataset, path, write_file(path, [(hashes, codes)], parts))


def live_parts(w: Writer, dataset: str) -> set[str]:
    """Partition folders of `dataset` that hold files once `w` commits."""
    removed = w.removed(dataset)
    rels = [r for r in w.base.datasets.get(dataset, []) if r not in removed] + w.added(dataset)
    return {r.rsplit("/", 1)[0] for r in rels if "/" in r}


def current_files(w: Writer, dataset: str) -> list[str]:
    """The dataset's index files once `w` commits, oldest first."""
    removed = w.removed(UID_INDEX)
    rels = [r for r in files_of(w.base, dataset) if r not in removed]
    rels += [r for r in w.added(UID_INDEX) if r.startswith(f"{dataset}/")]
    return sorted(rels, key=_order)


def tiers_to_merge(rows: list[int]) -> int:
    """How many of the newest files (rows oldest first) to merge into one: from the oldest file
    that holds no more than RATIO times the rows of all newer ones (0: none)."""
    newer = 0
    first = len(rows)
    for i in range(len(rows) - 1, -1, -1):
        if i < len(rows) - 1 and rows[i] <= RATIO * newer:
            first = i
        newer += rows[i]
    return len(rows) - first if first < len(rows) - 1 else 0


def merge_tiers(w: Writer, dataset: str, live: set[str]) -> None:
    rels = current_files(w, dataset)
    n = tiers_to_merge([rows_of(r) for r in rels])
    if n:
        merge(w, dataset, rels[-n:], live)


def merge(w: Writer, dataset: str, rels: list[str], live: set[str]) -> None:
    """Replace index files `rels` (committed or added by `w`) by one, dropping entries whose
    partition is not in `live`; streams through hash ranges of about SLICE_ROWS entries."""
    local = w.scratch("uid-index-in")
    files = [open_file(_readable(w, rel, local)) for rel in rels]
    parts = sorted(live & {p for f in files for p in f.parts})
    where = {p: i for i, p in enumerate(parts)}
    remap = [np.array([where.get(p, -1) for p in f.parts], np.int64) for f in files]
    path = w.scratch(f"uid-index-{next(_seq)}.arrow")
    rows = write_file(path, _merged(files, remap, sum(len(f) for f in files)), parts)
    added = set(w.added(UID_INDEX))
    w.remove(UID_INDEX, [r for r in rels if r not in added])
    w.discard(UID_INDEX, [r for r in rels if r in added])
    if rows:
        place(w, dataset, path, rows)


def compact(w: Writer, dataset: str) -> None:
    """Merge the dataset's index files into one when there are several, or when one names
    partitions no longer stored (their entries are dropped)."""
    rels = current_files(w, dataset)
    live = live_parts(w, dataset)
    local = w.scratch("uid-index-in")
    if len(rels) > 1 or any(set(open_file(_readable(w, r, local)).parts) - live for r in rels):
        merge(w, dataset, rels, live)


def _readable(w: Writer, rel: str, local: Path) -> Path:
    """A local path of index file `rel`, committed or placed by `w` (both are in the store)."""
    return local_copy(w.store, rel, local)


def _merged(files: list[IndexFile], remap: list[np.ndarray], total: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Sorted (hashes, codes) batches of every entry of `files` whose code maps to a live part."""
    if not total:
        return
    slices = max(1, -(-total // SLICE_ROWS))
    # hash-range bounds at quantiles of the value space (hashes are uniform)
    bounds = [int(i * (2**64 // slices)) for i in range(slices)] + [2**64]
    for lo, hi in itertools.pairwise(bounds):
        hs, cs = [], []
        for f, rm in zip(files, remap, strict=True):
            for h, c in zip(f.hashes, f.codes, strict=True):
                a = np.searchsorted(h, np.uint64(lo), side="left")
                b = len(h) if hi == 2**64 else np.searchsorted(h, np.uint64(hi), side="left")
                if b > a:
                    code = rm[c[a:b].astype(np.int64)]
                    keep = code >= 0
                    hs.append(h[a:b][keep])
                    cs.append(code[keep])
        if hs:
            h = np.concatenate(hs)
            c = np.concatenate(cs)
            order = np.argsort(h, kind="stable")
            yield h[order], c[order]
