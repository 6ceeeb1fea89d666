"""The uid index: every stored uid is found wherever it is stored, the index stays right through
ingests, compaction, retention and writes by versions that do not know it, and a lookup reads
only what its hits name."""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from pipeline.ingest.events import ingest_events
from pipeline.store import Store, uidbuild, uidindex
from pipeline.store.maintenance import apply_retention, compact
from pipeline.store.verify import verify
from tests.conftest import T0, make_azure_run, make_run, query, write_lines

DAY = timedelta(days=1)
VM = "0F8A1B2C-3D4E-4F50-8A6B-7C8D9E0F1A2B"


def ingest(store: Store, tmp_path: Path, name: str, events: list[dict]):
    return ingest_events(store, [str(write_lines(tmp_path / f"{name}.log", events))])


def index_entries(store: Store, dataset: str = "runs") -> list[tuple[int, str]]:
    t = uidbuild.read_all(store, store.manifest(), dataset, Path("/nonexistent"))
    return sorted(zip(t.column("uid_hash").to_pylist(),
                      [str(p) for p in t.column("part").to_pylist()], strict=True))


def md5_upper(uid: str) -> int:
    return int.from_bytes(hashlib.md5(uid.encode()).digest()[:8], "little")


def test_the_hash_is_the_first_eight_bytes_of_md5_and_stable() -> None:
    con = duckdb.connect()
    for uid in ("abc", "00000000-0000-4000-8000-000000000001", "ünïcode-uid", ""):
        got = con.execute(f"SELECT {uidindex.hash_sql('$1')}", [uid]).fetchall()[0][0]
        assert got == md5_upper(uid)
    assert md5_upper("abc") == 12704604231530709392  # pinned: an index outlives DuckDB upgrades


@pytest.mark.parametrize(("rows", "merged"), [
    pytest.param([], 0, id="none"),
    pytest.param([10], 0, id="one"),
    pytest.param([100, 6], 0, id="big-then-small"),
    pytest.param([6, 6], 2, id="two-equal"),
    pytest.param([30, 6, 6], 3, id="tail-reaches-a-quarter"),
    pytest.param([200, 30, 6], 0, id="geometric"),
    pytest.param([1000, 100, 6, 6], 2, id="newest-two"),
    pytest.param([200, 30, 6, 6], 3, id="newest-two-then-the-middle"),
    pytest.param([1000, 20, 5, 5, 5, 5], 5, id="tail-outgrows-the-middle"),
])
def test_tiers_to_merge(rows: list[int], merged: int) -> None:
    assert uidindex.tiers_to_merge(rows) == merged


def test_files_stay_few_over_many_ingests(store: Store, tmp_path: Path) -> None:
    sizes = []
    for k in range(40):
        ingest(store, tmp_path, f"b{k}", [make_run(f"i-{k}-{n}", at=T0 + k * DAY / 8,
                                                    uid=f"u-{k}-{n}") for n in range(5)])
        sizes.append([uidindex.rows_of(r) for r in uidindex.files_of(store.manifest(), "runs")])
    assert max(len(s) for s in sizes) <= 4 and sum(sizes[-1]) == 200
    for s in sizes:  # each file holds more than RATIO times all newer ones together
        assert all(s[i] > uidindex.RATIO * sum(s[i + 1:]) for i in range(len(s) - 1)), s
    assert verify(store) == []


def test_every_stored_uid_has_an_entry_naming_its_partition(store: Store, tmp_path: Path) -> None:
    ingest(store, tmp_path, "a", [make_run("i-1", uid="u-1"), make_run("i-2", at=T0 + DAY, uid="u-2"),
                                  make_azure_run(VM, uid="u-3")])
    assert index_entries(store) == sorted([
        (md5_upper("u-1"), "cloud=aws/event_date=2026-05-04"),
        (md5_upper("u-2"), "cloud=aws/event_date=2026-05-05"),
        (md5_upper("u-3"), "cloud=azure/event_date=2026-05-04")])
    assert store.manifest().uid_index == uidindex.FORMAT


@pytest.mark.parametrize("second", [
    pytest.param(make_run("i-1", at=T0 + 40 * DAY, uid="u-x"), id="another-month"),
    pytest.param({**make_azure_run(VM, at=T0 - 3 * DAY), "uid": "u-x"}, id="another-cloud-and-day"),
    pytest.param(make_run("i-1", at=T0, uid="u-x"), id="same-content-same-day"),
])
def test_a_uid_stored_anywhere_is_found_after_compaction(store: Store, tmp_path: Path,
                                                         second: dict) -> None:
    first = make_run("i-1", at=T0, uid="u-x")
    ingest(store, tmp_path, "a", [first, make_run("i-2", at=T0 + 40 * DAY)])
    compact(store)
    s = ingest(store, tmp_path, "b", [second])
    assert (s.stored, s.duplicates + s.quarantined) == (0, 1)
    assert (s.duplicates == 1) == (second == first)
    assert query(store, "runs", "SELECT count(*) FROM t WHERE uid = 'u-x'") == [(1,)]
    assert verify(store) == []


def test_an_index_written_by_a_version_without_it_is_rebuilt(store: Store, tmp_path: Path) -> None:
    """A commit by an older version drops the manifest's `uid_index` key (it writes only the keys
    it knows): the next ingest rebuilds the index from the data, so it misses nothing."""
    ingest(store, tmp_path, "a", [make_run("i-1", uid="u-1")])
    with store.writer() as w:  # stands for the older version: stores a file, no index entry
        out = w.scratch("old") / "cloud=aws" / "event_date=2026-05-09"
        out.mkdir(parents=True)
        rel = store.manifest().datasets["runs"][0]
        (out / "part-old-0.parquet").write_bytes((store.root / "runs" / rel).read_bytes())
        w.add_tree("runs", w.scratch("old"))
        w.uid_index = 0
        w.commit()
    assert store.manifest().uid_index == 0
    s = ingest(store, tmp_path, "b", [make_run("i-1", uid="u-1"), make_run("i-9", uid="u-9")])
    assert (s.stored, s.duplicates) == (1, 1)
    assert store.manifest().uid_index == uidindex.FORMAT
    assert (md5_upper("u-1"), "cloud=aws/event_date=2026-05-09") in index_entries(store)
    # the copy the older version stored under another day is a duplicate uid, as verify says
    assert any("duplicate uid in runs: u-1" in p for p in verify(store))


def test_retention_leaves_entries_that_do_no_harm_and_compaction_drops_them(
        store: Store, tmp_path: Path) -> None:
    ingest(store, tmp_path, "a", [make_run("i-1", at=T0, uid="u-old"),
                                  make_run("i-2", at=T0 + 5 * DAY, uid="u-new")])
    apply_retention(store, days=3, today=(T0 + 6 * DAY).date())
    assert md5_upper("u-old") in {h for h, _ in index_entries(store)}  # kept until a merge
    assert verify(store) == []
    # the event retention dropped is not "already stored": ingested again, it is stored again
    assert ingest(store, tmp_path, "b", [make_run("i-1", at=T0, uid="u-old")]).stored == 1
    assert verify(store) == []
    apply_retention(store, days=3, today=(T0 + 6 * DAY).date())
    compact(store)
    assert [h for h, _ in index_entries(store)] == sorted([md5_upper("u-new")])
    assert verify(store) == []


def test_a_lookup_reads_only_the_partitions_its_hits_name(store: Store, tmp_path: Path) -> None:
    ingest(store, tmp_path, "a", [make_run(f"i-{d}", at=T0 + d * DAY, uid=f"u-{d}")
                                  for d in range(30)])
    with store.writer() as w:
        con = duckdb.connect()
        hashes = f"SELECT {uidindex.hash_sql()} FROM (VALUES ('u-7'), ('u-21'), ('new')) t(uid)"
        assert uidindex.partitions_holding(con, w, "runs", hashes) == {
            "cloud=aws/event_date=2026-05-11", "cloud=aws/event_date=2026-05-25"}


def test_lookup_and_merge_agree_with_a_set(tmp_path: Path) -> None:
    """Property: over random adds (duplicate hashes included), lookups return exactly the
    entries added, and merging files (dropping dead partitions) keeps exactly the live ones."""
    rng = random.Random(19)
    store = Store(tmp_path / "lake")
    truth: list[tuple[int, str]] = []
    with store.writer() as w:
        parts = [f"cloud=aws/event_date=2026-05-{d:02d}" for d in range(1, 29)]
        for _ in range(6):
            n = rng.randrange(1, 3000)
            h = [rng.getrandbits(64) for _ in range(n)]
            h += rng.sample([x for x, _ in truth], min(len(truth), 5))  # same hash again
            ps = [rng.choice(parts) for _ in h]
            truth += list(zip(h, ps, strict=True))
            uidindex.add(w, "runs", pa.table({"uid_hash": pa.array(h, pa.uint64()), "part": ps}),
                         live=set(parts))
        probes = np.array([x for x, _ in rng.sample(truth, 500)] + [rng.getrandbits(64)
                                                                      for _ in range(500)],
                          np.uint64)
        w.commit()
        hits = uidindex.lookup(store, uidindex.files_of(w.base, "runs"), probes, tmp_path / "x")
        want = sorted(e for e in truth if e[0] in set(probes.tolist()))
        assert sorted(zip(hits.column("uid_hash").to_pylist(), hits.column("part").to_pylist(),
                          strict=True)) == want
    live = set(parts[:10])
    with store.writer() as w:
        uidindex.merge(w, "runs", uidindex.files_of(w.base, "runs"), live)
        w.commit()
    assert len(uidindex.files_of(store.manifest(), "runs")) == 1
    assert index_entries(store) == sorted(e for e in truth if e[1] in live)


def test_merges_stream_in_bounded_slices(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(uidindex, "SLICE_ROWS", 1000)
    store = Store(tmp_path / "lake")
    h = np.random.default_rng(1).integers(0, 2**63, 7000, dtype=np.int64).astype(np.uint64) * 2
    with store.writer() as w:
        for chunk in np.array_split(h, 3):
            uidindex.add(w, "runs", pa.table({"uid_hash": chunk, "part": ["p=1"] * len(chunk)}),
                         live={"p=1"})
        uidindex.merge(w, "runs", uidindex.current_files(w, "runs"), {"p=1"})
        w.commit()
    [rel] = uidindex.files_of(store.manifest(), "runs")
    f = uidindex.open_file(store.path("uid_index", rel))
    assert len(f.hashes) >= 3 and max(len(x) for x in f.hashes) < 2 * 1000
    assert np.array_equal(np.concatenate(f.hashes), np.sort(h))


def test_an_old_store_gets_its_index_at_the_next_ingest(tmp_path: Path) -> None:
    import shutil

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "store-v2"
    store = Store(shutil.copytree(fixture, tmp_path / "lake"))
    assert store.manifest().uid_index == 0 and verify(store) == []
    s = ingest(store, tmp_path, "x", [{**make_run("i-0aaa", at=T0 + 10 * DAY), "uid": "v1-a1"}])
    assert (s.stored, s.quarantined) == (0, 1)  # stored on another day by the old version
    assert store.manifest().uid_index == uidindex.FORMAT and verify(store) == []
    assert len(index_entries(store)) == 6 and len(index_entries(store, "joins")) == 1


def test_verify_passes_index_checks_on_retired_and_rebuilt_stores(store: Store, tmp_path) -> None:
    ingest(store, tmp_path, "a", [make_run("i-1", at=T0, uid="u-1")])
    apply_retention(store, days=1, today=date(2026, 6, 1))
    assert verify(store) == [] and query(store, "runs", "SELECT count(*) FROM t") == [(0,)]
