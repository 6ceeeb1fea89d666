"""The bulk validator (DuckDB, generated from the models) and the pydantic models agree."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import models
from pipeline.ingest.stage import decode_lines, run_stage, stage_sql
from pipeline.sources import LINE_SCHEMA


def stage(lines: list[bytes], columns: str = "kind, reason") -> list[tuple]:
    """Stage lines exactly as the ingest does (`run_stage`: fast form, safe form for the rest)."""
    table = pa.Table.from_pylist(
        [{"source": "t", "line_no": i + 1, "line": b, "error": None} for i, b in enumerate(lines)],
        schema=LINE_SCHEMA,
    )
    con = duckdb.connect()
    rows: list[tuple] = []
    run_stage(con, table, lambda q: rows.extend(
        con.execute(f"SELECT {columns} FROM ({q}) ORDER BY line_no").fetchall()))
    return rows


def test_fast_and_safe_forms_agree_on_valid_input():
    lines = [json.dumps(GOOD).encode(), json.dumps({**GOOD, "event": "azure.run", "vm_id": "v"}).encode()]
    table = pa.Table.from_pylist(
        [{"source": "t", "line_no": i, "line": b, "error": None} for i, b in enumerate(lines)],
        schema=LINE_SCHEMA,
    )
    con = duckdb.connect()
    con.register("batch_lines", decode_lines(table))
    fast = con.execute(f"SELECT * FROM ({stage_sql()}) ORDER BY line_no").fetchall()
    safe = con.execute(f"SELECT * FROM ({stage_sql(safe=True)}) ORDER BY line_no").fetchall()
    assert fast == safe and len(fast) == 2


GOOD = {"event": "ssm.run", "uid": "u", "code": "TDS00W", "time": "2026-05-04T10:00:00Z",
        "instance_id": "i-1", "exit_code": 1}


@pytest.mark.parametrize(
    "line,kind",
    [
        (json.dumps(GOOD), "run"),
        (json.dumps({**GOOD, "event": "azure.run", "vm_id": "v"}), "run"),
        (json.dumps({**GOOD, "event": "instance.join"}), "join"),
        (json.dumps({"event": "user.login", "time": "garbage"}), "skip"),
        ("", "blank"),
        ("   ", "blank"),
        ("{bad", "quarantine"),
        ("[1, 2]", "quarantine"),
        ('"text"', "quarantine"),
        (json.dumps({**GOOD, "time": "2026-05-04 10:00:00"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2026-02-30T10:00:00Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2026-05-04T24:00:00Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "1500-05-04T10:00:00Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "9999-05-04T10:00:00Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "1969-12-31T23:59:59.999999999Z"}), "run"),
        (json.dumps({**GOOD, "time": "2026-05-04T10:00:00.5+05:30"}), "run"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "instance_id"}), "quarantine"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "code"}), "run"),  # code: omitempty
        (json.dumps({**GOOD, "code": ""}), "run"),  # no code: not a failure
        (json.dumps({**GOOD, "instance_id": ""}), "run"),  # empty key: stored, report drops it
        (json.dumps({**GOOD, "exit_code": "1"}), "run"),  # a string holding an integer
        (json.dumps({**GOOD, "exit_code": "1.0"}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": " 1"}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": True}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": "abc"}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": 1.5}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": 2**64}), "quarantine"),
        (json.dumps({**GOOD, "exit_code": None}), "run"),
        (json.dumps({**GOOD, "stdout": 5}), "run"),  # text fields keep any value as text
        (json.dumps({**GOOD, "instance_id": 12345}), "run"),
        (json.dumps({**GOOD, "instance_id": None}), "run"),  # null reads as empty
        (json.dumps({**GOOD, "stdout": None}), "run"),
        (json.dumps({k: v for k, v in GOOD.items() if k not in ("uid", "exit_code")}), "run"),
        (json.dumps({**GOOD, "event": "instance.join", "attributes": [1]}), "quarantine"),
        (json.dumps({**GOOD, "new_field_from_teleport_19": {"x": 1}}), "run"),
        (json.dumps({**GOOD, "stdout": "nul \u0000 inside"}), "run"),
        (json.dumps({**GOOD, "event": 5}), "skip"),  # not one of ours
        (json.dumps({**GOOD, "event": None}), "quarantine"),
        (json.dumps({**GOOD, "time": "2026-05-04t10:00:00z"}), "run"),
        (json.dumps({**GOOD, "time": "2026-05-04T10:00:60Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2026-05-04T10:00:00.1234567890Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2262-04-11T23:47:16.854775807Z"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2262-04-11T23:47:16.854775806Z"}), "run"),
        (json.dumps({**GOOD, "time": "2262-04-12T01:47:16.854775806+02:00"}), "run"),
        # Fluentd: epoch times (inject's time_type float / unixtime / unixtime_millis ...)
        (json.dumps({**GOOD, "time": 1777888800}), "run"),
        (json.dumps({**GOOD, "time": 1777888800.123456}), "run"),
        (json.dumps({**GOOD, "time": 1777888800123}), "run"),
        (json.dumps({**GOOD, "time": "1777888800123456789"}), "run"),
        (json.dumps({**GOOD, "time": 177788880012345678901}), "quarantine"),
        (json.dumps({**GOOD, "time": -1777888800}), "quarantine"),
        (json.dumps({**GOOD, "time": "1.7e9"}), "quarantine"),
        (json.dumps({**GOOD, "time": "2026-05-04 12:00:00 +0200"}), "run"),
        (json.dumps({**GOOD, "time": "2026-05-04T12:00:00+0200"}), "run"),
        (json.dumps({**GOOD, "time": None}), "quarantine"),
        # Fluentd out_file lines: `<time>\t<tag>\t<record>`, the time column used when the
        # record has none
        ("2026-05-04T12:00:00+02:00\tteleport.events\t" + json.dumps(
            {k: v for k, v in GOOD.items() if k != "time"}), "run"),
        ("2026-05-04T12:00:00+02:00\t" + json.dumps(
            {k: v for k, v in GOOD.items() if k != "time"}), "run"),
        ("teleport.events\t" + json.dumps({k: v for k, v in GOOD.items() if k != "time"}),
         "quarantine"),
        ("garbage\tteleport.events\t" + json.dumps(
            {k: v for k, v in GOOD.items() if k != "time"}), "quarantine"),
        ("garbage\tteleport.events\t" + json.dumps(GOOD), "run"),
        ("2026-05-04T12:00:00+02:00\tteleport.events\t[1]", "quarantine"),
        ("2026-05-04T12:00:00+02:00\tteleport.events\t{bad", "quarantine"),
        # instance.join's typed fields
        (json.dumps({**GOOD, "event": "instance.join", "success": True, "roles": ["Node"],
                     "addr.remote": "10.0.0.1:4242", "token_expires": "0001-01-01T00:00:00Z"}),
         "join"),
        (json.dumps({**GOOD, "event": "instance.join", "success": "yes"}), "quarantine"),
        (json.dumps({**GOOD, "event": "instance.join", "roles": "Node"}), "quarantine"),
        (json.dumps({**GOOD, "event": "instance.join", "roles": [1]}), "quarantine"),
        (json.dumps({**GOOD, "event": "instance.join", "success": None, "roles": None}), "join"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None,
)
def test_verdicts(line, kind):
    [(got, reason)] = stage([line.encode()])
    assert got == kind, reason
    assert (models.explain(line) != "") == (kind == "quarantine")


def test_invalid_utf8_and_raw_nul_are_quarantined():
    rows = stage([b'{"event":"ssm.run","x":"\xff"}', b'{"event":"ssm.run","x":"a\x00b"}'])
    assert [k for k, _ in rows] == ["quarantine", "quarantine"]


def test_crlf_line_endings_are_accepted():
    [(kind, _)] = stage([json.dumps(GOOD).encode() + b"\r"])
    assert kind == "run"


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
times = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})? ?([Zz]|[+-]\d\d:?\d\d)\Z"),
    st.from_regex(r"\A\d{1,20}(\.\d{1,10})?\Z"),
    st.integers(min_value=0, max_value=10**20),
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["ssm.run", "azure.run", "instance.join", "other", ""]) | scalars,
        "code": st.sampled_from(["TDS00I", "TDS00W", "TAZ00W", ""]) | scalars,
        "time": times | scalars,
        "uid": st.text(max_size=5) | scalars,
        "ei": scalars,
        "instance_id": st.text(max_size=5) | scalars,
        "vm_id": st.text(max_size=5) | scalars,
        "exit_code": scalars,
        "stdout": scalars,
        "region": scalars,
        "api_error": scalars,
        "attributes": st.dictionaries(st.text(max_size=3), scalars, max_size=2) | scalars,
        "success": scalars,
        "roles": st.lists(st.text(max_size=3) | scalars, max_size=2) | scalars,
        "addr.remote": scalars,
    },
)
# Fluentd out_file prefixes (time and tag, one of them, or neither)
prefixes = st.sampled_from(["", "2026-05-04T12:00:00+02:00\tteleport.events\t", "1777888800\t",
                            "teleport.events\t", "x\ty\t", "\t"]) | st.text(
    alphabet="0123456789-T:+Z. \tab", max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(prefixes, fields), min_size=1, max_size=20))
def test_bulk_validator_agrees_with_the_models(events):
    lines = [(p + json.dumps(e)).encode() for p, e in events]
    for (kind, reason), line in zip(stage(lines), lines, strict=True):
        explained = models.explain(line)
        assert (kind == "quarantine") == (explained != ""), (line, reason, explained)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=20))
def test_arbitrary_bytes_never_raise_and_every_line_gets_one_verdict(lines):
    lines = [b.replace(b"\n", b" ") for b in lines]
    rows = stage(lines)
    assert len(rows) == len(lines)
    assert all(k in ("run", "join", "skip", "blank", "quarantine") for k, _ in rows)
