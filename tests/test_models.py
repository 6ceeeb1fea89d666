"""The event models: failure by code, nanosecond times, derived uids, raw kept, explanations."""

from __future__ import annotations

import json

import pytest

from pipeline import models
from pipeline.models import (
    AzureRun,
    Envelope,
    InstanceJoin,
    SSMRun,
    derived_uid,
    parse_event,
    parse_time_ns,
)
from tests.conftest import make_azure_run, make_run


@pytest.mark.parametrize(
    "code,exit_code,status,failed",
    [("TDS00I", 0, "Success", False), ("TDS00W", 1, "Failed", True),
     ("TDS00W", 0, "Failed", True),  # old events: exit 0 with status Failed
     ("TDS00I", 3, "Failed", False),  # never decided from exit code or status
     ("TAZ00E", 0, "", True), ("TJ002E", 0, "", True), ("X", 0, "", False)],
)
def test_failure_is_decided_by_the_code_suffix(code, exit_code, status, failed):
    ev = make_run("i-1", code, exit_code=exit_code, status=status)
    assert SSMRun.model_validate(ev).is_failure is failed


@pytest.mark.parametrize(
    "text,ns",
    [("1970-01-01T00:00:00Z", 0),
     ("2026-05-04T10:00:00.123456789Z", 1777888800123456789),
     ("2026-05-04T12:00:00.123456789+02:00", 1777888800123456789),
     ("2026-05-04t10:00:00.5z", 1777888800500000000),
     ("1969-12-31T23:59:59.999999999Z", -1)],
)
def test_times_keep_nanoseconds_and_convert_offsets(text, ns):
    assert parse_time_ns(text) == ns


@pytest.mark.parametrize("text", ["2026-05-04 10:00:00Z", "2026-02-30T00:00:00Z",
                                  "2026-05-04T10:00:00", "9999-01-01T00:00:00Z", ""])
def test_bad_times_are_rejected(text):
    with pytest.raises(ValueError):
        parse_time_ns(text)


def test_parse_event_keeps_raw_and_unknown_keys():
    ev = {**make_azure_run("vm-1", "TAZ00W", api_error="denied"), "added_in_v19": {"x": 1}}
    line = json.dumps(ev)
    parsed = parse_event(line + "\r\n")
    assert isinstance(parsed, AzureRun) and parsed.api_error == "denied"
    assert parsed.raw == line and parsed.model_extra == {"added_in_v19": {"x": 1}}
    assert isinstance(parse_event(json.dumps({**ev, "event": "instance.join"})), InstanceJoin)
    assert type(parse_event('{"event":"user.login","code":"T1000I","time":"2026-05-04T10:00:00Z"}')) is Envelope


def test_parse_event_explains_what_is_wrong():
    with pytest.raises(ValueError, match="missing field instance_id"):
        parse_event(json.dumps({k: v for k, v in make_run("i").items() if k != "instance_id"}))


def test_derived_uid_is_stable_and_ignores_key_order():
    ev = make_run("i-1")
    same = dict(reversed(list(ev.items())))
    assert derived_uid(ev) == derived_uid(same)
    assert derived_uid(ev) != derived_uid({**ev, "exit_code": 2})
    assert len(derived_uid(ev)) == 36


@pytest.mark.parametrize(
    "line,reason",
    [(b"\xff\xfe", "not UTF-8"), ("{", "invalid JSON"), ("[1]", "expected a JSON object, got an array"),
     ('{"code":"x"}', "missing field event"), ("   ", ""),
     ('{"event":"session.start"}', ""),  # another type: skipped, not rejected
     (json.dumps({**make_run("i"), "exit_code": 1.5}), "exit_code"),
     (json.dumps({**make_run("i"), "time": "yesterday"}), "time")],
)
def test_explain(line, reason):
    got = models.explain(line)
    assert (got == "") if reason == "" else (reason in got)
