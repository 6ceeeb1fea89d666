"""Writers and readers at the same time, as real processes: two ingests started together (one
waits, or fails naming the holder), readers looping while a writer commits (each sees one
committed state, never a mix), a SIGKILLed writer's lock recovered — flock locally, an expired
lease on object storage (a moto S3 server on loopback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.store import Store, StoreLocked
from pipeline.store.manifest import LOCK, STAGING
from pipeline.store.verify import verify
from tests.conftest import T0, make_azure_run, make_run, write_lines
from tests.reliability import crash
from tests.reliability.conftest import tally

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

H = timedelta(hours=1)
D = timedelta(days=1)
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"


def lock_holder_pid(store: Path) -> int | None:
    """The pid the lock file names (written by the holder once it has the flock)."""
    try:
        text = (store / LOCK).read_text()
    except FileNotFoundError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


def wait_until(cond, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc is None or proc.poll() is None, "the process ended before the condition held"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


# --------------------------------------------------------------------------- two writers


def test_two_ingests_started_together_take_turns(fleet: crash.Fleet, tmp_path: Path) -> None:
    store = tmp_path / "lake"
    procs = [crash.spawn_ingest(store, [str(fleet.auth / s)]) for s in ("server-1", "server-2")]
    holders: list[int] = []
    while any(p.poll() is None for p in procs):
        pid = lock_holder_pid(store)
        if pid and (not holders or holders[-1] != pid):
            holders.append(pid)
        time.sleep(0.002)
    errs = [crash.finish(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert all(e.startswith("read ") and "MISMATCH" not in e for e in errs), errs
    # each held the lock in turn (the other waited), and never both: one holder after the other
    assert sorted(holders) == sorted(p.pid for p in procs), holders
    # neither corrupted anything: the store is what one ingest of both folders gives
    assert crash.fingerprint(store) == fleet.expected
    assert verify(Store(store)) == []
    tally("concurrency", "two ingests started together: both finished, in turn")


HOLDER = r"""
import sys
from pipeline.store import Store
with Store(sys.argv[1]).writer():
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin: the lock is held, whatever the load
"""


def test_a_writer_that_cannot_wait_fails_naming_the_holder(fleet: crash.Fleet,
                                                           tmp_path: Path) -> None:
    store = tmp_path / "lake"
    assert crash.finish(crash.spawn_ingest(store, [str(fleet.auth)])).startswith("read ")
    other = write_lines(tmp_path / "other.log", [make_run("i-other", uid="u-other")])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=crash.env())
    try:
        assert holder.stdout.readline() == "holding\n"  # it has the lock, and keeps it
        started = time.monotonic()
        with pytest.raises(StoreLocked) as e:
            ingest_events(Store(store), [str(other)], lock_timeout=0.3)
        assert time.monotonic() - started < 30
        assert crash.fingerprint(store) == fleet.expected  # the refused writer changed nothing
    finally:
        holder.communicate(input="", timeout=60)  # release: the holder commits nothing
    assert holder.returncode == 0
    msg = str(e.value)
    assert f"locked by another writer (pid {holder.pid} on {socket.gethostname()} since " in msg
    assert str(store) in msg and "\n" not in msg
    # once the holder is done the writer goes through
    assert crash.fingerprint(store) == fleet.expected
    assert ingest_events(Store(store), [str(other)], lock_timeout=5).stored == 1
    assert verify(Store(store)) == []
    tally("concurrency", "writer refused while another holds the lock: StoreLocked names it")


# --------------------------------------------------------------------------- readers during writes

READER = r"""
import json, sys
from pathlib import Path
from pipeline.query.views import connect
store, stop = sys.argv[1], Path(sys.argv[2])
while not stop.exists():
    with connect(store) as con:
        runs = con.execute("SELECT cloud || '/' || CAST(event_date AS VARCHAR), count(*) "
                           "FROM runs GROUP BY ALL ORDER BY ALL").fetchall()
        joins = con.execute("SELECT count(*) FROM joins").fetchall()[0][0]
    print(json.dumps({"runs": dict(runs), "joins": joins}), flush=True)
"""


def batch(k: int) -> list[dict]:
    """Batch k: k+1 AWS runs on day 1, 2 on day 2, 1 Azure run, 1 join (distinct uids), so every
    cumulative state differs in every partition's count."""
    events = [make_run(f"i-{k}-{n}", at=T0 + n * H, uid=f"a1-{k}-{n}") for n in range(k + 1)]
    events += [make_run(f"i-{k}-{n}", at=T0 + D + n * H, uid=f"a2-{k}-{n}") for n in range(2)]
    events.append(make_azure_run(VM, at=T0 + k * H, uid=f"z-{k}"))
    events.append({"event": "instance.join", "uid": f"j-{k}", "code": "TJ002I",
                   "time": "2026-05-04T12:00:00Z", "host_id": f"h-{k}", "node_name": f"n-{k}"})
    return events


def state_after(k: int) -> dict:
    """What a reader must see after batches 0..k are committed."""
    return {"runs": {"aws/2026-05-04": sum(j + 1 for j in range(k + 1)),
                     "aws/2026-05-05": 2 * (k + 1), "azure/2026-05-04": k + 1},
            "joins": k + 1}


class Observations:
    """A reader process's stdout, one JSON state per line, collected by a thread as it comes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.cv = proc, [], threading.Condition()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(json.loads(line))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_for(self, state: dict, timeout: float = 300) -> None:
        """Until this reader has reported `state` (it loops; a commit it missed between two
        reads is seen on the next one)."""
        with self.cv:
            ok = self.cv.wait_for(lambda: state in self.lines or self.proc.poll() is not None,
                                  timeout)
            assert ok and state in self.lines, f"reader never saw {state}: {self.lines[-3:]}"


def test_readers_see_one_committed_state_never_a_mix(tmp_path: Path) -> None:
    batches = 8
    files = [write_lines(tmp_path / "in" / f"b{k}.log", batch(k)) for k in range(batches)]
    store, stop = tmp_path / "lake", tmp_path / "stop"
    ingest_events(Store(store), [str(files[0])])
    logs = [tmp_path / f"reader-{i}.err" for i in range(2)]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store), str(stop)],
                                stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
               for log in logs]
    watched = [Observations(r) for r in readers]
    try:
        # each commit happens while both readers loop, and the next one only once both have
        # seen it: every committed state is observed, whatever the machine's load
        for w in watched:
            w.wait_for(state_after(0))
        for k, f in enumerate(files[1:], 1):
            ingest_events(Store(store), [str(f)])
            for w in watched:
                w.wait_for(state_after(k))
    finally:
        stop.touch()
        for r, w in zip(readers, watched, strict=True):
            r.wait(timeout=120)
            w.thread.join(timeout=60)
    errs = [log.read_text() for log in logs]
    valid = [state_after(k) for k in range(batches)]
    seen = Counter()
    for r, w, err in zip(readers, watched, errs, strict=True):
        assert r.returncode == 0, err
        for observed in w.lines:
            assert observed in valid, f"a reader saw a state no commit produced: {observed}"
            seen[valid.index(observed)] += 1
    assert sorted(seen) == list(range(batches)), seen  # the readers overlapped every write
    tally("concurrency", "reader observations during commits (all a committed state)",
          sum(seen.values()))


# --------------------------------------------------------------------------- stale locks


def test_lock_of_a_sigkilled_writer_is_recovered(fleet: crash.Fleet, tmp_path: Path) -> None:
    store = tmp_path / "lake"
    proc = crash.spawn_ingest(store, [str(fleet.auth)])
    wait_until(lambda: lock_holder_pid(store) == proc.pid and crash.staging_dirs(store), proc)
    os.kill(proc.pid, signal.SIGKILL)
    crash.finish(proc)
    assert lock_holder_pid(store) == proc.pid  # it died holding the lock (the file still says so)
    # lock_timeout=2: a lock that was not released would raise StoreLocked, not wait
    summary = ingest_events(Store(store), [str(fleet.auth)], lock_timeout=2)
    assert summary.balanced
    assert not (store / STAGING).exists() or list((store / STAGING).iterdir()) == []
    assert crash.fingerprint(store) == fleet.expected
    assert verify(Store(store)) == []
    tally("concurrency", "flock of a SIGKILLed writer recovered")


S3_HOLDER = r"""
import sys, time
import pipeline.store.remote as remote
remote.LEASE_SECONDS = float(sys.argv[2])  # a short lease, so the test need not wait an hour
from pipeline.store import Store
with Store(sys.argv[1]).writer() as w:
    out = w.scratch("out") / "cloud=aws" / "event_date=2026-05-04"
    out.mkdir(parents=True)
    (out / "part-ghost-0.parquet").write_bytes(b"not committed")
    w.add_tree("runs", w.scratch("out"))
    print("placed", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def s3(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("lease")
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_expired_lease_of_a_sigkilled_writer_is_taken_over(s3, tmp_path: Path) -> None:
    url, lease = "s3://lease/lake", 3.0
    proc = subprocess.Popen([sys.executable, "-c", S3_HOLDER, url, str(lease)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "placed", proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    killed_at = time.monotonic()
    ghost = "lease/lake/runs/cloud=aws/event_date=2026-05-04/part-ghost-0.parquet"
    s3.invalidate_cache()
    assert s3.exists(ghost) and s3.exists("lease/lake/_lock")
    # while the lease runs, another writer is refused, told who holds the store
    with pytest.raises(StoreLocked, match=f"pid {proc.pid} on "), Store(url).writer(timeout=0.2):
        pass
    # once it has expired, the next writer takes the lock over and sweeps the dead one's upload
    events = write_lines(tmp_path / "a.log", [make_run("i-1", uid="u-1")])
    summary = ingest_events(Store(url), [str(events)], lock_timeout=30)
    assert summary.stored == 1
    assert time.monotonic() - killed_at < lease + 20
    s3.invalidate_cache()
    assert not s3.exists(ghost) and not s3.exists("lease/lake/_lock")
    assert not s3.exists("lease/lake/_staging") or s3.ls("lease/lake/_staging") == []
    assert verify(Store(url)) == []
    tally("concurrency", "expired S3 lease of a SIGKILLed writer taken over")


def test_a_reader_connected_before_a_compaction_can_still_query(tmp_path: Path) -> None:
    """Replaced files are retired, not deleted, for RETIRE_GRACE: a notebook or long report
    that listed them keeps working across compaction (and retention, rollup rebuilds)."""
    from pipeline.query.views import connect
    from pipeline.store.maintenance import compact

    store = Store(tmp_path / "lake")
    for k in range(2):
        ingest_events(store, [str(write_lines(tmp_path / f"b{k}.log", batch(k)))])
    with connect(store) as con:
        before = con.execute("SELECT count(*) FROM runs").fetchall()
        assert compact(store)["partitions"] > 0
        assert con.execute("SELECT count(*) FROM runs").fetchall() == before


def test_reader_thread_and_writer_thread_in_one_process(tmp_path: Path) -> None:
    """The same guarantee inside one process (notebook + scheduler): a reader thread looping
    over `connect` while a writer thread commits sees only committed states."""
    from pipeline.query.views import connect

    files = [write_lines(tmp_path / "in" / f"b{k}.log", batch(k)) for k in range(5)]
    store = tmp_path / "lake"
    ingest_events(Store(store), [str(files[0])])
    valid = [state_after(k) for k in range(5)]
    seen, errors, done = Counter(), [], threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                with connect(store) as con:
                    runs = dict(con.execute(
                        "SELECT cloud || '/' || CAST(event_date AS VARCHAR), count(*) FROM runs "
                        "GROUP BY ALL").fetchall())
                    joins = con.execute("SELECT count(*) FROM joins").fetchall()[0][0]
                state = {"runs": runs, "joins": joins}
                if state not in valid:
                    errors.append(state)
                else:
                    seen[valid.index(state)] += 1
            except Exception as e:  # noqa: BLE001 - any failure is what the test reports
                errors.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for f in files[1:]:
            ingest_events(Store(store), [str(f)])
        deadline = time.monotonic() + 10
        while not seen[4] and not errors and time.monotonic() < deadline:
            time.sleep(0.01)  # until the reader has seen the last commit
    finally:
        done.set()
        reader.join(timeout=60)
    assert errors == []
    assert seen[4] > 0 and sum(seen.values()) > 3, seen
