"""The analytics definitions the README's table states, each against exact rows: one attempt per
command whatever the window, nanoseconds end to end, one tie rule, time to enroll from joins
and snapshots, duplicate runs by start, retries after the first failure, one exit-code label."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.publish.history import records
from pipeline.query import analytics
from pipeline.report.nodes import nodes_report
from pipeline.store import Store
from pipeline.timeutil import to_ns
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_node,
    make_azure_run,
    make_join,
    make_run,
    ts,
)
from tests.query.test_analytics import build, pick

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
DAY = timedelta(days=1)
NS = 10**9
D1 = datetime(2026, 5, 3, tzinfo=UTC)
D2, D3 = D1 + DAY, D1 + 2 * DAY
FROM, TO = T0 - 2 * H, T0 + 2 * H
VM = "0f8e9d7c-1111-2222-3333-444455556666"
_cmds = itertools.count(1)


def ns(t) -> int:
    return to_ns(t)


def step(instance, ok=True, at=T0, *, cmd=None, nanos=0, **kw) -> dict:
    """An ssm.run event (one step of command `cmd`; its own command when None) at `at` + nanos."""
    code = "TDS00I" if ok else "TDS00W"
    kw.setdefault("exit_code", 0 if ok else 1)
    return make_run(instance, code, at, command_id=cmd or f"cmd-{next(_cmds):06d}",
                    time=ts(at, nanos), **kw)


def trend(con, lo, hi, by="cloud", bucket="day") -> list[tuple]:
    return [tuple(r.values()) for r in records(analytics.failure_trends(con, lo, hi, bucket=bucket,
                                                                        by=by))]


# --- 1. one command, one attempt, one outcome --------------------------------------------------

MIDNIGHT_CMD = [step("i-1", False, D2 - S, cmd="c1", exit_code=101),  # 23:59:59 step 1 fails
                step("i-1", True, D2 + 2 * S, cmd="c1")]               # 00:00:02 step 2 ok


def test_an_attempt_belongs_to_the_day_of_its_last_step_with_all_its_steps(store, tmp_path):
    fields = ("attempt_id", "started", "time", "steps", "is_failure", "exit_code", "reason")
    with build(store, tmp_path, MIDNIGHT_CMD) as con:
        day1 = pick(analytics.attempts(con, D1, D2), *fields)
        day2 = pick(analytics.attempts(con, D2, D3), *fields)
        both = pick(analytics.attempts(con, D1, D3), *fields)
        # a window ending between the steps holds no result of the command: no attempt
        between = pick(analytics.attempts(con, D2 - H, D2 + S), *fields)
        trends = [trend(con, D1, D2), trend(con, D2, D3), trend(con, D1, D3)]
    one = ("c1", ns(D2 - S), ns(D2 + 2 * S), 2, True, 101, "sudo missing")
    assert (day1, day2, both, between) == ([], [one], [one], [])
    row = (ns(D2), "aws", 1, 1, 1.0, 1, 1)
    assert trends == [[], [row], [row]]


def test_no_command_events_are_attempts_each(store, tmp_path):
    # Teleport reports instances SSM cannot reach with command id "no-command": no command ran
    events = [step("i-1", False, T0, cmd="no-command", exit_code=-1),
              step("i-1", False, T0 + 30 * M, cmd="no-command", exit_code=-1)]
    with build(store, tmp_path, events) as con:
        got = pick(analytics.attempts(con, FROM, TO), "steps", "time")
    assert got == [(1, ns(T0)), (1, ns(T0 + 30 * M))]


@st.composite
def fleets(draw) -> list[dict]:
    """SSM commands of one to three steps and Azure runs on three instances, around the
    midnights of D2 and D3, at nanosecond times with ties (same instant, then event index)."""
    events: list[dict] = []
    base = [D2, D3][draw(st.integers(0, 1))]
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        key = draw(st.sampled_from(["i-1", "i-2", VM]))
        at = base + draw(st.integers(min_value=-90, max_value=90)) * S
        nanos = draw(st.sampled_from([0, 1, 999_999_999]))
        if key == VM:
            ok = draw(st.booleans())
            events.append(make_azure_run(VM, "TAZ00I" if ok else "TAZ00W", at, uid=f"az-{i}",
                                         exit_code=0 if ok else 104) | {"time": ts(at, nanos)})
            continue
        for s in range(draw(st.integers(min_value=1, max_value=3))):
            ok = draw(st.booleans())
            gap = draw(st.integers(min_value=0, max_value=70))
            events.append(step(key, ok, at + gap * s * S, cmd=f"c{i}", nanos=nanos, uid=f"u-{i}-{s}",
                               ei=draw(st.integers(0, 2)), exit_code=0 if ok else 101 + s))
    return events


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_trends_by_day_of_adjacent_days_add_up_to_the_union(events):
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lake")
        with build(store, Path(tmp), events) as con:
            for by in ("cloud", "exit_code", "category"):
                assert trend(con, D1, D3, by) == trend(con, D1, D2, by) + trend(con, D2, D3, by)
                hours = trend(con, D2 - 2 * H, D2 + 2 * H, by, "hour")
                assert hours == trend(con, D2 - 2 * H, D2, by, "hour") + \
                    trend(con, D2, D2 + 2 * H, by, "hour")
            n = len(records(analytics.attempts(con, D1, D3)))
            assert n == len(records(analytics.attempts(con, D1, D2))) + \
                len(records(analytics.attempts(con, D2, D3)))


# --- 2. nanoseconds ----------------------------------------------------------------------------


def test_buckets_are_cut_on_nanoseconds(store, tmp_path):
    events = [step("i-1", False, T0 - S, nanos=999_999_999)]  # 09:59:59.999999999
    with build(store, tmp_path, events) as con:
        got = trend(con, T0 - H, T0, bucket="hour")
    assert got == [(ns(T0 - H), "aws", 1, 1, 1.0, 1, 1)]


def test_gaps_are_nanoseconds_and_a_gap_just_under_the_duplicate_window_is_one(store, tmp_path):
    events = [step("i-1", False, T0), step("i-1", False, T0 + M + 59 * S, nanos=999_999_999)]
    with build(store, tmp_path, events) as con:
        gaps = pick(analytics.attempts(con, FROM, TO), "since_previous")
        dups = pick(analytics.instance_history(con, FROM, TO), "duplicate_runs")
    assert gaps == [(None,), (119 * NS + 999_999_999,)]
    assert dups == [(1,)]


# --- 3. one tie rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("newest", ["failure", "success"])
def test_attempts_tied_on_time_follow_event_index_everywhere(store, tmp_path, newest):
    fail_ei, ok_ei = (2, 1) if newest == "failure" else (1, 2)
    events = [step("i-1", False, T0, exit_code=101, ei=fail_ei),
              step("i-1", True, T0, ei=ok_ei)]
    with build(store, tmp_path, events) as con:
        order = pick(analytics.attempts(con, FROM, TO), "is_failure")
        [h] = records(analytics.instance_history(con, FROM, TO))
        [node] = nodes_report(con, FROM, TO)
        changes = pick(analytics.compare_periods(con, (FROM - 4 * H, FROM), (FROM, TO)), "change")
    failing = newest == "failure"
    assert order == ([(False,), (True,)] if failing else [(True,), (False,)])
    assert (h["last_failed"], h["failure_streak"], h["last_reason"], h["last_exit_code"]) == (
        (True, 1, "sudo missing", "101") if failing else (False, 0, None, "0"))
    assert node.run.is_failure == failing
    assert changes == ([("newly failing",)] if failing else [])


# --- 4. time to enroll -------------------------------------------------------------------------

EC2 = "i-0abc123def4567890"
FAILED_150 = dict(exit_code=150, stderr="ERROR: node did not become ready (join cluster) within 5m0s")
ENROLL = {
    "ec2 join: the instance id in the attributes": (
        make_join(f"123456789012-{EC2}", T0 + 3 * M, attributes={"account": "123456789012",
                                                                  "instance_id": EC2}), 3),
    "ec2 join: Teleport's host id <account>-<instance id>": (
        make_join(f"123456789012-{EC2}", T0 + 4 * M), 4),
    "iam join: the ARN ends in the instance id": (
        make_join("8f1c0d8e-0b1e-4a52-9a57-0f1e2d3c4b5a", T0 + 5 * M, method="iam",
                  attributes={"account": "123456789012",
                              "arn": f"arn:aws:sts::123456789012:assumed-role/Discovery/{EC2}"}), 5),
    "a failed join does not enroll": (
        make_join(f"123456789012-{EC2}", T0 + 3 * M, ok=False), None),
    "a join before the first attempt does not count": (
        make_join(f"123456789012-{EC2}", T0 - 3 * M), None),
}


@pytest.mark.parametrize("join,minutes", ENROLL.values(), ids=ENROLL.keys())
def test_time_to_enroll_counts_the_join(store, tmp_path, join, minutes):
    events = [step(EC2, False, T0, **FAILED_150), join]
    with build(store, tmp_path, events) as con:
        [h] = records(analytics.instance_history(con, FROM, TO))
    assert h["time_to_enroll"] == (None if minutes is None else minutes * 60 * NS)
    assert h["first_joined"] == (None if minutes is None else ns(T0 + minutes * M))


def test_azure_join_is_matched_through_the_node_it_registered(store, tmp_path):
    # Azure's join attributes carry subscription and resource group only: the join's host id
    # is the name of the node, whose labels carry the VM id
    node = make_azure_node(VM)
    events = [make_azure_run(VM.upper(), "TAZ00W", T0, exit_code=150),
              make_join(node["metadata"]["name"], T0 + 7 * M, method="azure",
                        attributes={"subscription": "s", "resource_group": "rg-web"})]
    with build(store, tmp_path, events, [(T0 + 40 * M, [node])]) as con:
        [h] = records(analytics.instance_history(con, FROM, TO))
    assert (h["first_joined"], h["first_online"], h["time_to_enroll"]) == (
        ns(T0 + 7 * M), ns(T0 + 40 * M), 7 * 60 * NS)


def test_first_online_ends_enrollment_without_a_successful_attempt(store, tmp_path):
    events = [step(EC2, False, T0, **FAILED_150), step(EC2, False, T0 + 10 * M, **FAILED_150)]
    with build(store, tmp_path, events, [(T0 + 12 * M, [make_aws_node(EC2)])]) as con:
        summary = pick(analytics.summary(con, FROM, TO), "cloud", "enrolled",
                       "enrolled_after_failure", "median_time_to_enroll")
    assert summary == [("aws", 1, 1, 12 * 60 * NS), ("all", 1, 1, 12 * 60 * NS)]


# --- 5. say what is counted --------------------------------------------------------------------

DUPLICATES = {
    "started 1m apart, finished 3m30s apart: a duplicate": (
        [step("i-1", True, T0, cmd="a"), step("i-1", True, T0 + 30 * S, cmd="a"),
         step("i-1", True, T0 + M, cmd="b"), step("i-1", True, T0 + 4 * M, cmd="b")], 1, 60),
    "started 3m30s apart, finished 1m apart: not one": (
        [step("i-1", True, T0, cmd="a"), step("i-1", True, T0 + 3 * M, cmd="a"),
         step("i-1", True, T0 + 3 * M + 30 * S, cmd="b"),
         step("i-1", True, T0 + 4 * M, cmd="b")], 0, 210),
}


@pytest.mark.parametrize("events,dups,gap_s", DUPLICATES.values(), ids=DUPLICATES.keys())
def test_duplicate_runs_compare_start_times(store, tmp_path, events, dups, gap_s):
    with build(store, tmp_path, events) as con:
        gaps = pick(analytics.attempts(con, FROM, TO), "since_previous")
        got = pick(analytics.instance_history(con, FROM, TO), "duplicate_runs")
    assert (gaps, got) == ([(None,), (gap_s * NS,)], [(dups,)])


def test_retries_are_attempts_after_the_first_failure(store, tmp_path):
    events = [step("i-1", True, T0), step("i-1", False, T0 + 10 * M),
              step("i-1", False, T0 + 20 * M), step("i-1", True, T0 + 30 * M),
              step("i-2", True, T0), step("i-2", True, T0 + 10 * M)]
    with build(store, tmp_path, events) as con:
        got = pick(analytics.instance_history(con, FROM, TO), "instance_key", "attempts",
                   "retries")
        summary = pick(analytics.summary(con, FROM, TO), "cloud", "retries", "retried_instances")
    assert got == [("i-1", 4, 2), ("i-2", 2, 0)]
    assert summary == [("aws", 2, 1), ("all", 2, 1)]


# --- 7. one exit-code label --------------------------------------------------------------------


def test_api_errors_are_labelled_api_error_in_every_exit_code_list(store, tmp_path):
    events = [make_azure_run(VM, "TAZ00W", T0, api_error="AuthorizationFailed: no"),
              make_azure_run(VM, "TAZ00W", T0 + M, exit_code=104),
              step("i-1", False, T0, exit_code=-1)]
    with build(store, tmp_path, events) as con:
        history = pick(analytics.instance_history(con, FROM, TO), "instance_key", "exit_codes",
                       "last_exit_code")
        reasons = pick(analytics.top_reasons(con, FROM, TO), "reason", "exit_codes")
        labels = pick(analytics.attempts(con, FROM, TO, instance=VM), "exit_label")
        keys = {r[1] for r in trend(con, FROM, TO, by="exit_code", bucket="hour")}
    assert history == [(VM, ["104", "API error"], "104"), ("i-1", ["-1"], "-1")]
    assert reasons == [("Missing Run Command permission", ["API error"]),
                       ("Proxy unreachable", ["104"]), ("SSM agent lost", ["-1"])]
    assert labels == [("API error",), ("104",)]
    assert keys == {"API error", "104", "-1"}


def test_the_readme_states_the_definitions():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Analytics: what is counted", 1)[1]
    table = section[section.index("| term"):].split("\n\n", 1)[0].splitlines()[2:]
    terms = [line.split("|")[1].strip() for line in table]
    assert terms == ["attempt", "outcome", "tie rule", "retry", "duplicate run", "time to enroll"]
