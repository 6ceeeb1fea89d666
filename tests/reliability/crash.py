"""Crash harness: real `discovery-history ingest` processes killed with SIGKILL at random points,
and the checks a store must pass afterwards.

A trial copies a starting store (empty, or seeded with part of the input), starts the CLI ingest
of the whole input, kills it (at a random time, or a random delay after it starts staging or
starts placing files), then checks that readers see a consistent store, that the next writer's
sweep leaves nothing unreferenced, and that re-running the same ingest gives exactly the store a
clean single ingest gives.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.store import Store, StoreError
from pipeline.store.layout import DATASETS, ROLLUPS, UID_INDEX
from pipeline.store.manifest import LOCK, MANIFEST, SCHEMA_DIR, STAGING

SCRIPT = Path(sys.executable).with_name("discovery-history")
EVENT_DATASETS = ("runs", "joins")
POLL = 0.001


@dataclass(frozen=True)
class Timings:
    """Seconds after spawning a clean ingest at which each phase was first seen."""

    staging: float  # the writer holds the lock: its staging folder exists
    placing: float  # its intents file exists: files are being moved into the datasets
    committed: float  # the manifest was replaced
    exited: float


@dataclass(frozen=True)
class Fleet:
    auth: Path  # the generated Teleport file log (two auth servers)
    reference: Path  # a store holding one clean CLI ingest of `auth`
    seed: Path  # a store holding an ingest of the first auth server only
    timings: Timings
    window: tuple[datetime, datetime]
    lines: int
    expected: dict[str, tuple]  # fingerprint(reference)


@dataclass(frozen=True)
class Trial:
    start: str  # "empty" | "seeded"
    mode: str  # how the kill point was chosen
    delay: float  # seconds after the trigger
    killed: bool  # False: the ingest finished before the kill
    phase: str  # where the writer was when it died (see `classify`)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISCOVERY_HISTORY_STORE", "COLUMNS")}


def spawn_ingest(store: Path, inputs: list[str]) -> subprocess.Popen:
    """The real console script, as a cron job or DAG task would run it."""
    return subprocess.Popen(
        [str(SCRIPT), "--store", str(store), "ingest", "events", *inputs],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(),
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for a process and return what it printed (stdout and stderr)."""
    out, _ = proc.communicate(timeout=timeout)
    return out.decode(errors="replace")


def build_fleet(root: Path) -> Fleet:
    """Generate the input once, ingest it cleanly with the CLI (timing its phases), and build
    the seed store."""
    from pipeline.gen.generate import generate_fleet

    summary = generate_fleet(root / "fleet", days=4, aws_instances=300, azure_vms=100)
    auth = root / "fleet" / "auth"
    reference = root / "reference"
    proc = spawn_ingest(reference, [str(auth)])
    timings = watch_phases(reference, proc)
    err = finish(proc)
    assert proc.returncode == 0, err
    seed = root / "seed"
    proc = spawn_ingest(seed, [str(auth / "server-1")])
    err = finish(proc)
    assert proc.returncode == 0, err
    return Fleet(auth=auth, reference=reference, seed=seed, timings=timings,
                 window=(summary.window_start, summary.window_end), lines=summary.lines_written,
                 expected=fingerprint(reference))


# --------------------------------------------------------------------------- observing a writer


def staging_dirs(store: Path) -> list[Path]:
    try:
        return [p for p in (store / STAGING).iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []


def intents_present(store: Path) -> bool:
    return any((d / "moved.jsonl").exists() for d in staging_dirs(store))


def manifest_token(store: Path) -> tuple[int, int] | None:
    """Changes whenever the manifest is replaced (inode and mtime)."""
    try:
        st = os.stat(store / MANIFEST)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def watch_phases(store: Path, proc: subprocess.Popen) -> Timings:
    """Poll a running ingest's store and note when each phase first shows."""
    t0, seen = time.monotonic(), {}
    before = manifest_token(store)
    while True:
        done = proc.poll() is not None
        now = time.monotonic() - t0
        if "staging" not in seen and staging_dirs(store):
            seen["staging"] = now
        if "placing" not in seen and intents_present(store):
            seen["placing"] = now
        if "committed" not in seen and manifest_token(store) != before:
            seen["committed"] = now
        if done:
            break
        time.sleep(POLL)
    exited = time.monotonic() - t0
    staging = seen.get("staging", exited * 0.4)
    committed = seen.get("committed", exited)
    placing = seen.get("placing", (staging + committed) / 2)
    return Timings(staging=staging, placing=placing, committed=committed, exited=exited)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 60) -> bool:
    """Poll until `ready()` or the process exits; True when ready while it still runs."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(POLL)
    return False


def _sleep_unless_exited(proc: subprocess.Popen, delay: float) -> None:
    deadline = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))


def run_and_kill(store: Path, inputs: list[str], rng: random.Random, t: Timings,
                 start: str) -> Trial:
    """Start an ingest into `store` and SIGKILL it at a point chosen by `rng`: at a random time
    after the spawn, or a random delay after it started staging, or after it started placing
    files in the datasets (the window before the commit)."""
    mode = rng.choices(["timed", "after-staging", "after-placing"], weights=[4, 3, 3])[0]
    before = manifest_token(store)
    proc = spawn_ingest(store, inputs)
    if mode == "timed":
        delay = rng.uniform(0, t.exited * 1.1)
    elif mode == "after-staging":
        _wait_for(proc, lambda: bool(staging_dirs(store)))
        delay = rng.uniform(0, t.exited - t.staging)
    else:
        _wait_for(proc, lambda: intents_present(store))
        delay = rng.uniform(0, (t.committed - t.placing) * 1.5 + 0.005)
    _sleep_unless_exited(proc, delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)  # (it may still finish first: then it exits 0)
    err = finish(proc)
    killed = proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, (proc.returncode, err)
    phase = classify(store, before) if killed else "finished before the kill"
    return Trial(start=start, mode=mode, delay=delay, killed=killed, phase=phase)


def classify(store: Path, before: tuple[int, int] | None) -> str:
    """Where a killed writer was, judged from what it left (before anyone sweeps)."""
    committed = manifest_token(store) != before
    staging = staging_dirs(store)
    if committed:
        return "killed after its commit, before cleanup" if staging else \
            "killed after cleanup, before exit"
    if not staging:
        return "killed before taking the lock"
    if intents_present(store):
        return "killed while placing files, before the commit"
    return "killed while staging (nothing placed)"


# --------------------------------------------------------------------------- checks


def check_readers(path: Path, window: tuple[datetime, datetime]) -> int:
    """What a reader sees must be whole: the manifest parses, each file it names exists and
    reads, every dataset view and `discovery_nodes` query. Returns the manifest version (0: no
    store was committed yet, and readers are told so in one line)."""
    import duckdb

    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_report

    store = Store(path)
    if not store.exists():
        try:
            connect(store)
        except StoreError as e:
            assert "no store at" in str(e)
            return 0
        raise AssertionError(f"{path}: readers opened a store that has no manifest")
    manifest = store.manifest()
    con = duckdb.connect()
    try:
        for name in DATASETS:
            for f in store.files(name, manifest):
                assert os.path.isfile(f), f"manifest names a missing file: {f}"
                con.execute("SELECT count(*) FROM read_parquet($1)", [f]).fetchall()
    finally:
        con.close()
    with connect(store) as con:
        for name in DATASETS:
            if name not in ROLLUPS:  # no views: read through latest_runs and the trends API
                con.execute(f"SELECT count(*) FROM {name}").fetchall()
        rows = nodes_report(con, *window)
        con.execute(
            "SELECT count(*) FROM discovery_nodes(make_timestamp_ns($1), make_timestamp_ns($2), "
            "['aws', 'azure'], true)", [_ns(window[0]), _ns(window[1])]).fetchall()
    assert isinstance(rows, list)
    return manifest.version


def _ns(t: datetime) -> int:
    from pipeline.timeutil import to_ns

    return to_ns(t)


def sweep(path: Path) -> None:
    """What the next writer does first (an empty write: nothing is committed)."""
    with Store(path).writer(timeout=10):
        pass


def unreferenced(path: Path) -> list[str]:
    """Every file in the store that no reader can reach and nothing needs: data files the
    manifest does not name (as data or as retired, kept for readers that listed them), anything
    left in staging, stray files at the root."""
    store = Store(path)
    manifest = store.manifest()
    extra = []
    for name in [*DATASETS, UID_INDEX]:
        named = set(manifest.datasets.get(name, []))
        named |= {r.split("/", 1)[1] for r in manifest.retired if r.startswith(f"{name}/")}
        base = path / name
        for p in sorted(base.rglob("*")) if base.exists() else []:
            rel = p.relative_to(base).as_posix()
            if p.is_file() and rel not in named:
                extra.append(f"{name}/{rel}")
    for name, ds in DATASETS.items():
        schema = path / SCHEMA_DIR / name
        for p in sorted(schema.rglob("*")) if schema.exists() else []:
            if p.is_file() and p.relative_to(schema).as_posix() != ds.placeholder_path():
                extra.append(f"{SCHEMA_DIR}/{name}/{p.relative_to(schema).as_posix()}")
    extra += [f"{STAGING}/{p.name}" for p in sorted((path / STAGING).iterdir())] \
        if (path / STAGING).exists() else []
    allowed = {MANIFEST, LOCK, STAGING, SCHEMA_DIR, UID_INDEX, *DATASETS}
    extra += [p.name for p in sorted(path.iterdir()) if p.name not in allowed] \
        if path.exists() else []
    return extra


def fingerprint(path: Path) -> dict[str, tuple]:
    """Row contents of the event datasets (all but ingest_id/source) and the quarantine (what was
    rejected, where, why): counts and an order-free hash of the rows."""
    from pipeline.query.views import connect

    with connect(Store(path)) as con:
        out = {
            name: tuple(con.execute(
                f"SELECT count(*), sum(hash(t)) FROM (SELECT * EXCLUDE (ingest_id, source) "
                f"FROM {name}) t").fetchall()[0])
            for name in EVENT_DATASETS
        }
        out["quarantine"] = tuple(con.execute(
            "SELECT count(*), sum(hash(source, line_no, reason, raw)) FROM quarantine"
        ).fetchall()[0])
    return out


def uid_diff(path: Path, reference: Path) -> str:
    """A readable difference of two stores' runs (for a failing comparison)."""
    from pipeline.query.views import connect

    def rows(p: Path) -> set[tuple]:
        with connect(Store(p)) as con:
            return set(con.execute(
                "SELECT * EXCLUDE (ingest_id, source) FROM runs ORDER BY uid").fetchall())

    got, want = rows(path), rows(reference)
    return (f"{len(got - want)} rows only in the trial store (e.g. {sorted(got - want)[:1]}), "
            f"{len(want - got)} only in the reference (e.g. {sorted(want - got)[:1]})")


def fresh_copy(template: Path | None, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    if template is not None:
        shutil.copytree(template, dest, symlinks=True)
    return dest


def read_manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())
