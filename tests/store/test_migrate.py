"""`discovery-history migrate`: a store of full copies (schema 1-2) converts to the change history
in one logged, crash-safe commit, and answers the same before (read through the on-the-fly
conversion), after, and as the frozen full-copy relations do; migrating is the same as having
ingested the captures one by one."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect
from pipeline.store import Store, StoreError
from pipeline.store.layout import HISTORY, LEGACY, SCHEMA_VERSION
from pipeline.store.migrate import migrate
from pipeline.store.verify import verify
from tests.conftest import make_aws_node, write_json
from tests.store.history_cases import (
    Capture,
    NodeSpec,
    TaskSpec,
    build,
    connections,
    instants,
    relations,
    reports,
)
from tests.store.test_snapshot_history import CASES, START

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCRIPT = Path(sys.executable).with_name("discovery-history")
H = timedelta(hours=1)
HISTORY_CASE = [  # churn, re-registration, a repeated row, month ends, user tasks coming and going
    Capture(START, [NodeSpec(0), NodeSpec(1, twice=True), NodeSpec(5)],
            [TaskSpec("t1", machines=(0, 1)), TaskSpec("t3", machines=(3,), upper=True)]),
    Capture(START + H, [NodeSpec(0), NodeSpec(0, 1, expiry=7), NodeSpec(3)],
            [TaskSpec("t1", state="RESOLVED", machines=(0,))]),
    Capture(START + 5 * H, [NodeSpec(0, 1), NodeSpec(3, variant=1)], []),
    Capture(START + timedelta(days=33), [NodeSpec(0, 1), NodeSpec(1)],
            [TaskSpec("t2", machines=(1,))]),
    Capture(START + timedelta(days=33, hours=1), [], [TaskSpec("t2", machines=(1,))]),
]


def dataset_rows(store: Store) -> dict[str, list]:
    """Every row of the history datasets (ingest ids aside: files are named by the write)."""
    with connect(store) as con:
        return {n: con.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in HISTORY}


def everything(store_or_built) -> list:
    """The relations at every instant and the reports at three, on the store's connection."""
    b = store_or_built
    ours, _ = connections(b)
    try:
        every = instants(b.captures)
        return [relations(ours, at) | (reports(ours, at) if i % 4 == 1 else {})
                for i, at in enumerate(every)]
    finally:
        ours.close()


def assert_as_oracle(b) -> None:
    ours, old = connections(b)
    try:
        for i, at in enumerate(instants(b.captures)):
            got, want = relations(ours, at), relations(old, at)
            if i % 4 == 1:
                got, want = got | reports(ours, at), want | reports(old, at)
            assert got == want, at
    finally:
        ours.close()
        old.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The same history twice: a schema-2 store of full copies, and one ingested as changes."""
    root = tmp_path_factory.mktemp("migrate")
    return (build(root / "old", HISTORY_CASE, legacy_store=True),
            build(root / "new", HISTORY_CASE))


def copy(b, dest: Path):
    from dataclasses import replace

    return replace(b, store=Store(shutil.copytree(b.store.root, dest)))


def test_a_store_of_full_copies_reads_as_the_oracle_before_and_after(built, tmp_path) -> None:
    old = copy(built[0], tmp_path / "old")
    assert set(LEGACY) <= set(old.store.manifest().datasets)
    assert old.store.manifest().schema_version == 2
    assert_as_oracle(old)  # read through the on-the-fly conversion
    before = everything(old)
    s = migrate(old.store)
    assert s["migrated"] and s["datasets"] == sorted(LEGACY)
    assert s["read"] - s["stored"] == 1  # the node listed twice in one capture
    m = old.store.manifest()
    assert m.schema_version == SCHEMA_VERSION and not any(m.datasets.get(n) for n in LEGACY)
    assert_as_oracle(old)
    assert everything(old) == before
    assert verify(old.store) == []


def test_migrating_equals_ingesting_capture_by_capture(built, tmp_path) -> None:
    old = copy(built[0], tmp_path / "old")
    migrate(old.store)
    assert dataset_rows(old.store) == dataset_rows(built[1].store)  # same intervals, same ids
    with connect(old.store) as a, connect(built[1].store) as b:
        log = "SELECT kind, captured_at, rows FROM snapshot_log ORDER BY ALL"
        assert a.execute(log).fetchall() == b.execute(log).fetchall()


@pytest.mark.parametrize("case", ["churn: nodes come and go", "the same node back after an absence",
                                  "across month ends, with a month without captures"])
def test_migrated_named_histories_answer_as_the_oracle(case, tmp_path) -> None:
    old = build(tmp_path, CASES[case], legacy_store=True)
    migrate(old.store)
    assert_as_oracle(old)
    assert verify(old.store) == []


def test_migrate_is_logged_once_and_then_has_nothing_to_do(built, tmp_path) -> None:
    old = copy(built[0], tmp_path / "old")
    p = subprocess.run([str(SCRIPT), "--store", str(old.store.root), "migrate"],
                       capture_output=True, text=True, env=_env(), check=True)
    assert p.stdout.startswith("migrated node_snapshots, user_task_snapshots: ")
    assert "migrate: nodes:" in p.stderr and "full copies retired" in p.stderr
    with connect(old.store) as con:
        [(kind, read, stored, duplicates)] = con.execute(
            "SELECT kind, read, stored, duplicates FROM ingest_log WHERE kind = 'migrate'"
        ).fetchall()
    assert read == stored + duplicates and duplicates == 1
    again = subprocess.run([str(SCRIPT), "--store", str(old.store.root), "migrate"],
                           capture_output=True, text=True, env=_env(), check=True)
    assert again.stdout == "nothing to migrate: snapshots are stored as changes\n"


@pytest.mark.parametrize("fixture", ["store-v1", "store-v2"])
def test_the_fixture_stores_migrate_and_keep_their_answers(fixture, tmp_path) -> None:
    from tests.reliability.test_schema_evolution import COUNTS, NODES, report_rows

    store = Store(shutil.copytree(FIXTURES / fixture, tmp_path / fixture))
    before = report_rows(store)
    assert before == NODES
    assert any(p.startswith("snapshots stored as full copies") for p in verify(store))
    migrate(store)
    assert report_rows(store) == before
    with connect(store) as con:
        assert {n: con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for n in COUNTS} \
            == COUNTS | {"ingest_log": COUNTS["ingest_log"] + 1}  # the migration's own row
    assert not [p for p in verify(store) if "full copies" in p or "snapshot" in p]


def test_a_snapshot_ingest_into_full_copies_says_to_migrate(built, tmp_path) -> None:
    old = copy(built[0], tmp_path / "old")
    version = old.store.manifest().version
    nodes = write_json(tmp_path / "n.json", [make_aws_node("i-0a1")])
    with pytest.raises(StoreError, match="run `discovery-history migrate` once"):
        ingest_snapshot(old.store, "nodes", str(nodes), START + timedelta(days=60))
    assert old.store.manifest().version == version
    again = ingest_snapshot(old.store, "nodes", str(nodes), START)  # stored already: a duplicate
    assert (again.stored, again.duplicates) == (0, 1)
    migrate(old.store)
    assert ingest_snapshot(old.store, "nodes", str(nodes), START + timedelta(days=60)).stored == 1


def test_an_older_capture_than_the_newest_is_refused(built, tmp_path) -> None:
    new = copy(built[1], tmp_path / "new")
    nodes = write_json(tmp_path / "n.json", [make_aws_node("i-0a1")])
    with pytest.raises(StoreError, match="older than the newest stored one .* capture order"):
        ingest_snapshot(new.store, "nodes", str(nodes), START + 2 * H)


# --------------------------------------------------------------------------- crash safety


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DISCOVERY_HISTORY_STORE"}


def _token(store: Path) -> str:
    return (store / "_manifest.json").read_text()


@pytest.mark.parametrize("trial", range(6))
def test_sigkill_during_migrate_leaves_the_store_as_it_was_or_migrated(built, tmp_path,
                                                                       trial) -> None:
    """Killed at a random moment (or right after its commit), a migration leaves either the full
    copies or the change history, answering the same; the next writer sweeps what it placed;
    migrating again gives the clean result."""
    rng = random.Random(trial)
    old = copy(built[0], tmp_path / "old")
    want = everything(old)
    before = _token(old.store.root)
    proc = subprocess.Popen([str(SCRIPT), "--store", str(old.store.root), "migrate"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    if trial % 3 == 2:  # right after the commit
        deadline = time.monotonic() + 120
        while _token(old.store.root) == before and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.001)
    else:
        time.sleep(rng.uniform(0.2, 2.5))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    migrated = _token(old.store.root) != before
    doc = json.loads(_token(old.store.root))
    assert any(doc["datasets"].get(n) for n in LEGACY) != migrated
    assert everything(old) == want  # readers: the old layout or the new, the same answers
    migrate(old.store)  # sweeps what a dead writer placed, converts (or has nothing to do)
    assert everything(old) == want
    assert dataset_rows(old.store) == dataset_rows(built[1].store)
    assert verify(old.store) == []
