"""The change history answers exactly as full copies did: the same captures stored by the real
ingest (intervals, ends, per-capture expiry) and as full copies read by the frozen schema-2
relations (tests/store/reference/) give the same snapshot_at, online_nodes, user_tasks_at,
nodes report, instance history, period comparison and history report at every instant tried:
before the first capture, at, just before and between captures, after the last, across churn,
re-registration, expiry changes, duplicates, empty captures and month boundaries."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.history_cases import (
    VMS,
    Capture,
    NodeSpec,
    TaskSpec,
    build,
    connections,
    instants,
    relations,
    report,
    reports,
)

START = datetime(2026, 1, 30, 22, 0, tzinfo=UTC)  # month ends come early
GAPS = [timedelta(seconds=1), timedelta(minutes=59), timedelta(hours=1), timedelta(hours=7),
        timedelta(days=2), timedelta(days=17)]


def assert_same(b) -> None:
    ours, old = connections(b)
    try:
        every = instants(b.captures)
        for i, at in enumerate(every):
            got, want = relations(ours, at), relations(old, at)
            if i in (1, len(every) // 2, len(every) - 2):  # at the first capture, between, last
                got, want = got | reports(ours, at), want | reports(old, at)
            for name in want:
                assert got[name] == want[name], f"{name} as of {at:%Y-%m-%dT%H:%M:%S.%fZ}"
        at = b.captures[-1].at + timedelta(hours=1) if b.captures else datetime(2026, 5, 4)
        assert report(ours, at) == report(old, at)
    finally:
        ours.close()
        old.close()


# --------------------------------------------------------------------------- Hypothesis

node_specs = st.builds(
    NodeSpec,
    machine=st.integers(0, 5),
    registration=st.sampled_from([0, 0, 1]),
    variant=st.sampled_from([0, 0, 0, 1]),
    expiry=st.one_of(st.none(), st.just("static"), st.integers(0, 180 * 10**9),
                     st.sampled_from([0, 10**9])),
    twice=st.sampled_from([False, False, False, True]),
)
task_specs = st.builds(
    TaskSpec,
    name=st.sampled_from(["t1", "t2", "t3", "t4"]),
    issue=st.sampled_from(["ec2-ssm-script-failure", "ec2-join-failure"]),
    state=st.sampled_from(["OPEN", "OPEN", "RESOLVED"]),
    machines=st.lists(st.integers(0, 4), max_size=3, unique=True).map(tuple),
    upper=st.booleans(),
)


@st.composite
def histories(draw) -> list[Capture]:
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=0, max_size=4))
    at = START + draw(st.sampled_from([timedelta(0), timedelta(hours=3), timedelta(days=20)]))
    out = []
    for gap in [timedelta(0), *gaps]:
        at = at + gap
        nodes = draw(st.lists(node_specs, max_size=6, unique_by=lambda s: s.name))
        tasks = draw(st.lists(task_specs, max_size=3, unique_by=lambda s: s.name))
        out.append(Capture(at, nodes, tasks))
    return out


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_the_change_history_answers_as_full_copies_did(captures) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(build(Path(tmp), captures))


@pytest.mark.slow
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_the_change_history_answers_as_full_copies_did_soak(captures) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(build(Path(tmp), captures))


# --------------------------------------------------------------------------- named cases

H = timedelta(hours=1)
A, A2, B, VM, VMU, BASTION = (NodeSpec(0), NodeSpec(0, 1), NodeSpec(1), NodeSpec(3),
                              NodeSpec(3, 1, 1), NodeSpec(5))
CASES = {
    "churn: nodes come and go": [
        Capture(START, [A, B]), Capture(START + H, [B]), Capture(START + 2 * H, [B, VM]),
        Capture(START + 3 * H, [A, VM])],
    "re-registration: the same instance under a new node name, both for a while": [
        Capture(START, [A]), Capture(START + H, [A, NodeSpec(0, 1, expiry=10**9)]),
        Capture(START + 2 * H, [A2])],
    "the same node back after an absence": [
        Capture(START, [A]), Capture(START + H, []), Capture(START + 2 * H, [A])],
    "expiry changes: none, static, moving, equal": [
        Capture(START, [NodeSpec(0, expiry=None)]), Capture(START + H, [NodeSpec(0, expiry=5)]),
        Capture(START + 2 * H, [NodeSpec(0, expiry="static")]),
        Capture(START + 3 * H, [NodeSpec(0, expiry="static"), NodeSpec(0, 1, expiry="static")])],
    "a column changes: region, VM id case": [
        Capture(START, [A, VM]), Capture(START + H, [NodeSpec(0, variant=1), VMU])],
    "duplicates in one listing and nodes of no cloud": [
        Capture(START, [NodeSpec(1, twice=True), BASTION]),
        Capture(START + H, [BASTION, NodeSpec(5, variant=1)])],
    "across month ends, with a month without captures": [
        Capture(START, [A, B], [TaskSpec("t1", machines=(0,))]),
        Capture(START + 5 * H, [A], [TaskSpec("t1", machines=(0, 1))]),
        Capture(START + timedelta(days=40), [A, VM], [TaskSpec("t1", "ec2-join-failure",
                                                                machines=(0,))]),
        Capture(START + timedelta(days=40, hours=1), [VM], [])],
    "user tasks: states, several tasks per instance, none, other types, upper-case ids": [
        Capture(START, [], [TaskSpec("t1", machines=(0, 1)), TaskSpec("t2", machines=(1,)),
                            TaskSpec("t3", machines=(3,), upper=True), TaskSpec("t4")]),
        Capture(START + H, [], [TaskSpec("t1", state="RESOLVED", machines=(0,)),
                                TaskSpec("t2", machines=()), TaskSpec("t3", machines=(3,))]),
        Capture(START + 2 * H, [], [TaskSpec("t2", machines=(1,))])],
    "no captures at all": [],
    "one empty capture": [Capture(START)],
}


@pytest.mark.parametrize("captures", CASES.values(), ids=CASES.keys())
def test_named_histories_answer_as_full_copies_did(captures, tmp_path: Path) -> None:
    assert_same(build(tmp_path, captures))


def test_an_azure_join_is_matched_to_its_instance_through_the_node_history(tmp_path) -> None:
    """instance_joins finds the instance of a join that names only its host id through the
    nodes listed in the window, as it did through full copies (time to enroll uses it)."""
    caps = [Capture(START + i * H, [NodeSpec(3), NodeSpec(0)]) for i in range(4)]
    b = build(tmp_path, caps)
    ours, old = connections(b)
    sql = "SELECT * FROM instance_joins(make_timestamp_ns($1), make_timestamp_ns($2)) ORDER BY ALL"
    window = [int((START - H).timestamp()) * 10**9, int((START + 5 * H).timestamp()) * 10**9]
    got = ours.execute(sql, window).fetchall()
    assert got == old.execute(sql, window).fetchall()
    assert [(r[0], r[1]) for r in got] == [("azure", VMS[0])]  # the join at capture 3


def test_the_oracle_reads_its_full_copies(tmp_path: Path) -> None:
    """The frozen relations really answer from the full-copy tables: emptying them changes the
    answer (the differential tests would otherwise compare the new relations with themselves)."""
    b = build(tmp_path, CASES["churn: nodes come and go"])
    ours, old = connections(b)
    at = START + H
    sql = "SELECT count(*) FROM online_nodes(make_timestamp_ns($1))"
    t = int(at.timestamp()) * 10**9
    assert ours.execute(sql, [t]).fetchall() == old.execute(sql, [t]).fetchall() == [(1,)]
    old.execute("DELETE FROM node_snapshots")
    assert old.execute(sql, [t]).fetchall() == [(0,)]
