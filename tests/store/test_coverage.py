"""The store's coverage (the ingests' committed watermark): interval algebra, committed with the
data by the ingest that read a window whole, unchanged by a rerun, clipped by retention (the
report gate built on it: tests/dags/test_report_readiness.py)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from pipeline.store import Store
from pipeline.store import coverage as cov
from tests.conftest import make_run, write_lines

H = timedelta(hours=1)
T = datetime(2026, 5, 4, tzinfo=UTC)


def test_merge_missing_reach_newest_clip():
    c = cov.merge([(T + 2 * H, T + 3 * H), (T, T + H), (T + H, T + 2 * H), (T + 5 * H, T + 6 * H),
                   (T + 4 * H, T + 4 * H)])  # touching joined, empty dropped
    assert c == [(T, T + 3 * H), (T + 5 * H, T + 6 * H)]
    assert cov.missing(c, T, T + 3 * H) == []
    assert cov.missing(c, T - H, T + 7 * H) == [(T - H, T), (T + 3 * H, T + 5 * H),
                                                (T + 6 * H, T + 7 * H)]
    assert cov.missing([], T, T + H) == [(T, T + H)]
    assert cov.reach(c, T + H) == T + 3 * H and cov.reach(c, T + 4 * H) is None
    assert cov.newest(c) == T + 6 * H and cov.newest([]) is None
    assert cov.clip(c, T + 2 * H) == [(T + 2 * H, T + 3 * H), (T + 5 * H, T + 6 * H)]
    assert cov.from_json(json.loads(json.dumps(cov.to_json(c)))) == c
    with pytest.raises(ValueError, match="timezone-aware"):
        cov.merge([(datetime(2026, 5, 4), datetime(2026, 5, 5))])


def test_the_ingest_commits_its_window_with_its_events_and_a_rerun_changes_nothing(tmp_path):
    from pipeline.ingest.events import ingest_events

    store = Store(tmp_path / "lake")
    log = tmp_path / "auth" / "s1" / "2026-05-04.00:00:00.log"
    write_lines(log, [make_run("i-0000000000000000a", at=T + 30 * timedelta(minutes=1))])
    ingest_events(store, [str(log)], window=(T, T + H), record_coverage=True)
    manifest = (tmp_path / "lake" / "_manifest.json").read_text()
    assert store.coverage() == [(T, T + H)]
    assert json.loads(manifest)["coverage"] == [["2026-05-04T00:00:00Z", "2026-05-04T01:00:00Z"]]

    ingest_events(store, [str(log)], window=(T, T + H), record_coverage=True)  # a rerun
    assert (tmp_path / "lake" / "_manifest.json").read_text() == manifest

    # an hour without a single event is still held whole once read: it is recorded too
    version = store.manifest().version
    ingest_events(store, [str(log)], window=(T + H, T + 2 * H), record_coverage=True)
    assert store.coverage() == [(T, T + 2 * H)] and store.manifest().version == version + 1

    # an ingest that does not claim its window (a CLI ingest of some files) records nothing
    ingest_events(store, [str(log)], window=(T + 5 * H, T + 6 * H))
    assert store.coverage() == [(T, T + 2 * H)]
    with pytest.raises(ValueError, match="record_coverage needs the window"):
        ingest_events(store, [str(log)], record_coverage=True)


def test_a_store_without_coverage_reads_as_before(tmp_path):
    from pipeline.ingest.events import ingest_events

    store = Store(tmp_path / "lake")
    log = tmp_path / "a.log"
    write_lines(log, [make_run("i-0000000000000000b", at=T)])
    ingest_events(store, [str(log)])
    assert "coverage" not in json.loads((tmp_path / "lake" / "_manifest.json").read_text())
    assert store.coverage() == []
    store.cover(T, T + H)  # a commit of coverage alone (the spool drain's)
    assert store.coverage() == [(T, T + H)]


def test_retention_clips_the_coverage_it_drops(tmp_path):
    from pipeline.ingest.events import ingest_events
    from pipeline.store.maintenance import apply_retention

    store = Store(tmp_path / "lake")
    log = tmp_path / "a.log"
    days = [T - timedelta(days=d) for d in (0, 5)]
    write_lines(log, [make_run(f"i-{n:017x}", at=d + H) for n, d in enumerate(days)])
    ingest_events(store, [str(log)], window=(T - timedelta(days=6), T + timedelta(days=1)),
                  record_coverage=True)
    apply_retention(store, 3, date(2026, 5, 4))
    assert store.coverage() == [(datetime(2026, 5, 1, tzinfo=UTC), T + timedelta(days=1))]


def test_spool_coverage_stops_at_the_oldest_file_still_open(tmp_path):
    from pipeline.sources.spool import receiving_since

    spool = tmp_path / "spool"
    spool.mkdir()
    assert receiving_since(spool) is None
    (spool / "events-20260504T101500Z-2.jsonl.part").write_text("")
    (spool / "events-20260504T100000Z-1.jsonl").write_text("")  # closed: drained
    (spool / "events-20260504T103000Z-3.jsonl.part").write_text("")
    assert receiving_since(spool) == datetime(2026, 5, 4, 10, 15, tzinfo=UTC)
