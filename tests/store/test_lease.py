"""The lease that serialises writers of an object-storage store, against an S3-compatible server
on loopback: takeover is a compare-and-swap, a working writer keeps its lease, a writer that lost
it commits nothing. Time is a clock the tests move (`LeasePolicy.clock`), never a sleep."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.query.views import connect
from pipeline.store import LeaseLost, Store, StoreError, StoreLocked
from pipeline.store.lease import Lease, LeasePolicy
from pipeline.store.manifest import LOCK, STAGING
from pipeline.store.verify import verify
from tests.conftest import T0, make_run, write_lines

LEASE = 100.0


class Clock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def policy(clock: Clock, **kw) -> LeasePolicy:
    return LeasePolicy(**{"seconds": LEASE, "renew_every": 30.0, "renewer": False,
                          "clock": clock, "poll": 0.01, **kw})


def lock_doc(s3, bucket: str) -> dict:
    s3.invalidate_cache()
    return json.loads(s3.cat_file(f"{bucket}/lake/{LOCK}"))


def stored_uids(store: Store) -> list[str]:
    with connect(store) as con:
        return [r[0] for r in con.execute("SELECT uid FROM runs ORDER BY uid").fetchall()]


def place_file(w, tmp_path: Path, name: str) -> None:
    """Upload one (uncommitted) runs file through the writer, as an ingest does."""
    src = tmp_path / f"{name}.parquet"
    src.write_bytes(b"not committed")
    w.add_files("runs", {f"cloud=aws/event_date=2026-05-04/{name}.parquet": src})


def test_of_many_waiters_that_saw_one_expired_lease_exactly_one_takes_it_over(s3, bucket):
    clock = Clock()
    s3.pipe_file(f"{bucket}/lake/{LOCK}", json.dumps(
        {"holder": "pid 1 on dead-host", "expires": clock() - 1}).encode())
    store = Store(f"s3://{bucket}/lake")
    waiters = [Lease(store.objects(), f"{bucket}/lake/{LOCK}", policy(clock)) for _ in range(10)]
    seen = [w.observe() for w in waiters]  # every waiter reads the same expired lease ...
    assert {etag for _, etag in seen} == {seen[0][1]} and seen[0][0]["expires"] < clock()
    won = [w.take_over(etag) for w, (_, etag) in zip(waiters, seen, strict=True)]  # ... then all try
    assert won.count(True) == 1
    winner = waiters[won.index(True)]
    assert lock_doc(s3, bucket)["token"] == winner.token
    # the losers now see a live lease and wait; the winner's release frees the lock
    assert all(w.try_take() == lock_doc(s3, bucket) for w in waiters if w is not winner)
    winner.release()
    assert not s3.exists(f"{bucket}/lake/{LOCK}")


def test_a_writer_working_longer_than_its_lease_keeps_it(s3, bucket, tmp_path):
    clock = Clock()
    url = f"s3://{bucket}/lake"
    events = write_lines(tmp_path / "a.log", [make_run("i-1", at=T0, uid="u-1")])
    with Store(url, lease_policy=policy(clock)).writer() as w:
        first = lock_doc(s3, bucket)["expires"]
        clock.advance(0.9 * LEASE)
        place_file(w, tmp_path, "part-a")  # a write step: renews (due every 30 s)
        assert lock_doc(s3, bucket)["expires"] == pytest.approx(first + 0.9 * LEASE)
        clock.advance(0.5 * LEASE)  # past the first expiry, within the renewed one
        with pytest.raises(StoreLocked, match="locked by another writer"):
            ingest_events(Store(url, lease_policy=policy(clock)), [str(events)], lock_timeout=0)
        w.abandon()
    assert not s3.exists(f"{bucket}/lake/{LOCK}")
    assert ingest_events(Store(url, lease_policy=policy(clock)), [str(events)]).stored == 1


def test_a_writer_that_lost_its_lease_commits_nothing(s3, bucket, tmp_path):
    clock = Clock()
    url = f"s3://{bucket}/lake"
    ingest_events(Store(url), [str(write_lines(tmp_path / "0.log", [make_run("i-0", uid="u-0")]))])
    with Store(url, lease_policy=policy(clock)).writer() as a:
        place_file(a, tmp_path, "part-a")  # uploaded, not committed
        clock.advance(2 * LEASE)  # A stalls past its lease without renewing (a long GC pause)
        b = ingest_events(Store(url, lease_policy=policy(clock)),
                          [str(write_lines(tmp_path / "b.log", [make_run("i-b", uid="u-b")]))],
                          lock_timeout=5)
        assert b.stored == 1  # B took the expired lease over, swept A's upload and committed
        s3.invalidate_cache()
        assert not s3.exists(f"{bucket}/lake/runs/cloud=aws/event_date=2026-05-04/part-a.parquet")
        with pytest.raises(LeaseLost, match="another writer took it over"):
            a.commit()
        with pytest.raises(LeaseLost):
            place_file(a, tmp_path, "part-a2")  # nor any other step
    assert stored_uids(Store(url)) == ["u-0", "u-b"]
    assert not s3.exists(f"{bucket}/lake/{LOCK}")
    assert verify(Store(url)) == []


def test_a_late_commit_never_replaces_a_manifest_it_has_not_seen(s3, bucket, tmp_path):
    """The commit's PUT is conditional on the manifest's ETag: even a writer whose lease check
    passed cannot overwrite a commit made since it started (nothing is lost)."""
    url = f"s3://{bucket}/lake"
    ingest_events(Store(url), [str(write_lines(tmp_path / "0.log", [make_run("i-0", uid="u-0")]))])
    store = Store(url)
    stale, etag = store._manifest_and_etag()
    ingest_events(store, [str(write_lines(tmp_path / "1.log", [make_run("i-1", uid="u-1")]))])
    with pytest.raises(StoreError, match="manifest changed under the lock"):
        store._write_manifest(stale, etag)
    assert stored_uids(store) == ["u-0", "u-1"]


def test_sweeping_a_stalled_writer_fences_the_manifest_first(s3, bucket, tmp_path):
    clock = Clock()
    url = f"s3://{bucket}/lake"
    ingest_events(Store(url), [str(write_lines(tmp_path / "0.log", [make_run("i-0", uid="u-0")]))])
    with Store(url, lease_policy=policy(clock)).writer() as a:
        place_file(a, tmp_path, "part-a")
        version = a.base.version
        clock.advance(2 * LEASE)
        with Store(url, lease_policy=policy(clock)).writer(timeout=5) as b:
            assert b.base.version == version + 1  # re-committed before A's upload was swept
            assert not s3.exists(f"{bucket}/lake/{STAGING}/{a.ingest_id}.json")
        with pytest.raises(LeaseLost):
            a.commit()
        # and were A's lease check fooled (a pause between its last renewal and its commit's
        # PUT), the fence alone refuses the PUT: A's manifest is no longer current
        with pytest.raises(StoreError, match="manifest changed under the lock"):
            a.store._write_manifest(a.base, a._etag)
    assert stored_uids(Store(url)) == ["u-0"] and verify(Store(url)) == []


def test_release_never_deletes_a_successors_lease(s3, bucket):
    clock = Clock()
    store = Store(f"s3://{bucket}/lake", lease_policy=policy(clock))
    with store.locked() as a:
        clock.advance(2 * LEASE)
        with store.locked(timeout=5) as b:
            with pytest.raises(LeaseLost):
                a.renew()
            a.release()  # A gives up: B's lease stays
            assert lock_doc(s3, bucket)["token"] == b.token
    assert not s3.exists(f"{bucket}/lake/{LOCK}")


def wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_renewer_thread_extends_the_lease_and_notices_losing_it(s3, bucket):
    clock = Clock()
    store = Store(f"s3://{bucket}/lake",
                  lease_policy=policy(clock, renewer=True, renew_every=0.01))
    with store.locked() as a:
        wait_until(lambda: lock_doc(s3, bucket).get("renewals", 0) >= 3)
        assert lock_doc(s3, bucket)["token"] == a.token and not a.lost
        # B's clock runs far ahead (A stalled, as far as B can tell): A's lease looks expired
        thief = Lease(store.objects(), f"{bucket}/lake/{LOCK}", policy(Clock(clock() + 10 * LEASE)))
        with a._mutex:  # A's renewer cannot renew meanwhile: the takeover is not a race
            current, etag = thief.observe()
            assert current["token"] == a.token and thief.take_over(etag)
        wait_until(lambda: a.lost)  # A's next renewal fails: the renewer flags it and stops
        a._thread.join(timeout=30)
        assert not a._thread.is_alive()
        with pytest.raises(LeaseLost):
            a.check()
    assert lock_doc(s3, bucket)["token"] == thief.token  # A's release left B's lease alone
    thief.release()


def test_a_store_on_a_filesystem_without_conditional_writes_is_refused_for_writing():
    with pytest.raises(StoreError, match="needs conditional requests"), \
            Store("memory://lake").writer():
        pass
