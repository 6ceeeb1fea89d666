"""Writers and readers at the same time, as real processes: two ingests started together (one
waits, or fails naming the holder), readers looping while a writer commits (each sees one
committed state, never a mix), a SIGKILLed writer's lock recovered — flock locally, an expired
lease on object storage (a moto S3 server on loopback)."""

from __future__ import annotations

import contextlib
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
from pipeline.query.views import connect
from pipeline.store import LeaseLost, Store, StoreLocked
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
from pipeline.store import Store
from pipeline.store.lease import LeasePolicy
# not renewed: it stands for a writer that died (the test moves the next writer's clock past it)
policy = LeasePolicy(seconds=float(sys.argv[2]), renewer=False)
with Store(sys.argv[1], lease_policy=policy).writer() as w:
    out = w.scratch("out") / "cloud=aws" / "event_date=2026-05-04"
    out.mkdir(parents=True)
    (out / "part-ghost-0.parquet").write_bytes(b"not committed")
    w.add_tree("runs", w.scratch("out"))
    print("placed", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def s3():
    from tests.s3server import moto_s3

    with moto_s3():
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("lease")
        try:
            yield fs
        finally:
            s3fs.S3FileSystem.clear_instance_cache()


def test_expired_lease_of_a_sigkilled_writer_is_taken_over(s3, tmp_path: Path) -> None:
    """The dead writer's lease runs an hour, so no load makes it expire before the refusal is
    checked; its expiry is then the next writer's clock moved two hours on (`LeasePolicy.clock`),
    never a wait: the takeover happens on the first attempt (lock_timeout=0)."""
    from pipeline.store.lease import LeasePolicy

    url, lease = "s3://lease/lake", 3600.0
    proc = subprocess.Popen([sys.executable, "-c", S3_HOLDER, url, str(lease)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "placed", proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    ghost = "lease/lake/runs/cloud=aws/event_date=2026-05-04/part-ghost-0.parquet"
    s3.invalidate_cache()
    assert s3.exists(ghost) and s3.exists("lease/lake/_lock")
    # while the lease runs, another writer is refused, told who holds the store
    with pytest.raises(StoreLocked, match=f"pid {proc.pid} on "), Store(url).writer(timeout=0.2):
        pass
    # once it has expired, the next writer takes the lock over and sweeps the dead one's upload
    events = write_lines(tmp_path / "a.log", [make_run("i-1", uid="u-1")])
    later = LeasePolicy(clock=lambda: time.time() + 2 * lease)
    summary = ingest_events(Store(url, lease_policy=later), [str(events)], lock_timeout=0)
    assert summary.stored == 1
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
        # each commit only once the reader has seen the one before: every committed state is
        # observed, whatever the machine's load (bounded: a reader that stopped fails the test)
        wait_until(lambda: seen[0] or errors, timeout=300)
        for k, f in enumerate(files[1:], 1):
            ingest_events(Store(store), [str(f)])
            wait_until(lambda k=k: seen[k] or errors, timeout=300)
    finally:
        done.set()
        reader.join(timeout=60)
    assert errors == []
    assert all(seen[k] for k in range(5)), seen


# --------------------------------------------------------------------------- writers on S3


class Watch:
    """What concurrent writers did, recorded from inside the lock: how many held it at once,
    each commit's manifest versions, and the writers that lost their lease."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most_inside = 0
        self.commits: list[tuple[int, int]] = []  # (version started from, version committed)
        self.lost: list[str] = []
        self.waiting = 0


class WatchedStore(Store):
    """A Store whose writers report to a Watch (and, told to `stall`, sit inside the lock past
    their lease until another writer has taken it over)."""

    def __init__(self, url: str, watch: Watch, policy, stall=None):
        super().__init__(url, lease_policy=policy)
        self.watch, self.stall = watch, stall

    @contextlib.contextmanager
    def writer(self, *args, **kwargs):
        with self.watch.lock:
            self.watch.waiting += 1
        entered = False
        try:
            with Store.writer(self, *args, **kwargs) as w:
                with self.watch.lock:
                    self.watch.waiting -= 1
                    entered = True
                    self.watch.inside += 1
                    self.watch.most_inside = max(self.watch.most_inside, self.watch.inside)
                    start = w.base.version
                try:
                    if self.stall is not None:
                        self.stall(w)
                    yield w
                finally:
                    with self.watch.lock:
                        self.watch.inside -= 1
                        if w.base.version != start:
                            self.watch.commits.append((start, w.base.version))
        finally:
            if not entered:
                with self.watch.lock:
                    self.watch.waiting -= 1


class SharedClock:
    """Wall-clock time plus an offset the test moves (one writer "stalls" past its lease)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def writers_on_s3(s3, url: str, tmp_path: Path, writers: int, batches: int, stalls: int,
                  dead_holder: bool = False) -> Watch:
    """`writers` threads each ingest `batches` batches of their own events into the store at
    `url` (one Store per ingest, as separate processes would), all released at once; the first
    `stalls` writers to get the lock while others wait sit in it past their lease. A writer that
    lost its lease tries its batch again (at most 3 times). Returns the Watch."""
    from pipeline.store.lease import LeasePolicy

    # an hour: under any load a writer keeps its lease unless the test stalls it (the stall
    # moves the shared clock past it); no test waits for it to run out
    lease = 3600.0
    clock = SharedClock()
    watch = Watch()
    stalls_left = [stalls]
    files = {(i, k): write_lines(tmp_path / f"w{i}-b{k}.log",
                                 [make_run(f"i-{i}-{k}-{n}", at=T0 + n * H, uid=f"u-{i}-{k}-{n}")
                                  for n in range(3)])
             for i in range(writers) for k in range(batches)}

    def stall(w) -> None:
        with watch.lock:
            if not stalls_left[0] or watch.waiting == 0:
                return
            stalls_left[0] -= 1
        mine = lock_token(s3, url)
        clock.offset += 2 * lease  # this writer stalls: its lease runs out for everyone
        wait_until(lambda: lock_token(s3, url) != mine)  # a waiting writer takes it over

    def work(i: int) -> None:
        barrier.wait()
        for k in range(batches):
            for _ in range(3):
                policy = LeasePolicy(seconds=lease, renewer=stalls == 0, clock=clock,
                                     poll=0.05)
                try:
                    ingest_events(WatchedStore(url, watch, policy, stall), [str(files[i, k])],
                                  lock_timeout=300)
                    break
                except LeaseLost as e:
                    with watch.lock:
                        watch.lost.append(f"w{i}-b{k}: {e}")

    if dead_holder:  # a writer died holding the lock long ago: every writer sees it expired
        s3.pipe_file(url.removeprefix("s3://") + f"/{LOCK}",
                     json.dumps({"holder": "pid 1 on dead", "expires": 0}).encode())
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert errors == [] and not any(t.is_alive() for t in threads), errors
    # nothing lost, nothing twice: every batch's events stored exactly once
    with connect(Store(url)) as con:
        uids = [r[0] for r in con.execute("SELECT uid FROM runs ORDER BY uid").fetchall()]
        logged = con.execute("SELECT count(*) FROM ingest_log").fetchall()[0][0]
    assert uids == sorted(f"u-{i}-{k}-{n}" for i, k in files for n in range(3))
    assert logged == len(files) == len(watch.commits)
    # one commit at a time: no two commits started from the same manifest, none overwrote one
    assert len({start for start, _ in watch.commits}) == len(watch.commits)
    assert len({end for _, end in watch.commits}) == len(watch.commits)
    assert all(end > start for start, end in watch.commits)
    assert verify(Store(url)) == []
    s3.invalidate_cache()
    assert not s3.exists(url.removeprefix("s3://") + f"/{LOCK}")
    return watch


def lock_token(s3, url: str) -> str | None:
    s3.invalidate_cache()
    try:
        return json.loads(s3.cat_file(url.removeprefix("s3://") + f"/{LOCK}")).get("token")
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("writers", [2, 10])
def test_concurrent_writers_on_s3_take_turns_and_lose_nothing(s3, tmp_path, writers) -> None:
    watch = writers_on_s3(s3, "s3://lease/lake", tmp_path, writers, batches=12 // writers, stalls=0,
                          dead_holder=True)
    assert watch.most_inside == 1 and watch.lost == []
    tally("concurrency", f"{writers} writers on S3: one lock holder at a time", len(watch.commits))


@pytest.mark.parametrize("writers", [2, 10])
def test_writers_on_s3_that_lose_their_lease_commit_nothing(s3, tmp_path, writers) -> None:
    stalls = 1 if writers == 2 else 3
    watch = writers_on_s3(s3, "s3://lease/lake", tmp_path, writers, batches=12 // writers,
                          stalls=stalls)
    assert len(watch.lost) == stalls  # each stalled writer aborted, then did its batch again
    tally("concurrency", f"{writers} writers on S3, {stalls} stalled past their lease: "
          "none committed after losing it", stalls)


@pytest.mark.slow
@pytest.mark.parametrize("stalls", [0, 6])
def test_many_writers_on_s3_soak(s3, tmp_path, stalls) -> None:
    watch = writers_on_s3(s3, "s3://lease/lake", tmp_path, 16, batches=4, stalls=stalls,
                          dead_holder=stalls == 0)
    assert len(watch.lost) == stalls and (stalls or watch.most_inside == 1)
