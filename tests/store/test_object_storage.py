"""The store on object storage: a real S3-compatible server (moto) on loopback, through s3fs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect
from pipeline.report.nodes import nodes_report
from pipeline.store import Store, StoreLocked
from pipeline.store import remote as remote_store
from tests.conftest import T0, make_aws_node, make_azure_run, make_run, write_json, write_lines

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

H = timedelta(hours=1)


EVENTS = [make_run("i-1", "TDS00W", T0, exit_code=150, stderr="did not become ready"),
          make_run("i-2", at=T0 - H), make_azure_run("ABC", "TAZ00W", T0, api_error="denied")]


def report(store):
    with connect(store) as con:
        return nodes_report(con, T0 - 2 * H, T0 + H)


def test_remote_store_answers_like_a_local_one(s3, bucket, tmp_path):
    log = write_lines(tmp_path / "a.log", EVENTS)
    nodes = write_json(tmp_path / "nodes.json", [make_aws_node("i-2")])
    remote, local = Store(f"s3://{bucket}/lake"), Store(tmp_path / "lake")
    for store in (remote, local):
        assert ingest_events(store, [str(log)]).stored == 3
        ingest_snapshot(store, "nodes", str(nodes), T0)
    assert report(remote) == report(local) != []
    assert s3.exists(f"{bucket}/lake/_manifest.json")
    assert s3.glob(f"{bucket}/lake/runs/cloud=aws/event_date=2026-05-04/part-*.parquet")


def test_reingest_changes_nothing_and_sources_can_be_urls_too(s3, bucket):
    s3.pipe_file(f"{bucket}/audit/2026-05-04.00:00:00.log",
                 "\n".join(json.dumps(e) for e in EVENTS).encode())
    store = Store(f"s3://{bucket}/lake")
    first = ingest_events(store, [f"s3://{bucket}/audit/"])
    version = store.manifest().version
    again = ingest_events(store, [f"s3://{bucket}/audit/"])
    assert (first.stored, again.stored, again.duplicates) == (3, 0, 3)
    assert store.manifest().version == version


def test_uncommitted_uploads_are_invisible_and_swept(s3, bucket, tmp_path):
    store = Store(f"s3://{bucket}/lake")
    ingest_events(store, [str(write_lines(tmp_path / "a.log", EVENTS[:1]))])
    with store.writer() as w:  # a writer that uploads, then dies before its commit
        produced = w.scratch("out") / "cloud=aws" / "event_date=2026-05-04"
        produced.mkdir(parents=True)
        (produced / "part-ghost.parquet").write_bytes(
            s3.cat_file(store.files("runs")[1].removeprefix("s3://")))
        w.add_tree("runs", w.scratch("out"))
        ghost = f"{bucket}/lake/runs/cloud=aws/event_date=2026-05-04/part-ghost.parquet"
        assert s3.exists(ghost)
        assert len(report(store)) == 1  # readers only see the manifest's files
        w.abandon = lambda: None  # simulate SIGKILL: no cleanup runs
    s3.invalidate_cache()
    assert s3.exists(ghost) and s3.exists(f"{bucket}/lake/_staging/{w.ingest_id}.json")
    with store.writer():  # the next writer sweeps the dead one's uploads
        pass
    s3.invalidate_cache()
    assert not s3.exists(ghost)
    assert len(report(store)) == 1


def test_lock_object_blocks_a_second_writer_and_expires(s3, bucket):
    store = Store(f"s3://{bucket}/lake")
    with (store.writer(), pytest.raises(StoreLocked, match="locked by another writer"),
          Store(f"s3://{bucket}/lake").writer(timeout=0.5)):
        pass
    # a dead holder's lease has expired: the next writer takes the lock over
    s3.pipe_file(f"{bucket}/lake/_lock", json.dumps({"holder": "pid 1", "expires": 0}).encode())
    with store.writer(timeout=2):
        pass
    assert not s3.exists(f"{bucket}/lake/_lock")


def test_url_detection():
    assert remote_store.is_url("s3://b/p") and remote_store.is_url("memory://x")
    assert not remote_store.is_url("file:///tmp/x") and not remote_store.is_url("/tmp/x")


def test_the_uid_index_on_object_storage(s3, bucket, tmp_path):
    """The same uid on another day is found on S3 too; the index files are fetched once into
    a private local cache (they are never rewritten), which forgets files no longer listed."""
    from pipeline.store import uidindex
    from pipeline.store.maintenance import compact
    from pipeline.store.verify import verify

    store = Store(f"s3://{bucket}/lake")
    ingest_events(store, [str(write_lines(tmp_path / "a.log", [make_run("i-1", uid="u-x"),
                                                                make_run("i-2")]))])
    later = make_run("i-1", "TDS00W", T0 + 72 * H, exit_code=1, uid="u-x")
    looked_up = uidindex.files_of(store.manifest(), "runs") + uidindex.files_of(
        store.manifest(), "joins")
    s = ingest_events(store, [str(write_lines(tmp_path / "b.log", [later, make_run("i-3")]))])
    assert (s.stored, s.quarantined) == (1, 1)
    cache = uidindex.cache_dir(store)
    assert [p.name for p in cache.iterdir()] == [r.replace("/", "__") for r in looked_up]
    assert cache.parent.parent.stat().st_mode & 0o077 == 0
    assert verify(store) == []
    compact(store)
    assert len(uidindex.files_of(store.manifest(), "runs")) == 1 and verify(store) == []
    again = ingest_events(store, [str(write_lines(tmp_path / "c.log", [later]))])
    assert (again.stored, again.quarantined) == (0, 1)
    assert [p.name for p in cache.iterdir()] == [
        r.replace("/", "__") for r in uidindex.files_of(store.manifest(), "runs")]


def test_read_only_sql_over_a_store_on_object_storage(s3, bucket, tmp_path):
    """`sql` reads an S3 store through fsspec (allowed_directories = s3://bucket/prefix/) and
    refuses another prefix of the same bucket, another bucket and writes."""
    import duckdb

    from pipeline.query import sandbox

    s3.mkdir(f"{bucket}-other")
    s3.pipe_file(f"{bucket}/secret/x.csv", b"a\n1\n")
    s3.pipe_file(f"{bucket}-other/x.csv", b"a\n1\n")
    store = Store(f"s3://{bucket}/lake")
    ingest_events(store, [str(write_lines(tmp_path / "a.log", EVENTS))])
    with sandbox.open_read_only(store) as con:
        assert sandbox.run(con, "SELECT count(*) AS n FROM runs").read_all().to_pylist() == [
            {"n": 3}]
        assert sandbox.run(con, f"SELECT count(*) AS n FROM read_parquet("
                                f"'s3://{bucket}/lake/runs/**/*.parquet')").read_all()["n"][0] \
            .as_py() == 3
        for path in (f"s3://{bucket}/secret/x.csv", f"s3://{bucket}-other/x.csv",
                     f"s3://{bucket}/lake/../secret/x.csv"):
            with pytest.raises(duckdb.Error):
                con.execute(f"SELECT * FROM read_csv('{path}')").fetchall()
        with pytest.raises(sandbox.SqlError, match="not COPY"):
            sandbox.run(con, f"COPY (SELECT 1) TO 's3://{bucket}/lake/x.csv'")
    assert not s3.exists(f"{bucket}/lake/x.csv")
