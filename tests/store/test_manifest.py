"""The store's transactions: staging, atomic commit, crash sweep and the cross-process lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipeline.store import Store, StoreError, StoreLocked
from pipeline.store.layout import DATASETS, RUNS
from pipeline.store.manifest import LOCK, MANIFEST, STAGING, Manifest

PYTHON = str(Path(sys.executable))

# --------------------------------------------------------------------------- helpers


def produce_runs(folder: Path, rows: list[tuple[str, str]]) -> Path:
    """Write real hive-partitioned Parquet (runs columns) for (cloud, event_date) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    values = ", ".join(f"('{c}', DATE '{d}', 'uid-{i}')" for i, (c, d) in enumerate(rows))
    cols = [f"v.{c}" if c == "uid" else f"CAST(NULL AS {t}) AS {c}" for c, t in RUNS.columns]
    con.execute(
        f"COPY (SELECT {', '.join(cols)}, v.cloud, v.event_date FROM (VALUES {values}) "
        f"v(cloud, event_date, uid)) TO '{folder}' "
        "(FORMAT parquet, PARTITION_BY (cloud, event_date))"
    )
    con.close()
    return folder


def visible_uids(store: Store) -> list[str]:
    """What a reader sees: the committed runs files only (the schema file first)."""
    con = duckdb.connect()
    try:
        return sorted(
            r[0]
            for r in con.execute(
                "SELECT uid FROM read_parquet($1, union_by_name = true, hive_partitioning = true)",
                [store.files("runs")],
            ).fetchall()
        )
    finally:
        con.close()


def data_files(store: Store, dataset: str) -> list[str]:
    base = store.root / dataset
    return (
        sorted(p.relative_to(base).as_posix() for p in base.rglob("*.parquet"))
        if base.exists()
        else []
    )


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


# --------------------------------------------------------------------------- manifest


def test_fresh_store_has_empty_manifest_and_require_fails(store: Store) -> None:
    assert not store.exists()
    assert store.manifest() == Manifest()
    with pytest.raises(StoreError) as e:
        store.require()
    assert str(store.root) in str(e.value)


def test_manifest_json_round_trip_is_sorted() -> None:
    m = Manifest(version=3, datasets={"runs": ["b", "a"], "joins": ["z"]})
    text = m.to_json()
    assert list(json.loads(text)["datasets"]) == ["joins", "runs"]
    back = Manifest.from_json(text)
    assert back.version == 3 and back.datasets == {"joins": ["z"], "runs": ["a", "b"]}


def test_unreadable_manifest_is_a_store_error(store: Store) -> None:
    store.root.mkdir(parents=True)
    (store.root / MANIFEST).write_text("{not json")
    with pytest.raises(StoreError) as e:
        store.manifest()
    assert MANIFEST in str(e.value)


# --------------------------------------------------------------------------- writer / commit


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param("normally", id="exits-normally"),
        pytest.param("raising", id="raises"),
    ],
)
def test_writer_without_commit_publishes_nothing(store: Store, leave: str) -> None:
    with store.writer() as w:
        w.add_tree("runs", produce_runs(w.scratch("out"), [("aws", "2026-05-04")]))
        w.commit()
    before = (store.root / MANIFEST).read_bytes()

    class Boom(Exception):
        pass

    expect = pytest.raises(Boom) if leave == "raising" else contextlib.nullcontext()
    with expect, store.writer() as w:
        moved = w.add_tree("runs", produce_runs(w.scratch("out"), [("azure", "2026-05-05")]))
        assert moved == ["cloud=azure/event_date=2026-05-05/data_0.parquet"]
        if leave == "raising":
            raise Boom
    assert (store.root / MANIFEST).read_bytes() == before
    assert store.manifest().version == 1
    assert visible_uids(store) == ["uid-0"]  # only the committed write
    assert not any((store.root / STAGING).iterdir())


@pytest.mark.parametrize("leave", ["normally", "raising"])
def test_writer_without_commit_leaves_no_orphan_files(store: Store, leave: str) -> None:
    try:
        with store.writer() as w:
            w.add_tree("runs", produce_runs(w.scratch("out"), [("azure", "2026-05-05")]))
            if leave == "raising":
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    with store.writer():
        pass  # the next writer sweeps whatever a dead one left
    assert data_files(store, "runs") == []


def test_commit_publishes_atomically_and_versions_increment(store: Store) -> None:
    versions = []
    for i, day in enumerate(["2026-05-03", "2026-05-04", "2026-05-04"]):
        with store.writer(ingest_id=f"w{i}") as w:
            produced = produce_runs(w.scratch("out"), [("aws", day)])
            # rename the file so two writes of one partition do not collide
            for p in produced.rglob("*.parquet"):
                p.rename(p.with_name(f"part-w{i}.parquet"))
            w.add_tree("runs", produced)
            assert store.manifest().version == i  # staged, not yet visible
            assert len(visible_uids(store)) == i
            versions.append(w.commit().version)
    assert versions == [1, 2, 3]
    assert store.exists()
    assert store.manifest().datasets["runs"] == [
        "cloud=aws/event_date=2026-05-03/part-w0.parquet",
        "cloud=aws/event_date=2026-05-04/part-w1.parquet",
        "cloud=aws/event_date=2026-05-04/part-w2.parquet",
    ]
    assert visible_uids(store) == ["uid-0"] * 3
    # no temp manifests, no staging folders left behind
    assert sorted(p.name for p in store.root.iterdir() if p.name.startswith(".")) == []
    assert list((store.root / STAGING).iterdir()) == []


def test_commit_without_changes_is_a_noop(store: Store) -> None:
    with store.writer() as w:
        assert not w.changed
        assert w.commit().version == 0
    assert not store.exists()  # no manifest written for an empty write


def test_remove_drops_files_at_commit_and_deletes_them_after_the_grace(
        store: Store, monkeypatch) -> None:
    from pipeline.store import manifest

    with store.writer(ingest_id="a") as w:
        w.add_tree(
            "runs", produce_runs(w.scratch("out"), [("aws", "2026-05-04"), ("azure", "2026-05-04")])
        )
        w.commit()
    gone = "cloud=aws/event_date=2026-05-04/data_0.parquet"
    with store.writer(ingest_id="b") as w:
        w.remove("runs", [gone])
        m = w.commit()
    assert m.version == 2
    assert m.datasets["runs"] == ["cloud=azure/event_date=2026-05-04/data_0.parquet"]
    assert list(m.retired) == [f"runs/{gone}"]
    assert (store.root / "runs" / gone).exists()  # a reader that listed it still reads it
    with store.writer(ingest_id="c"):  # within the grace: kept
        pass
    assert (store.root / "runs" / gone).exists()
    monkeypatch.setattr(manifest, "RETIRE_GRACE", timedelta(0))
    with store.writer(ingest_id="d") as w:  # past it: deleted first, forgotten at the commit
        assert not (store.root / "runs" / gone).exists()
        w.add_tree("runs", produce_runs(w.scratch("out"), [("aws", "2026-05-05")]))
        m = w.commit()
    assert m.retired == {}


def test_commit_refuses_when_manifest_changed_underneath(store: Store) -> None:
    with store.writer() as w:
        w.add_tree("runs", produce_runs(w.scratch("out"), [("aws", "2026-05-04")]))
        (store.root / MANIFEST).write_text(Manifest(version=7).to_json())
        with pytest.raises(StoreError, match="manifest changed"):
            w.commit()
    assert store.manifest().version == 7


def test_schema_files_anchor_every_dataset(store: Store) -> None:
    with store.writer():
        pass
    con = duckdb.connect()
    for name, ds in DATASETS.items():
        [schema_file] = store.files(name)
        cols = [
            r[0]
            for r in con.execute(
                "DESCRIBE SELECT * FROM read_parquet($1, hive_partitioning = false)", [schema_file]
            ).fetchall()
        ]
        assert cols == ds.column_names, name
        assert con.execute("SELECT count(*) FROM read_parquet($1)", [schema_file]).fetchone() == (
            0,
        )


# --------------------------------------------------------------------------- crash sweep


def dead_writer_leftovers(
    store: Store, ingest_id: str, moved: list[str], *, intents: bool = True
) -> list[Path]:
    """What a writer killed between add_tree and commit leaves: files in the dataset folder that
    the manifest does not name, and its staging folder with the move intents (and scratch)."""
    staging = store.root / STAGING / ingest_id
    (staging / "out" / "cloud=aws").mkdir(parents=True)
    (staging / "stage.duckdb").write_bytes(b"half-written scratch")
    dests = []
    for rel in moved:
        dest = store.root / "runs" / rel
        produce_runs(staging / "tmp", [("aws", "2026-05-04")])
        dest.parent.mkdir(parents=True, exist_ok=True)
        next((staging / "tmp").rglob("*.parquet")).replace(dest)
        dests.append(dest)
    if intents:
        (staging / "moved.jsonl").write_text("".join(json.dumps(str(d)) + "\n" for d in dests))
    return dests


def test_dead_writer_leftovers_are_swept_by_next_writer(store: Store) -> None:
    with store.writer(ingest_id="ok") as w:
        w.add_tree("runs", produce_runs(w.scratch("out"), [("aws", "2026-05-04")]))
        w.commit()
    committed = store.manifest()
    orphans = dead_writer_leftovers(
        store,
        "20260504T100000Z-dead0001",
        [
            "cloud=aws/event_date=2026-05-04/part-dead-0.parquet",
            "cloud=azure/event_date=2026-05-05/part-dead-0.parquet",
        ],
    )
    dead_writer_leftovers(store, "20260504T100000Z-dead0002", [], intents=False)
    assert all(p.exists() for p in orphans)
    assert visible_uids(store) == ["uid-0"]  # readers never saw the uncommitted files

    with store.writer(ingest_id="next") as w:
        assert not any(p.exists() for p in orphans)
        assert [p.name for p in (store.root / STAGING).iterdir()] == ["next"]
        assert w.base == committed
    assert store.manifest() == committed
    assert data_files(store, "runs") == ["cloud=aws/event_date=2026-05-04/data_0.parquet"]


def test_sweep_tolerates_bad_intent_lines(store: Store) -> None:
    staging = store.root / STAGING / "dead"
    staging.mkdir(parents=True)
    keep = store.root / "runs" / "cloud=aws" / "keep.parquet"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"x")
    (staging / "moved.jsonl").write_text('not json\n"/nonexistent/file.parquet"\n{"half": ')
    with store.writer():
        pass
    assert not staging.exists()
    assert keep.exists()


# --------------------------------------------------------------------------- lock across processes

HOLDER = """
import sys, time
from pipeline.store import Store
with Store(sys.argv[1]).writer(ingest_id="holder") as w:
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(store: Store):
    """Another process holding the store's writer lock (killed at teardown)."""
    proc = subprocess.Popen(
        [PYTHON, "-c", HOLDER, str(store.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_lock_held_by_another_process_names_the_holder(store: Store, holder) -> None:
    t = time.monotonic()
    with pytest.raises(StoreLocked) as e, store.writer(timeout=0.3):
        pytest.fail("got the lock while another process holds it")
    assert time.monotonic() - t < 5
    msg = str(e.value)
    assert f"pid {holder.pid} on " in msg
    assert str(store.root) in msg
    assert isinstance(e.value, StoreError)


def test_lock_is_free_after_holder_is_killed(store: Store, holder) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert holder.returncode == -signal.SIGKILL
    assert (store.root / STAGING / "holder").exists()  # it died without cleaning up
    with store.writer(timeout=2.0, ingest_id="after") as w:
        assert w.ingest_id == "after"
        assert not (store.root / STAGING / "holder").exists()  # swept
        assert f"pid {os.getpid()} on " in (store.root / LOCK).read_text()
    assert (store.root / LOCK).read_text() == ""  # released: holder info cleared


def test_lock_is_reusable_in_one_process(store: Store) -> None:
    for _ in range(3):
        with store.writer(timeout=0.5):
            pass
    before = snapshot_tree(store.root)
    with store.writer(timeout=0.5):
        pass
    assert snapshot_tree(store.root) == before  # an empty write changes no file
