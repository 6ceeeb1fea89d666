"""Rollups (pipeline/query/rollups.py) change how fast answers come, never the answers: every window's
`latest_runs` and day trends equal the relations computed from runs alone, whether the rollups
are fresh, stale after an ingest, stale after a rules change, or absent."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.gen.generate import generate_fleet
from pipeline.ingest.events import ingest_events
from pipeline.publish.history import records
from pipeline.query import analytics, rollup_build, rollups
from pipeline.store import Store
from pipeline.store.layout import ROLLUP_LATEST, ROLLUP_TRENDS, RUNS
from pipeline.store.maintenance import apply_retention, compact
from pipeline.store.verify import verify
from pipeline.timeutil import to_ns
from tests.conftest import make_azure_run, make_run, ts, write_lines

END = datetime(2026, 5, 31, tzinfo=UTC)
DAYS = 70  # 2026-03-22 .. 2026-05-30: April whole, March and May in part
MIDNIGHTS = [datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC),
             datetime(2026, 5, 1, tzinfo=UTC)]


def _straddlers(midnight: datetime, n: int) -> list[dict]:
    """SSM commands whose steps fall either side of a midnight (one attempt, two days), with
    the first step failing and the newest succeeding or not; and an Azure run at midnight."""
    out = []
    for i in range(n):
        inst, cmd = f"i-0straddle{midnight:%m%d}{i:03d}", f"cmd-{midnight:%m%d}-{i}"
        before, after = midnight - timedelta(seconds=2 + i), midnight + timedelta(seconds=1 + i)
        out.append(make_run(inst, "TDS00W", before, exit_code=1, stderr="step 1 failed",
                            command_id=cmd))
        ok = i % 2 == 0
        out.append(make_run(inst, "TDS00I" if ok else "TDS00W", after, exit_code=0 if ok else 2,
                            stderr="" if ok else "apt-get: lock held", command_id=cmd))
    out.append(make_azure_run(f"/subscriptions/s/vm-{midnight:%m%d}", at=midnight))
    return out


def _long_straddlers(midnight: datetime, n: int) -> list[dict]:
    """SSM commands of three steps spread over up to 20 hours before a midnight and seconds
    after it, with nanosecond times and steps tied on time (event index decides): whichever
    window holds the last step must judge the attempt by steps long before its start."""
    out = []
    for i in range(n):
        inst, cmd = f"i-0long{midnight:%m%d}{i:03d}", f"long-{midnight:%m%d}-{i}"
        first = midnight - timedelta(hours=20 - 6 * i, microseconds=1)
        last = midnight + timedelta(seconds=i)
        steps = [("TDS00W" if i % 2 == 0 else "TDS00I", first, 0),
                 ("TDS00I", last, 1), ("TDS00I" if i % 3 else "TDS00W", last, 2)]
        for j, (code, at, ei) in enumerate(steps):
            out.append(make_run(inst, code, at, exit_code=0 if code.endswith("I") else 100 + j,
                                command_id=cmd, ei=ei, time=ts(at, 999) if j == 0 else ts(at)))
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store of 70 days of a small fleet plus attempts straddling midnights, not rolled up."""
    root = tmp_path_factory.mktemp("rollup")
    generate_fleet(root / "fleet", seed=11, days=DAYS, end=END, aws_instances=40, azure_vms=15,
                   auth_servers=1, noise_ratio=0.0, malformed_lines=0)
    extra = [e for m in MIDNIGHTS for e in _straddlers(m, 6) + _long_straddlers(m, 3)]
    store = Store(root / "lake")
    ingest_events(store, [str(root / "fleet" / "auth"),
                          str(write_lines(root / "extra" / "straddle.log", extra))])
    return root / "lake"


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Store:
    shutil.copytree(template, tmp_path / "lake")
    return Store(tmp_path / "lake")


def _windows(seed: int, n: int) -> list[tuple[int, int]]:
    """Windows whole-day aligned, month aligned, and at random instants, short and long."""
    start, stop = to_ns(END - timedelta(days=DAYS + 2)), to_ns(END + timedelta(days=1))
    fixed = [(start, stop), (to_ns(MIDNIGHTS[0]), to_ns(MIDNIGHTS[2])),
             (to_ns(MIDNIGHTS[0]), to_ns(END)), (to_ns(MIDNIGHTS[1]), to_ns(MIDNIGHTS[1]) + 2 * 86_400 * 10**9),
             (to_ns(MIDNIGHTS[0]) - 3600 * 10**9, to_ns(MIDNIGHTS[2]) + 7 * 3600 * 10**9),
             # windows starting or ending between the steps of the long straddlers
             (to_ns(MIDNIGHTS[1]) - 3 * 3600 * 10**9, to_ns(MIDNIGHTS[1]) + 86_400 * 10**9),
             (to_ns(MIDNIGHTS[1]) - 86_400 * 10**9, to_ns(MIDNIGHTS[1]) + 10**9)]
    rng = random.Random(seed)
    for _ in range(n):
        a, b = sorted(rng.randrange(start, stop) for _ in range(2))
        if rng.random() < 0.5:  # whole days
            a, b = a - a % (86_400 * 10**9), b - b % (86_400 * 10**9) + 86_400 * 10**9
        fixed.append((a, b + 1))
    return fixed


def _live_latest(con, lo: int, hi: int) -> list[tuple]:
    months = con.execute("SELECT getvariable('rollup_latest_months')").fetchall()[0][0]
    rollups.ignore_latest(con)
    try:
        return _latest(con, lo, hi)
    finally:
        con.execute("SET VARIABLE rollup_latest_months = $1::DATE[]", [months])


def _latest(con, lo: int, hi: int) -> list[tuple]:
    return con.execute("SELECT * FROM latest_runs(make_timestamp_ns($1), make_timestamp_ns($2)) "
                       "ORDER BY cloud, instance_key", [lo, hi]).fetchall()


def _live_trends(con, lo: int, hi: int, dim: str):
    return con.sql("SELECT * FROM failure_trends(make_timestamp_ns($1), make_timestamp_ns($2), "
                   "'day', $3)", params=[lo, hi, dim]).to_arrow_table()


def _rolled(con, lo: int, hi: int) -> list:
    return con.execute("SELECT rolled_months(make_timestamp_ns($1), make_timestamp_ns($2))",
                       [lo, hi]).fetchall()[0][0]


def _assert_same_as_live(store: Store, windows, *, rolled: tuple[bool, bool]) -> None:
    """Equal answers for every window; `rolled`: whether latest_runs and trends used rollups."""
    con = analytics.connect(store)
    try:
        used_latest = used_trends = 0
        for lo, hi in windows:
            assert _latest(con, lo, hi) == _live_latest(con, lo, hi), (lo, hi)
            used_latest += bool(_rolled(con, lo, hi))
            used_trends += bool(rollups.plan_trends(con, lo, hi).rolled)
            for dim in rollups.TREND_DIMENSIONS:
                got = analytics.failure_trends(con, lo, hi, bucket="day", by=dim)
                want = _live_trends(con, lo, hi, dim)
                assert got.equals(want), (lo, hi, dim, got.to_pylist()[:5], want.to_pylist()[:5])
        assert (used_latest > 0, used_trends > 0) == rolled, (used_latest, used_trends)
    finally:
        con.close()


def test_the_fixture_has_attempts_across_midnight(store: Store):
    con = analytics.connect(store)
    try:
        n = con.execute("SELECT count(*) FROM (SELECT command_id FROM runs WHERE command_id LIKE "
                        "'cmd-%-%' GROUP BY ALL HAVING count(DISTINCT event_date) = 2)").fetchall()
        day = to_ns(MIDNIGHTS[1]), to_ns(MIDNIGHTS[1]) + 86_400 * 10**9
        long = [(r["steps"], r["is_failure"], r["exit_code"]) for r in records(
            analytics.attempts(con, *day)) if r["instance_key"].startswith("i-0long")]
    finally:
        con.close()
    assert n == [(18,)]
    # the day of the last step holds each long attempt, judged by a step 8 to 20 hours earlier
    assert long == [(3, True, 100), (3, False, 0), (3, True, 100)]


def test_refresh_builds_every_month_and_day_then_nothing(store: Store):
    first = rollup_build.refresh(store)
    days = {RUNS.date_of(r) for r in store.manifest().datasets["runs"]}
    assert first == {"months_built": 3, "month_files_removed": 0, "days_built": len(days),
                     "day_files_removed": 0}
    version = store.manifest().version
    assert rollup_build.refresh(store) == dict.fromkeys(first, 0)
    assert store.manifest().version == version
    assert verify(store) == []


def test_answers_equal_the_relations_over_runs(store: Store):
    rollup_build.refresh(store)
    _assert_same_as_live(store, _windows(seed=1, n=12), rolled=(True, True))


def test_no_rollups_is_the_same_answer(store: Store):
    _assert_same_as_live(store, _windows(seed=2, n=4), rolled=(False, False))


def test_an_ingest_stales_exactly_what_it_touched(store: Store, tmp_path: Path):
    rollup_build.refresh(store)
    late = _straddlers(datetime(2026, 4, 10, tzinfo=UTC), 3)  # new attempts across Apr 9/10
    ingest_events(store, [str(write_lines(tmp_path / "late.log", late))])
    con = analytics.connect(store)
    try:
        april = (to_ns(MIDNIGHTS[0]), to_ns(MIDNIGHTS[2]))
        assert _rolled(con, *april) == []  # April's rollup no longer matches its runs
        plan = rollups.plan_trends(con, *april)
        # the new steps' days and their neighbours; every other day of April from its rollup
        assert plan.live == [(date(2026, 4, 8), date(2026, 4, 11))]
    finally:
        con.close()
    _assert_same_as_live(store, _windows(seed=3, n=6), rolled=(True, True))
    assert rollup_build.refresh(store) == {"months_built": 1, "month_files_removed": 1,
                                     "days_built": 4, "day_files_removed": 4}


def test_new_failure_rules_stale_trends_not_latest(store: Store):
    rollup_build.refresh(store)
    (store.root / analytics.REASONS_FILE).write_text(
        "priority,reason,match_kind,pattern,remedy\n1,First step,output_like,%step 1 failed%,Wait\n")
    con = analytics.connect(store)
    try:
        whole = (to_ns(MIDNIGHTS[0]), to_ns(MIDNIGHTS[2]))
        assert rollups.plan_trends(con, *whole).rolled == {}
        assert _rolled(con, *whole) == [date(2026, 4, 1)]
        reasons = analytics.failure_trends(con, *whole, by="category").column("key").to_pylist()
        assert "First step" in reasons
    finally:
        con.close()
    _assert_same_as_live(store, _windows(seed=4, n=3), rolled=(True, False))
    built = rollup_build.refresh(store)
    assert built["months_built"] == 0 and built["days_built"] == built["day_files_removed"] > 60


def test_compaction_and_retention_keep_answers_right(store: Store, tmp_path: Path):
    ingest_events(store, [str(write_lines(tmp_path / "more.log",
                                          _straddlers(datetime(2026, 4, 15, tzinfo=UTC), 2)))])
    rollup_build.refresh(store)
    assert compact(store)["partitions"] == 3  # Apr 14 aws, Apr 15 aws and azure: new files
    con = analytics.connect(store)
    try:  # April's rollup and those of Apr 13..16 no longer match
        assert _rolled(con, to_ns(MIDNIGHTS[0]), to_ns(MIDNIGHTS[2])) == []
        plan = rollups.plan_trends(con, to_ns(MIDNIGHTS[0]), to_ns(MIDNIGHTS[2]))
        assert plan.live == [(date(2026, 4, 13), date(2026, 4, 16))]
    finally:
        con.close()
    _assert_same_as_live(store, _windows(seed=5, n=3), rolled=(True, True))  # May still
    apply_retention(store, 45, date(2026, 5, 31))  # from Apr 16: April's rollup goes too
    rollup_build.refresh(store)
    days = {RUNS.date_of(r) for r in store.manifest().datasets["runs"]}
    got = store.manifest().datasets
    assert {rollups.rollup_key(ROLLUP_TRENDS, r)[0] for r in got["rollup_trends"]} == days
    assert {rollups.rollup_key(ROLLUP_LATEST, r)[0] for r in got["rollup_latest"]} == {
        date(2026, 4, 1), date(2026, 5, 1)}
    _assert_same_as_live(store, _windows(seed=6, n=3), rolled=(True, True))
    assert verify(store) == []
