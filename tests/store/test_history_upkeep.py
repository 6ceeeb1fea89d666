"""Upkeep of the snapshot history: compaction keeps every answer, retention keeps the intervals
that straddle its cutoff (and their first capture), verify checks the history against the
snapshot log, and the files are delta-encoded."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from pipeline.query.views import connect
from pipeline.store import Store
from pipeline.store.maintenance import apply_retention, compact
from pipeline.store.verify import verify
from tests.store.history_cases import (
    Capture,
    NodeSpec,
    TaskSpec,
    build,
    connections,
    instants,
    relations,
)

JAN = datetime(2026, 1, 20, 10, tzinfo=UTC)
LONG, SHORT, LATE = NodeSpec(0), NodeSpec(1), NodeSpec(2)
CAPTURES = [  # LONG from January to March; SHORT only in January; LATE from February
    Capture(JAN, [LONG, SHORT], [TaskSpec("t1", machines=(0,))]),
    Capture(JAN + timedelta(hours=1), [LONG, SHORT], [TaskSpec("t1", machines=(0,))]),
    Capture(JAN + timedelta(days=2), [LONG], [TaskSpec("t1", machines=(0,))]),
    Capture(datetime(2026, 2, 10, 10, tzinfo=UTC), [LONG, LATE], [TaskSpec("t1", machines=(0,))]),
    Capture(datetime(2026, 2, 20, 10, tzinfo=UTC), [LONG, LATE], [TaskSpec("t2", machines=(1,))]),
    Capture(datetime(2026, 3, 5, 10, tzinfo=UTC), [LONG, LATE], [TaskSpec("t2", machines=(1,))]),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build(tmp_path_factory.mktemp("upkeep"), CAPTURES)


@pytest.fixture
def built(template, tmp_path):
    from dataclasses import replace

    return replace(template, store=Store(shutil.copytree(template.store.root, tmp_path / "lake")))


def answers(b, after: datetime | None = None) -> list:
    ours, _ = connections(b)
    try:
        return [relations(ours, at) for at in instants(b.captures) if after is None or at >= after]
    finally:
        ours.close()


def intervals(store: Store, kind: str = "node") -> list[tuple]:
    with connect(store) as con:
        return con.execute(f"SELECT instance_key, first_seen, last_seen FROM {kind}_intervals "
                           "ORDER BY ALL").fetchall()


def test_the_history_is_intervals_not_copies(template) -> None:
    assert intervals(template.store) == [
        ("i-0a1", datetime(2026, 1, 20, 10), None),
        ("i-0b2", datetime(2026, 1, 20, 10), datetime(2026, 1, 20, 11)),
        ("i-0c3", datetime(2026, 2, 10, 10), None)]
    with connect(template.store) as con:
        periods = con.execute("SELECT period, count(*) FROM node_history GROUP BY ALL "
                              "ORDER BY ALL").fetchall()
        expiry = con.execute("SELECT count(*) FROM node_expiry").fetchall()[0][0]
    # a month's first capture carries the intervals still present into that month's files
    assert periods == [(date(2026, 1, 1), 2), (date(2026, 2, 1), 2), (date(2026, 3, 1), 2)]
    assert expiry == 2 + 2 + 1 + 2 + 2 + 2  # one value per node present per capture


def test_compaction_keeps_every_answer(built) -> None:
    before = answers(built)
    assert compact(built.store)["partitions"] > 0
    assert answers(built) == before
    assert verify(built.store) == []


def test_history_files_are_delta_encoded(template) -> None:
    rel = next(r for r in template.store.manifest().datasets["node_expiry"])
    path = template.store.root / "node_expiry" / rel
    encodings = dict(duckdb.sql(f"SELECT path_in_schema, encodings FROM parquet_metadata('{path}')"
                                ).fetchall())
    assert "DELTA_BINARY_PACKED" in encodings["interval_id"]


def test_retention_keeps_the_intervals_that_straddle_the_cutoff(built) -> None:
    kept = datetime(2026, 2, 20, 10, tzinfo=UTC)  # the first capture after the cutoff
    kept_before = answers(built, after=kept)
    s = apply_retention(built.store, days=5, today=date(2026, 2, 20))  # cutoff 2026-02-15
    assert s["cutoff"] == "2026-02-15"
    # January is over before the cutoff: dropped; February holds the cutoff: kept whole
    periods = {r.split("/", 1)[0] for r in built.store.manifest().datasets["node_history"]}
    assert periods == {"period=2026-02-01", "period=2026-03-01"}
    assert intervals(built.store) == [
        ("i-0a1", datetime(2026, 1, 20, 10), None),  # straddles: kept, its first capture too
        ("i-0c3", datetime(2026, 2, 10, 10), None)]
    with connect(built.store) as con:
        log = con.execute("SELECT min(captured_at) FROM snapshot_log").fetchall()[0][0]
        first = con.execute("SELECT min(captured_at) FROM node_snapshots").fetchall()[0][0]
    assert log == first == datetime(2026, 2, 20, 10)
    assert answers(built, after=kept) == kept_before  # as full copies: from the first kept
    assert verify(built.store) == []


# --------------------------------------------------------------------------- verify


def _damage_copy_history_file(store: Store) -> str:
    """The same history file listed twice under another name: every interval twice."""
    m = store.manifest()
    rel = m.datasets["node_history"][0]
    twin = rel.replace("part-", "again-")
    shutil.copy(store.root / "node_history" / rel, store.root / "node_history" / twin)
    _list(store, "node_history", twin)
    return "listed twice in a month"


def _damage_drop_expiry_file(store: Store) -> str:
    m = store.manifest()
    m.datasets["node_expiry"] = m.datasets["node_expiry"][1:]
    store._write_manifest(m)
    return "node_expiry holds"


def _damage_drop_end(store: Store) -> str:
    m = store.manifest()
    for rel in m.datasets["node_history_ends"]:
        (store.root / "node_history_ends" / rel).unlink()
    m.datasets["node_history_ends"] = []
    store._write_manifest(m)
    return "the nodes intervals span"


def _damage_misplaced_expiry(store: Store) -> str:
    """A day's expiry file listed (as well) under another day's folder."""
    rel = store.manifest().datasets["node_expiry"][0]
    moved = "capture_date=2026-01-01/" + rel.split("/", 1)[1].replace("part-", "moved-")
    (store.root / "node_expiry" / moved).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(store.root / "node_expiry" / rel, store.root / "node_expiry" / moved)
    _list(store, "node_expiry", moved)
    return "partition mismatch in node_expiry/capture_date=2026-01-01/moved-"


def _list(store: Store, dataset: str, rel: str) -> None:
    m = store.manifest()
    m.datasets[dataset].append(rel)
    store._write_manifest(m)


@pytest.mark.parametrize("damage", [_damage_copy_history_file, _damage_drop_expiry_file,
                                    _damage_drop_end, _damage_misplaced_expiry],
                         ids=lambda f: f.__name__[8:])
def test_verify_checks_the_history_against_the_log(built, damage) -> None:
    assert verify(built.store) == []
    expected = damage(built.store)
    problems = verify(built.store)
    assert any(expected in p for p in problems), problems


def test_the_legacy_layout_is_a_verify_problem(tmp_path: Path) -> None:
    old = build(tmp_path, CAPTURES[:2], legacy_store=True)
    assert [p for p in verify(old.store) if "full copies" in p] == [
        "snapshots stored as full copies (node_snapshots, user_task_snapshots): run "
        "`discovery-history migrate` to convert them to the change history"]
