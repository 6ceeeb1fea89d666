"""The history relations (sql/1x0_*.sql) through pipeline.query.analytics: given events and snapshots
at fixed UTC instants, expect exact rows."""

from __future__ import annotations

import itertools
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.publish.history import records
from pipeline.query import analytics
from pipeline.store import Store
from pipeline.timeutil import to_ns
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_node,
    make_azure_run,
    make_run,
    write_json,
    write_lines,
)

S = timedelta(seconds=1)
M = timedelta(minutes=1)
MIN_NS = 60 * 10**9
H = timedelta(hours=1)
FROM, TO = T0 - 2 * H, T0 + 2 * H
VM = "0f8e9d7c-1111-2222-3333-444455556666"
_cmds = itertools.count(1)


def ns(t) -> int:
    return to_ns(t)


def run(instance, code="TDS00I", at=T0, *, cmd=None, **kw) -> dict:
    """An ssm.run event with its own SSM command id (one attempt) unless `cmd` is given."""
    return make_run(instance, code, at, command_id=cmd or f"cmd-{next(_cmds):06d}", **kw)


def fail(instance, at=T0, exit_code=1, **kw) -> dict:
    return run(instance, "TDS00W", at, exit_code=exit_code, **kw)


def build(store, tmp, events, snapshots=()):
    """Ingest `events`, then each (at, nodes) node snapshot."""
    if events:
        ingest_events(store, [str(write_lines(tmp / "audit" / "events.log", events))])
    for i, (at, nodes) in enumerate(snapshots):
        ingest_snapshot(store, "nodes", str(write_json(tmp / f"nodes-{i}.json", list(nodes))), at)
    return analytics.connect(store)


def pick(table, *fields) -> list[tuple]:
    return [tuple(r[f] for f in fields) for r in records(table)]


# --- run_attempts ----------------------------------------------------------------------------

ATTEMPTS = {
    "ssm steps fold into one attempt, the newest step is the result": (
        [run("i-1", at=T0, cmd="c1", stdout="step 1"), fail("i-1", T0 + 2 * S, cmd="c1")],
        [("i-1", "c1", ns(T0 + 2 * S), 2, True, 1, None)],
    ),
    "one command on two instances is two attempts": (
        [run("i-1", cmd="c1"), run("i-2", cmd="c1")],
        [("i-1", "c1", ns(T0), 1, False, 0, None), ("i-2", "c1", ns(T0), 1, False, 0, None)],
    ),
    "gaps between attempts of one instance": (
        [run("i-1", at=T0, cmd="a"), fail("i-1", T0 + 10 * M, cmd="b"),
         fail("i-1", T0 + 11 * M, cmd="c")],
        [("i-1", "a", ns(T0), 1, False, 0, None),
         ("i-1", "b", ns(T0 + 10 * M), 1, True, 1, 10 * MIN_NS),
         ("i-1", "c", ns(T0 + 11 * M), 1, True, 1, MIN_NS)],
    ),
    "a failed step fails the attempt; attempts in order of time, event index, uid": (
        [{**run("i-1", cmd="c1"), "ei": 5}, {**fail("i-1", cmd="c1", exit_code=2), "ei": 4},
         fail("i-2", cmd="c2", exit_code=3, uid="00000000-0000-4000-8000-0000000000b2"),
         run("i-2", cmd="c2", uid="00000000-0000-4000-8000-0000000000b1")],
        [("i-2", "c2", ns(T0), 2, True, 3, None), ("i-1", "c1", ns(T0), 2, True, 2, None)],
    ),
    "window is half-open and empty keys are dropped": (
        [run("i-from", at=FROM, cmd="f"), run("i-to", at=TO, cmd="t"), run("", cmd="e")],
        [("i-from", "f", ns(FROM), 1, False, 0, None)],
    ),
}


@pytest.mark.parametrize("events,expected", ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_run_attempts(store, tmp_path, events, expected):
    with build(store, tmp_path, events) as con:
        got = pick(analytics.attempts(con, FROM, TO), "instance_key", "attempt_id", "time",
                   "steps", "is_failure", "exit_code", "since_previous")
    assert got == expected


def test_azure_events_are_attempts_each_and_keys_ignore_case(store, tmp_path):
    events = [make_azure_run(VM.upper(), at=T0), make_azure_run(VM, "TAZ00W", T0 + M, exit_code=3)]
    with build(store, tmp_path, events) as con:
        got = pick(analytics.attempts(con, FROM, TO, instance=VM.upper()), "cloud",
                   "instance_key", "steps", "is_failure", "since_previous")
    assert got == [("azure", VM, 1, False, None), ("azure", VM, 1, True, MIN_NS)]


def test_run_attempts_names_reasons_only_when_asked(store, tmp_path):
    with build(store, tmp_path, [fail("i-1", exit_code=104), run("i-2")]) as con:
        sql = ("SELECT instance_key, reason, remedy IS NOT NULL FROM run_attempts("
               "make_timestamp_ns($1), make_timestamp_ns($2){}) ORDER BY instance_key")
        plain = con.execute(sql.format(""), [ns(FROM), ns(TO)]).fetchall()
        named = con.execute(sql.format(", classify := true"), [ns(FROM), ns(TO)]).fetchall()
    assert plain == [("i-1", None, False), ("i-2", None, False)]
    assert named == [("i-1", "Proxy unreachable", True), ("i-2", None, False)]


# --- failure_reasons / classified_attempts ---------------------------------------------------

TOKEN = "ERROR: node did not become ready (join cluster) within 5m0s\njoin failure: token is expired or not found"
NOT_READY = TOKEN.split("\n")[0]


def az(n: int, **kw) -> dict:
    """A failed azure.run on VM number `n`."""
    return make_azure_run(f"00000000-0000-4000-8000-{n:012d}", "TAZ00W", **kw)


REASONS = {  # id: (event of its own instance, expected reason)
    "token beats exit code 150": (fail("r-1", exit_code=150, stderr=TOKEN), "Join token expired"),
    "exit 150": (fail("r-2", exit_code=150, stderr=NOT_READY), "Agent did not join"),
    "legacy exit 0 did not become ready": (fail("r-3", exit_code=0, stderr=NOT_READY),
                                           "Agent did not join"),
    "exit -1": (fail("r-4", exit_code=-1), "SSM agent lost"),
    "exit 100": (fail("r-5", exit_code=100), "bash missing"),
    "exit 101": (fail("r-6", exit_code=101), "sudo missing"),
    "exit 102": (fail("r-7", exit_code=102), "curl missing"),
    "exit 103": (fail("r-8", exit_code=103), "Not enough disk space"),
    "exit 104": (fail("r-9", exit_code=104), "Proxy unreachable"),
    "dns, any case, stdout": (fail("r-10", exit_code=6, stdout="curl: (6) COULD NOT RESOLVE HOST: p"),
                              "DNS resolution failed"),
    "InvalidInstanceId in stderr": (fail("r-11", exit_code=-1, stderr="InvalidInstanceId: x"),
                                    "Instance not managed by SSM"),
    "dpkg lock": (fail("r-12", exit_code=1, stderr="E: Could not get lock /var/lib/dpkg/lock"),
                  "Package manager locked"),
    "legacy no detail": (fail("r-13", exit_code=0, stderr="failed to run commands: exit status 1"),
                         "Script failed without detail"),
    "azure permission": (az(1, api_error="AuthorizationFailed: no"),
                         "Missing Run Command permission"),
    "azure deallocated": (az(2, api_error="VM is deallocated"), "VM not running"),
    "azure agent": (az(3, api_error="VMAgentStatusCommunicationError"),
                    "Azure VM agent not available"),
    "azure conflict": (az(4, api_error="Run command extension execution is in progress"),
                       "Run Command already in progress"),
    "api error never matches an exit code": (az(5, exit_code=150, api_error="Throttled"),
                                             "Cloud API error"),
    "nothing matches": (fail("r-14", exit_code=42, stderr="odd"), "Unknown"),
    "success has no reason": (run("r-15", exit_code=104), None),
}


@pytest.fixture(scope="module")
def reasons_con(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reasons")
    con = build(Store(tmp / "lake"), tmp, [event for event, _ in REASONS.values()])
    yield con
    con.close()


@pytest.mark.parametrize("event,reason", REASONS.values(), ids=REASONS.keys())
def test_failure_reasons(reasons_con, event, reason):
    key = event.get("instance_id") or event["vm_id"]
    [(got, remedy)] = pick(analytics.attempts(reasons_con, FROM, TO, instance=key), "reason",
                           "remedy")
    assert got == reason
    assert (remedy is None) == (reason is None) and (remedy is None or len(remedy) > 20)


def test_shipped_rules_cover_every_documented_exit_code(reasons_con):
    rules = records(analytics.reasons(reasons_con))
    assert [r["priority"] for r in rules] == sorted(r["priority"] for r in rules)
    codes = {r["pattern"] for r in rules if r["match_kind"] == "exit_code"}
    assert codes == {"100", "101", "102", "103", "104", "150", "-1"}
    assert all(r["remedy"].endswith(".") and r["match_kind"] in analytics.MATCH_KINDS
               for r in rules)
    # a remedy names no cause the data cannot show (which matcher started a run is not stored)
    assert not [r["remedy"] for r in rules if "overlap" in r["remedy"]]


def test_store_failure_reasons_csv_extends_and_overrides(store, tmp_path):
    events = [fail("i-1", exit_code=42, stderr="cloud-init: kernel too old"),
              fail("i-2", exit_code=103)]
    con = build(store, tmp_path, events)
    con.close()
    (store.root / analytics.REASONS_FILE).write_text(
        "priority,reason,match_kind,pattern,remedy\n"
        '5,Kernel too old,output_like,%kernel too old%,"Use a newer AMI, then retry."\n'
        "1,Disk full (ours),exit_code,103,Page the storage team.\n")
    with analytics.connect(store) as con:
        got = pick(analytics.attempts(con, FROM, TO), "instance_key", "reason", "remedy")
    assert got == [("i-1", "Kernel too old", "Use a newer AMI, then retry."),
                   ("i-2", "Disk full (ours)", "Page the storage team.")]


@pytest.mark.parametrize("text,message", [
    ("prio,reason\n", "header must be priority,reason,match_kind,pattern,remedy"),
    ("priority,reason,match_kind,pattern,remedy\nx,R,exit_code,1,r\n", ":2: priority 'x'"),
    ("priority,reason,match_kind,pattern,remedy\n1,R,regex,a,r\n", ":2: match_kind 'regex'"),
    ("priority,reason,match_kind,pattern,remedy\n1,R,exit_code,abc,r\n", "must be an integer"),
    ("priority,reason,match_kind,pattern,remedy\n1,,output_like,%a%,r\n", "must not be empty"),
], ids=["header", "priority", "kind", "exit-code-pattern", "empty-reason"])
def test_bad_failure_reasons_csv_names_the_line(store, tmp_path, text, message):
    build(store, tmp_path, [run("i-1")]).close()
    (store.root / analytics.REASONS_FILE).write_text(text)
    with pytest.raises(analytics.ReasonsFileError, match=message.replace("(", r"\(")):
        analytics.connect(store)


# --- instance_history ------------------------------------------------------------------------

HISTORY_FIELDS = ("cloud", "instance_key", "attempts", "failures", "first_seen", "last_seen",
                  "first_failure", "last_failure", "first_success", "last_success",
                  "last_failed", "last_exit_code", "last_reason", "failure_streak", "exit_codes",
                  "duplicate_runs", "first_online", "time_to_enroll", "is_online")


def test_instance_history(store, tmp_path):
    events = [
        fail("i-1", T0, exit_code=150), fail("i-1", T0 + 10 * M, exit_code=150),
        run("i-1", at=T0 + 20 * M), fail("i-1", T0 + 30 * M, exit_code=-1),
        fail("i-1", T0 + 31 * M, exit_code=-1),  # 1 min later: a duplicate run
        run("i-2", at=T0 + 5 * M),
        make_azure_run(VM.upper(), "TAZ00W", T0 - H, exit_code=104),
        make_azure_run(VM, "TAZ00W", T0 - H + 10 * M, api_error="AuthorizationFailed"),
        fail("i-old", FROM - M),  # before the window
    ]
    snapshots = [(T0 - H, [make_aws_node("i-1")]),  # before i-1's first attempt: not "first online"
                 (T0 + 15 * M, [make_aws_node("i-1")]),
                 (TO, [make_azure_node(VM)])]
    with build(store, tmp_path, events, snapshots) as con:
        got = pick(analytics.instance_history(con, FROM, TO), *HISTORY_FIELDS)
        first_two = pick(analytics.instance_history(con, FROM, TO, limit=2), "instance_key")
    assert first_two == [("i-1",), (VM,)]
    assert got == [
        ("aws", "i-1", 5, 4, ns(T0), ns(T0 + 31 * M), ns(T0), ns(T0 + 31 * M), ns(T0 + 20 * M),
         ns(T0 + 20 * M), True, "-1", "SSM agent lost", 2, ["-1", "150"], 1, ns(T0 + 15 * M),
         15 * MIN_NS, False),
        ("azure", VM, 2, 2, ns(T0 - H), ns(T0 - H + 10 * M), ns(T0 - H), ns(T0 - H + 10 * M),
         None, None, True, "API error", "Missing Run Command permission", 2, ["104", "API error"],
         0, ns(TO), 3 * 3600 * 10**9, True),
        ("aws", "i-2", 1, 0, ns(T0 + 5 * M), ns(T0 + 5 * M), None, None, ns(T0 + 5 * M),
         ns(T0 + 5 * M), False, "0", None, 0, [], 0, None, 0, False),
    ]


def test_instance_history_duplicate_window_is_an_argument(store, tmp_path):
    events = [fail("i-1", T0), fail("i-1", T0 + 3 * M), fail("i-1", T0 + 20 * M)]
    with build(store, tmp_path, events) as con:
        default = pick(analytics.instance_history(con, FROM, TO), "duplicate_runs")
        wide = pick(analytics.instance_history(con, FROM, TO, dup_window=5 * M), "duplicate_runs")
    assert (default, wide) == ([(0,)], [(1,)])


# --- failure_trends --------------------------------------------------------------------------

TREND_EVENTS = [
    fail("i-1", T0, exit_code=150), fail("i-1", T0 + 10 * M, exit_code=150),
    run("i-2", at=T0 + 20 * M, account="222222222222", region="eu-west-1"),
    fail("i-3", T0 + 70 * M, exit_code=-1),
    make_azure_run(VM, "TAZ00W", T0 + 5 * M, api_error="AuthorizationFailed"),
]
H0, H1 = ns(T0), ns(T0 + H)
TRENDS = {
    "cloud/hour": ("hour", "cloud", [(H0, "aws", 3, 2, 0.6667, 1, 2), (H0, "azure", 1, 1, 1.0, 1, 1),
                                     (H1, "aws", 1, 1, 1.0, 1, 1)]),
    "account/day": ("day", "account", [
        (ns(T0 - 10 * H), "123456789012", 3, 3, 1.0, 2, 2),
        (ns(T0 - 10 * H), "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", 1, 1, 1.0, 1, 1),
        (ns(T0 - 10 * H), "222222222222", 1, 0, 0.0, 0, 1)]),
    "region/hour": ("hour", "region", [(H0, "us-east-1", 2, 2, 1.0, 1, 1),
                                       (H0, "westeurope", 1, 1, 1.0, 1, 1),
                                       (H0, "eu-west-1", 1, 0, 0.0, 0, 1),
                                       (H1, "us-east-1", 1, 1, 1.0, 1, 1)]),
    "exit_code/hour": ("hour", "exit_code", [(H0, "150", 2, 2, 1.0, 1, 1),
                                             (H0, "API error", 1, 1, 1.0, 1, 1),
                                             (H0, "0", 1, 0, 0.0, 0, 1),
                                             (H1, "-1", 1, 1, 1.0, 1, 1)]),
    "category/hour: bucket totals as denominators": ("hour", "category", [
        (H0, "Agent did not join", 4, 2, 0.5, 1, 3),
        (H0, "Missing Run Command permission", 4, 1, 0.25, 1, 3),
        (H1, "SSM agent lost", 1, 1, 1.0, 1, 1)]),
}


@pytest.fixture(scope="module")
def trends_con(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trends")
    con = build(Store(tmp / "lake"), tmp, TREND_EVENTS)
    yield con
    con.close()


@pytest.mark.parametrize("bucket,by,expected", TRENDS.values(), ids=TRENDS.keys())
def test_failure_trends(trends_con, bucket, by, expected):
    got = pick(analytics.failure_trends(trends_con, FROM, TO, bucket=bucket, by=by),
               "bucket_start", "key", "attempts", "failures", "failure_rate",
               "failing_instances", "instances")
    assert got == expected


def test_failure_trends_rejects_unknown_arguments(trends_con):
    from pipeline.timeutil import InputError

    with pytest.raises(InputError, match="unknown dimension 'os'"):
        analytics.failure_trends(trends_con, FROM, TO, by="os")
    with pytest.raises(InputError, match="unknown bucket 'week'"):
        analytics.failure_trends(trends_con, FROM, TO, bucket="week")
    with pytest.raises(InputError, match="window end must be after its start"):
        analytics.failure_trends(trends_con, TO, FROM)


# --- period_comparison -----------------------------------------------------------------------


def test_period_comparison(store, tmp_path):
    a, b = T0 - H, T0 + H  # period A = [T0-2h, T0), B = [T0, T0+2h)
    events = [
        run("i-new", at=a), fail("i-new", b, exit_code=104),
        fail("i-still", a, exit_code=150), fail("i-still", b, exit_code=-1),
        fail("i-still", b + M, exit_code=-1),
        fail("i-rec", a), run("i-rec", at=b),
        fail("i-quiet-online", a), fail("i-quiet", a, exit_code=103),
        run("i-ok", at=a), run("i-ok", at=b),
        fail("i-only-b", b, exit_code=102),
        run("i-fixed-in-a", at=a), fail("i-fixed-in-a", a - M),
    ]
    with build(store, tmp_path, events, [(TO, [make_aws_node("i-quiet-online")])]) as con:
        got = pick(analytics.compare_periods(con, (FROM, T0), (T0, TO)), "change",
                   "instance_key", "failures_a", "failures_b", "reason_a", "reason_b")
    assert got == [
        ("newly failing", "i-new", 0, 1, None, "Proxy unreachable"),
        ("newly failing", "i-only-b", 0, 1, None, "curl missing"),
        ("still failing", "i-still", 1, 2, "Agent did not join", "SSM agent lost"),
        ("recovered", "i-quiet-online", 1, 0, "Unknown", None),  # tie: by key
        ("recovered", "i-rec", 1, 0, "Unknown", None),
        ("not retried", "i-quiet", 1, 0, "Not enough disk space", None),
    ]


# --- top_failure_reasons / history_summary ---------------------------------------------------


def test_top_failure_reasons(trends_con):
    got = pick(analytics.top_reasons(trends_con, FROM, TO), "reason", "failures",
               "failing_instances", "share", "exit_codes", "first_failure", "last_failure")
    assert got == [
        ("Agent did not join", 2, 1, 0.5, ["150"], ns(T0), ns(T0 + 10 * M)),
        ("Missing Run Command permission", 1, 1, 0.25, ["API error"], ns(T0 + 5 * M),
         ns(T0 + 5 * M)),
        ("SSM agent lost", 1, 1, 0.25, ["-1"], ns(T0 + 70 * M), ns(T0 + 70 * M)),
    ]


SUMMARY_FIELDS = ("cloud", "attempts", "failures", "failure_rate", "instances",
                  "failing_instances", "failing_now", "online_now", "duplicate_runs",
                  "retried_instances", "enrolled", "enrolled_after_failure",
                  "median_time_to_enroll")


def test_history_summary(store, tmp_path):
    events = TREND_EVENTS + [run("i-1", at=T0 + 30 * M), run("i-3", at=T0 + 71 * M)]
    with build(store, tmp_path, events, [(TO, [make_azure_node(VM)])]) as con:
        got = pick(analytics.summary(con, FROM, TO), *SUMMARY_FIELDS)
    # time to enroll: i-1 30m and i-3 1m (first success), i-2 0 (first try), the VM 115m (the
    # snapshot at TO); medians over the ones that failed first
    assert got == [
        ("aws", 6, 3, 0.5, 3, 2, 0, 0, 1, 2, 3, 2, 15 * MIN_NS + 30 * 10**9),
        ("azure", 1, 1, 1.0, 1, 1, 1, 1, 0, 0, 1, 1, 115 * MIN_NS),
        ("all", 7, 4, 0.5714, 4, 3, 1, 1, 1, 2, 4, 3, 30 * MIN_NS),
    ]


def test_history_summary_of_an_empty_window(trends_con):
    got = pick(analytics.summary(trends_con, TO, TO + H), *SUMMARY_FIELDS)
    assert got == [("all", 0, 0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, None)]


# --- properties ------------------------------------------------------------------------------


@st.composite
def attempt_sets(draw) -> list[dict]:
    """Up to 15 events on three instances (two sharing SSM command ids), some outside the window."""
    events = []
    for i in range(draw(st.integers(min_value=1, max_value=15))):
        at = T0 + draw(st.integers(min_value=-150, max_value=150)) * M
        code = draw(st.sampled_from([0, 150, -1, 103]))
        key = draw(st.sampled_from(["i-1", "i-2", "i-3"]))
        cmd = draw(st.sampled_from(["c1", "c2", f"c-{i}"]))
        events.append(make_run(key, "TDS00W" if code else "TDS00I", at, exit_code=code,
                               command_id=cmd, uid=f"u-{i}"))
    return events


def history_of(batches: list[list[dict]]) -> tuple[list, list]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lake")
        for i, batch in enumerate(batches):
            ingest_events(store, [str(write_lines(Path(tmp) / f"in-{i}.log", batch))])
        with analytics.connect(store) as con:
            return (records(analytics.instance_history(con, FROM, TO)),
                    records(analytics.failure_trends(con, FROM, TO, bucket="hour", by="category")))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attempt_sets(), st.randoms(use_true_random=False))
def test_history_ignores_input_order_and_duplicates(events, rnd):
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # redelivered copies
    rnd.shuffle(shuffled)
    assert history_of([shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2:]]) == \
        history_of([events])
