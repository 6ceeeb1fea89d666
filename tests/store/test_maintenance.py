"""Store upkeep: compaction keeps rows, retention drops whole partitions, verify finds damage."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect
from pipeline.store import Store, StoreError, manifest
from pipeline.store.maintenance import apply_retention, compact
from pipeline.store.verify import verify
from tests.conftest import (
    make_aws_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)

D1 = datetime(2026, 5, 1, 10, tzinfo=UTC)
D5 = datetime(2026, 5, 5, 10, tzinfo=UTC)


def _rows(store: Store) -> dict[str, list[tuple]]:
    with connect(store) as con:
        return {name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
                for name in ("runs", "joins", "quarantine", "node_snapshots",
                             "user_task_snapshots", "snapshot_log", "ingest_log")}


def _build(store: Store, tmp_path: Path, days=(D1, D5)) -> None:
    """Days of runs in two ingests each (two files per partition), snapshots on each day."""
    for day in days:
        first = [make_run(f"i-{n:04d}", "TDS00W" if n % 2 else "TDS00I", day + timedelta(minutes=n),
                          exit_code=150 if n % 2 else 0) for n in range(6)]
        first.append(make_azure_run("0f8e1b2a-1111-4222-8333-444455556666", "TAZ00E", day,
                                    api_error="boom"))
        second = [make_run(f"i-{n:04d}", "TDS00I", day + timedelta(hours=1, minutes=n))
                  for n in range(4)]
        second.append("{not json")
        for i, batch in enumerate((first, second)):
            path = write_lines(tmp_path / f"{day:%Y%m%d}-{i}" / "events.jsonl", batch)
            ingest_events(store, [str(path)])
        nodes = write_json(tmp_path / f"nodes-{day:%d}.json", [make_aws_node("i-0000")])
        tasks = write_json(tmp_path / f"tasks-{day:%d}.json",
                           [make_task("t1", "ec2-ssm-script-failure", ["i-0001", "i-0003"])])
        ingest_snapshot(store, "nodes", str(nodes), day + timedelta(hours=2))
        ingest_snapshot(store, "user_tasks", str(tasks), day + timedelta(hours=2))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("maintenance")
    store = Store(root / "lake")
    _build(store, root)
    assert verify(store) == []
    return root


@pytest.fixture
def built(template: Path, tmp_path: Path) -> Store:
    """A copy of the two-day store (and its input files) for one test to change."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    return Store(tmp_path / "lake")


def test_compact_rewrites_each_partition_into_one_file_with_the_same_rows(built: Store):
    before = _rows(built)
    files_before = {k: len(v) for k, v in built.manifest().datasets.items()}
    assert files_before["runs"] > len({r.rsplit("/", 1)[0] for r in built.manifest().datasets["runs"]})

    summary = compact(built)

    assert summary["partitions"] > 0 and summary["files_before"] > summary["files_after"]
    assert _rows(built) == before
    for name, rels in built.manifest().datasets.items():
        parts = [r.rsplit("/", 1)[0] if "/" in r else "" for r in rels]
        assert len(parts) == len(set(parts)), name
    assert verify(built) == []
    # the replaced files are retired: on disk for readers that listed them, until the grace ends
    on_disk = sorted(p.relative_to(built.root / "runs").as_posix()
                     for p in (built.root / "runs").rglob("*.parquet"))
    m = built.manifest()
    retired = sorted(r.split("/", 1)[1] for r in m.retired if r.startswith("runs/"))
    assert retired and not set(retired) & set(m.datasets["runs"])
    assert on_disk == sorted(m.datasets["runs"] + retired)


def test_compact_twice_changes_nothing_the_second_time(built: Store):
    compact(built)
    version = built.manifest().version
    assert compact(built)["partitions"] == 0
    assert built.manifest().version == version


def test_ingest_after_compaction_still_dedups(built: Store, tmp_path: Path):
    compact(built)
    again = ingest_events(built, [str(tmp_path / "20260501-0" / "events.jsonl")])
    assert again.stored == 0 and again.duplicates == 7


def test_compact_needs_a_store(tmp_path: Path):
    with pytest.raises(StoreError, match="no store"):
        compact(Store(tmp_path / "nothing"))


def test_retention_drops_whole_partitions_before_the_cutoff(built: Store, monkeypatch):
    before = _rows(built)
    summary = apply_retention(built, days=3, today=date(2026, 5, 6))  # cutoff 2026-05-03

    assert summary["cutoff"] == "2026-05-03"
    after = _rows(built)
    with connect(built) as con:
        for name, col in (("runs", "time"), ("joins", "time"), ("node_snapshots", "captured_at"),
                          ("user_task_snapshots", "captured_at"), ("snapshot_log", "captured_at")):
            oldest = con.execute(f"SELECT min({col}) FROM {name}").fetchall()[0][0]
            assert oldest is None or oldest >= datetime(2026, 5, 3), name
        kept = con.execute("SELECT count(*) FROM runs WHERE event_date = DATE '2026-05-05'")
        assert kept.fetchall()[0][0] == len(after["runs"]) > 0
    assert summary["rows"]["runs"] == len(before["runs"]) - len(after["runs"])
    kinds = [r[1] for r in after["ingest_log"]]
    assert kinds.count("retention") == 1
    assert [r[0] for r in after["snapshot_log"]] == ["nodes", "user_tasks"]  # day 5 only
    assert verify(built) == []
    for rel in built.manifest().datasets["runs"]:
        assert "2026-05-01" not in rel
    # the dropped files are retired; the first write after the grace deletes them
    old = list((built.root / "runs").rglob("event_date=2026-05-01/*.parquet"))
    assert old and all(f"runs/{p.relative_to(built.root / 'runs').as_posix()}"
                       in built.manifest().retired for p in old)
    monkeypatch.setattr(manifest, "RETIRE_GRACE", timedelta(0))
    with built.writer():
        pass
    assert not list((built.root / "runs").rglob("event_date=2026-05-01/*.parquet"))


def test_retention_with_nothing_old_commits_nothing(built: Store):
    version = built.manifest().version
    assert apply_retention(built, days=30, today=date(2026, 5, 6))["partitions"] == 0
    assert built.manifest().version == version


def test_retention_days_must_be_positive(built: Store):
    with pytest.raises(ValueError, match=">= 1"):
        apply_retention(built, days=0, today=date(2026, 5, 6))


# --- verify: each kind of damage is named -----------------------------------------------------


def _inject(store: Store, dataset: str, rel: str, source: Path) -> None:
    """Commit a copy of `source` as `dataset/rel` (bypassing the ingest) through a Writer, which
    then cannot vouch for the uid index (the next ingest rebuilds it)."""
    with store.writer() as w:
        target = w.scratch("inject") / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        w.add_tree(dataset, w.scratch("inject"))
        w.uid_index = 0
        w.commit()


def _first(store: Store, dataset: str, contains: str = "") -> str:
    return next(r for r in store.manifest().datasets[dataset] if contains in r)


def _orphan(store: Store) -> str:
    rel = _first(store, "runs")
    shutil.copy(store.root / "runs" / rel, store.root / "runs" / rel.replace("part-", "stray-"))
    return "orphan file runs/"


def _missing(store: Store) -> str:
    (store.root / "runs" / _first(store, "runs")).unlink()
    return "missing file runs/"


def _duplicate(store: Store) -> str:
    rel = _first(store, "runs", "cloud=aws")
    _inject(store, "runs", rel.replace("part-", "copy-"), store.root / "runs" / rel)
    return "duplicate uid in runs"


def _counts(store: Store) -> str:
    with store.writer() as w:
        w.remove("runs", [_first(store, "runs", "cloud=azure")])
        w.commit()
    return "row count mismatch: runs + joins hold"


def _schema(store: Store) -> str:
    rel = _first(store, "ingest_log")
    _inject(store, "joins", "event_date=2026-05-01/part-bad.parquet", store.root / "ingest_log" / rel)
    return "schema mismatch in joins/event_date=2026-05-01/part-bad.parquet"


def _partition(store: Store) -> str:
    rel = _first(store, "runs", "event_date=2026-05-01")
    _inject(store, "runs", "cloud=aws/event_date=2026-05-02/part-moved.parquet",
            store.root / "runs" / rel)
    return "partition mismatch in runs/cloud=aws/event_date=2026-05-02/part-moved.parquet"


def _staging(store: Store) -> str:
    (store.root / "_staging" / "20260101T000000Z-deadbeef").mkdir(parents=True)
    return "leftover staging _staging/20260101T000000Z-deadbeef"


def _unindexed(store: Store) -> str:
    """The uid index loses a file, yet the manifest still vouches for it."""
    from pipeline.store import uidindex

    with store.writer() as w:
        w.remove("uid_index", uidindex.files_of(w.base, "runs")[:1])
        w.commit()
    return "uid index of runs lacks"


def _index_orphan(store: Store) -> str:
    from pipeline.store import uidindex

    rel = uidindex.files_of(store.manifest(), "runs")[0]
    shutil.copy(store.root / "uid_index" / rel, store.root / "uid_index" / "runs" / "stray.arrow")
    return "orphan file uid_index/runs/stray.arrow"


def _snapshot_rows(store: Store) -> str:
    rel = _first(store, "node_snapshots")
    _inject(store, "node_snapshots", rel.replace("part-", "again-"), store.root / "node_snapshots" / rel)
    return "row count mismatch: node_snapshots holds"


@pytest.mark.parametrize(
    "damage",
    [_orphan, _missing, _duplicate, _counts, _schema, _partition, _staging, _snapshot_rows,
     _unindexed, _index_orphan],
    ids=lambda f: f.__name__.strip("_"),
)
def test_verify_names_each_inconsistency(built: Store, damage):
    expected = damage(built)
    problems = verify(built)
    assert any(expected in p for p in problems), problems


def test_verify_needs_a_store(tmp_path: Path):
    with pytest.raises(StoreError):
        verify(Store(tmp_path / "nothing"))


# --- the same on object storage (a moto S3 server on loopback) --------------------------------


@pytest.fixture
def s3_store(tmp_path: Path, monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()  # cached clients point at other tests' servers
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("maint")
    try:
        yield Store("s3://maint/lake")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_maintenance_on_object_storage(s3_store: Store, tmp_path: Path):
    def fingerprint() -> tuple:
        import duckdb

        con = duckdb.connect()
        s3_store.register(con)
        return con.execute("SELECT count(*), sum(hash(uid, time, stdout, extra)) FROM read_parquet($1)",
                           [s3_store.files("runs")]).fetchall()[0]

    _build(s3_store, tmp_path, days=(D5,))
    assert verify(s3_store) == []
    before = fingerprint()
    assert compact(s3_store)["partitions"] > 0
    assert fingerprint() == before
    assert verify(s3_store) == []
    rel = _first(s3_store, "runs")
    stray = f"maint/lake/runs/{rel.replace('part-', 'stray-')}"
    s3_store.fs.pipe_file(stray, b"x")
    assert any("orphan file runs/" in p for p in verify(s3_store))
    s3_store.fs.rm_file(stray)
    assert apply_retention(s3_store, days=1, today=date(2026, 5, 7))["partitions"] > 0
    assert verify(s3_store) == []
