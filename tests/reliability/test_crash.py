"""SIGKILL a real ingest at random points: the store stays readable and whole, the next writer's
sweep leaves nothing behind, and re-running the ingest gives exactly what a clean ingest gives.

Default run: 20 seeded trials. `make test-slow` (marker `slow`) runs
$DISCOVERY_HISTORY_CRASH_TRIALS of them (default 200), seed $DISCOVERY_HISTORY_CRASH_SEED.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.store import Store
from pipeline.store.verify import verify
from tests.reliability import crash
from tests.reliability.conftest import tally

DEFAULT_TRIALS = 20
SLOW_TRIALS = int(os.environ.get("DISCOVERY_HISTORY_CRASH_TRIALS", "200"))


def one_trial(fleet: crash.Fleet, rng: random.Random, work: Path, n: int) -> crash.Trial:
    start = "seeded" if n % 3 == 2 else "empty"
    store = crash.fresh_copy(fleet.seed if start == "seeded" else None, work / "lake")
    trial = crash.run_and_kill(store, [str(fleet.auth)], rng, fleet.timings, start)
    where = f"trial {n} ({trial})"

    # 1. readers: the manifest parses, names only whole files, every view and macro queries
    crash.check_readers(store, fleet.window)
    # 2. the next writer sweeps what the dead one left: nothing unreferenced remains
    if store.exists():
        crash.sweep(store)
        assert crash.unreferenced(store) == [], where
    # 3. the same ingest again completes and the store equals a clean single ingest
    summary = ingest_events(Store(store), [str(fleet.auth)])
    assert summary.balanced, (where, summary)
    assert crash.unreferenced(store) == [], where
    got, want = crash.fingerprint(store), fleet.expected
    if got != want:
        pytest.fail(f"{where}: store differs from a clean ingest: {got} != {want}; "
                    f"{crash.uid_diff(store, fleet.reference)}")
    assert verify(Store(store)) == [], where
    tally("crash trials (SIGKILL during ingest)", f"{trial.start} store, {trial.phase}")
    return trial


def run_trials(fleet: crash.Fleet, tmp_path: Path, count: int, seed: int) -> list[crash.Trial]:
    rng = random.Random(seed)
    trials = [one_trial(fleet, rng, tmp_path, n) for n in range(count)]
    phases: dict[str, int] = {}
    for t in trials:
        phases[t.phase] = phases.get(t.phase, 0) + 1
    print(f"\n{count} crash trials (seed {seed}): "
          + ", ".join(f"{v} {k}" for k, v in sorted(phases.items())))
    return trials


def test_sigkill_during_ingest_loses_and_doubles_nothing(fleet: crash.Fleet, tmp_path: Path):
    trials = run_trials(fleet, tmp_path, DEFAULT_TRIALS, seed=20260504)
    killed = [t for t in trials if t.killed]
    # the kill points reach the interesting phases, not only process start-up
    assert len(killed) >= DEFAULT_TRIALS // 2
    assert any("placing" in t.phase or "after its commit" in t.phase for t in killed), trials


@pytest.mark.slow
def test_sigkill_during_ingest_soak(fleet: crash.Fleet, tmp_path: Path):
    trials = run_trials(fleet, tmp_path, SLOW_TRIALS, seed=int(os.environ.get("DISCOVERY_HISTORY_CRASH_SEED", "1")))
    assert sum(t.killed for t in trials) >= SLOW_TRIALS // 2


# --------------------------------------------------------------------------- compaction

COMPACT = ["-m", "pipeline.cli"]  # `discovery-history`, as a process


@pytest.fixture(scope="module")
def fragmented(tmp_path_factory) -> Path:
    """A store of many small ingests: every partition holds several files to compact."""
    from datetime import timedelta

    from tests.conftest import T0, make_run, write_lines

    root = tmp_path_factory.mktemp("fragmented")
    for k in range(4):
        batch = [make_run(f"i-{k}-{n}", at=T0 + timedelta(days=n % 12, minutes=k), uid=f"c{k}-{n}")
                 for n in range(36)]
        ingest_events(Store(root / "lake"), [str(write_lines(root / f"b{k}.log", batch))])
    return root / "lake"


def compact_and_kill(store: Path, after_commit: bool, rng: random.Random) -> str:
    """Start `discovery-history compact` and SIGKILL it right after its manifest commit (before
    it deletes the files it replaced), or at a random time."""
    import signal
    import subprocess
    import sys
    import time

    before = crash.manifest_token(store)
    proc = subprocess.Popen([sys.executable, *COMPACT, "--store", str(store), "compact"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=crash.env())
    if after_commit:
        crash._wait_for(proc, lambda: crash.manifest_token(store) != before)
    else:
        time.sleep(rng.uniform(0.5, 1.0))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    if proc.returncode != -signal.SIGKILL:
        return "finished before the kill"
    return crash.classify(store, before)


@pytest.mark.parametrize("after_commit", [True, True, False, False],
                         ids=["after-commit-1", "after-commit-2", "timed-1", "timed-2"])
def test_sigkill_during_compaction_leaves_nothing_behind(fragmented: Path, tmp_path: Path,
                                                          after_commit: bool, request) -> None:
    rng = random.Random(request.node.name)
    store = crash.fresh_copy(fragmented, tmp_path / "lake")
    rows = crash.fingerprint(store)
    phase = compact_and_kill(store, after_commit, rng)
    assert crash.fingerprint(store) == rows  # readers: the old files or the new, all rows
    crash.sweep(store)
    assert crash.unreferenced(store) == [], phase  # the replaced files too, when it died after
    compacted = len(Store(store).manifest().datasets["runs"])
    from pipeline.store.maintenance import compact

    compact(Store(store))  # and compaction can be run again
    assert crash.fingerprint(store) == rows and verify(Store(store)) == []
    assert len(Store(store).manifest().datasets["runs"]) <= compacted
    tally("crash trials (SIGKILL during compaction)", phase)


def test_a_manifest_half_written_by_a_dead_writer_is_invisible_and_swept(fleet: crash.Fleet,
                                                                         tmp_path: Path) -> None:
    """What a writer killed inside its manifest write leaves (the temporary file it renames
    into place; the kill window is too narrow to hit by timing): readers never see it, and the
    next writer removes it."""
    store = crash.fresh_copy(fleet.reference, tmp_path / "lake")
    half = store / "._manifest.json.tmp-4242"
    half.write_text((store / "_manifest.json").read_text()[:40])
    assert crash.fingerprint(store) == fleet.expected
    crash.sweep(store)
    assert not half.exists() and crash.unreferenced(store) == []
