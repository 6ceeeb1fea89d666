"""Event ingest end to end: real files → real DuckDB staging → real Parquet in the store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import models
from pipeline.ingest.events import IngestSummary, ingest_events
from pipeline.store import Store
from pipeline.store.manifest import LOCK, STAGING
from tests.conftest import T0, make_azure_run, make_run, query, ts, write_lines

DAY = timedelta(days=1)
VM = "0F8A1B2C-3D4E-4F50-8A6B-7C8D9E0F1A2B"

# --------------------------------------------------------------------------- helpers


def make_join(
    host: str,
    at: datetime = T0,
    *,
    code: str = "TJ002I",
    method: str = "iam",
    uid: str | None = None,
) -> dict:
    """An instance.join event as Teleport emits it."""
    return {
        "ei": 0,
        "event": "instance.join",
        "uid": uid or f"join-{host}-{at:%H%M%S}",
        "code": code,
        "time": ts(at),
        "cluster_name": "test.example.com",
        "node_name": f"ip-{host}",
        "host_id": host,
        "role": "Node",
        "method": method,
        "token_name": "aws-discovery",
        "attributes": {"Arn": f"arn:aws:sts::123456789012:assumed-role/r/{host}"},
    }


def other_event(at: datetime = T0, event: str = "user.login") -> dict:
    return {
        "ei": 0,
        "event": event,
        "uid": f"other-{event}",
        "code": "T1000I",
        "time": ts(at),
        "user": "alice",
    }


def write_raw(path: Path, lines: list[dict | str | bytes], *, newline: bytes = b"\n") -> Path:
    """Lines verbatim (dicts as JSON), each followed by `newline`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bytearray()
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out += (line.encode() if isinstance(line, str) else line) + newline
    path.write_bytes(bytes(out))
    return path


def write_athena(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "uid": [e["uid"] for e in events],
                "session_id": [""] * len(events),
                "event_type": [e["event"] for e in events],
                "event_time": pa.array(
                    [models.parse_time_ns(e["time"]) // 1_000_000 for e in events],
                    pa.timestamp("ms"),
                ),
                "user": [""] * len(events),
                "event_data": [json.dumps(e) for e in events],
            }
        ),
        path,
        compression="snappy",
    )
    return path


def ingest(store: Store, *paths: Path, **kw) -> IngestSummary:
    s = ingest_events(store, [str(p) for p in paths], **kw)
    assert s.read == s.stored + s.duplicates + s.skipped + s.quarantined, s
    assert "MISMATCH" not in s.conservation_line()
    return s


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the store (but the lock file) with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


# --------------------------------------------------------------------------- conservation

RUN_A = make_run("i-0a", uid="u-a")
RUN_B = make_azure_run(VM, uid="u-b")
JOIN_C = make_join("i-0a", uid="u-c")
CONFLICT_A = {**RUN_A, "exit_code": 150, "code": "TDS00W"}


@pytest.mark.parametrize(
    ("lines", "want"),  # want = (stored, duplicates, skipped, quarantined)
    [
        pytest.param([RUN_A, RUN_B, JOIN_C], (3, 0, 0, 0), id="valid-only"),
        pytest.param(
            [other_event(), other_event(event="session.start")],
            (0, 0, 2, 0),
            id="other-types-skipped",
        ),
        pytest.param(["", "   ", "\r"], (0, 0, 3, 0), id="blank-lines-skipped"),
        pytest.param([RUN_A, RUN_A, RUN_A], (1, 2, 0, 0), id="duplicates-in-one-file"),
        pytest.param([RUN_A, CONFLICT_A], (1, 0, 0, 1), id="uid-conflict-quarantined"),
        pytest.param(
            [b"\xff\xfe{}", "not json", "[1]", '{"event": "ssm.run"}', '{"code": "x"}'],
            (0, 0, 0, 5),
            id="bad-lines-quarantined",
        ),
        pytest.param(
            [
                RUN_A,
                "",
                other_event(),
                "garbage",
                RUN_A,
                CONFLICT_A,
                JOIN_C,
                b"\xc3\x28",
                RUN_B,
                "   ",
                JOIN_C,
                {**JOIN_C, "code": "TJ002E"},
            ],
            (3, 2, 3, 4),
            id="mixed",  # the TJ002E copy of u-c is a conflict too
        ),
    ],
)
def test_conservation(store: Store, tmp_path: Path, lines, want) -> None:
    s = ingest(store, write_raw(tmp_path / "a.log", lines))
    assert s.read == len(lines)
    assert (s.stored, s.duplicates, s.skipped, s.quarantined) == want
    assert s.conservation_line() == (
        f"read {len(lines)} = stored {want[0]} + duplicates {want[1]}"
        f" + skipped {want[2]} + quarantined {want[3]}"
    )
    stored = (
        query(store, "runs", "SELECT count(*) FROM t")[0][0]
        + query(store, "joins", "SELECT count(*) FROM t")[0][0]
    )
    assert stored == s.stored
    assert query(store, "quarantine", "SELECT count(*) FROM t")[0][0] == s.quarantined
    if s.stored or s.quarantined:
        logged = query(
            store,
            "ingest_log",
            "SELECT ingest_id, kind, read, stored, duplicates, skipped, quarantined FROM t",
        )
        assert logged == [
            (s.ingest_id, "events", s.read, s.stored, s.duplicates, s.skipped, s.quarantined)
        ]


def test_conservation_holds_with_crlf_and_no_trailing_newline(store: Store, tmp_path: Path) -> None:
    f = write_raw(tmp_path / "win.log", [RUN_A, RUN_B, "", JOIN_C], newline=b"\r\n")
    f.write_bytes(f.read_bytes()[:-2])  # the last line has no line end
    s = ingest(store, f)
    assert (s.read, s.stored, s.skipped, s.quarantined) == (4, 3, 1, 0)
    assert query(store, "runs", "SELECT count(*) FROM t WHERE extra IS NOT NULL "
                 "OR instance_id LIKE '%\r' OR platform_version LIKE '%\r'") == [(0,)]


# --------------------------------------------------------------------------- re-ingest


def test_reingest_same_input_changes_nothing(store: Store, tmp_path: Path) -> None:
    f = write_raw(
        tmp_path / "a.log",
        [
            RUN_A,
            RUN_B,
            JOIN_C,
            "garbage",
            RUN_A,
            CONFLICT_A,
            other_event(),
            "",
            make_run("i-0b", uid=""),
        ],
    )
    first = ingest(store, f)
    assert (first.stored, first.duplicates, first.skipped, first.quarantined) == (4, 1, 2, 2)
    version = store.manifest().version
    before = tree(store.root)
    for _ in range(2):
        again = ingest(store, f)
        assert again.stored == 0
        assert again.files_added == 0
        assert again.duplicates == first.stored + first.duplicates
        assert store.manifest().version == version
        assert tree(store.root) == before  # byte-identical, nothing added or rewritten
    assert list((store.root / STAGING).iterdir()) == []


def test_reingest_of_a_grown_file_stores_only_new_lines(store: Store, tmp_path: Path) -> None:
    f = write_raw(tmp_path / "2026-05-04.00:00:00.log", [RUN_A, RUN_B])
    ingest(store, f)
    with f.open("ab") as out:  # Teleport appends to the day's file
        out.write(json.dumps(make_run("i-0c", uid="u-new")).encode() + b"\n")
    s = ingest(store, f)
    assert (s.read, s.stored, s.duplicates) == (3, 1, 2)
    assert store.manifest().version == 2
    assert query(store, "runs", "SELECT uid FROM t ORDER BY uid") == [
        ("u-a",),
        ("u-b",),
        ("u-new",),
    ]


# --------------------------------------------------------------------------- dedup across sources


@pytest.mark.parametrize("order", ["file-first", "athena-first"])
def test_same_uid_in_file_log_and_athena_is_stored_once(
    store: Store, tmp_path: Path, order: str
) -> None:
    log = write_raw(tmp_path / "log" / "auth-a" / "2026-05-04.00:00:00.log", [RUN_A, RUN_B])
    athena = write_athena(
        tmp_path / "athena" / "2026-05-04" / "0196a0b0-7000-8000-0000-00000000000a.parquet",
        [RUN_B, JOIN_C],
    )
    paths = (log.parent.parent, athena.parent.parent)
    s = ingest(store, *(paths if order == "file-first" else paths[::-1]))
    assert (s.read, s.stored, s.duplicates, s.quarantined) == (4, 3, 1, 0)
    assert query(store, "runs", "SELECT uid, count(*) FROM t GROUP BY uid ORDER BY uid") == [
        ("u-a", 1),
        ("u-b", 1),
    ]
    assert query(store, "joins", "SELECT uid FROM t") == [("u-c",)]


def test_same_uid_in_two_auth_server_folders_is_stored_once(store: Store, tmp_path: Path) -> None:
    for server in ("auth-a", "auth-b"):
        write_raw(tmp_path / "log" / server / "2026-05-04.00:00:00.log", [RUN_A, JOIN_C])
    s = ingest(store, tmp_path / "log")
    assert (s.read, s.stored, s.duplicates) == (4, 2, 2)


def test_dedup_across_separate_ingests(store: Store, tmp_path: Path) -> None:
    ingest(store, write_raw(tmp_path / "a.log", [RUN_A]))
    s = ingest(store, write_athena(tmp_path / "x.parquet", [RUN_A, RUN_B]))
    assert (s.stored, s.duplicates) == (1, 1)
    assert query(store, "runs", "SELECT count(*) FROM t") == [(2,)]


# --------------------------------------------------------------------------- uid conflicts


def run_v(version: int, **kw) -> dict:
    """Version `version` of the event with uid `u-x` (differs in exit code)."""
    return make_run("i-0x", "TDS00W", uid="u-x", exit_code=100 + version, **kw)


@pytest.mark.parametrize(
    ("files", "kept", "loser"),  # files: {name: lines}; kept: exit code; loser: (file, line)
    [
        pytest.param(
            {"a.log": ["", run_v(1), RUN_B, run_v(2)]},
            101,
            ("a.log", 4),
            id="same-file-first-line-wins",
        ),
        pytest.param(
            {"b.log": [run_v(2)], "a.log": [RUN_B, run_v(1)]},
            101,
            ("b.log", 1),
            id="first-source-by-name-wins",
        ),
        pytest.param(
            {"a/z.log": [run_v(1)], "b/a.log": [run_v(2)]},
            101,
            ("b/a.log", 1),
            id="source-order-is-path-order",
        ),
    ],
)
def test_uid_conflict_keeps_first_and_quarantines_other(
    store: Store, tmp_path: Path, files: dict, kept: int, loser: tuple[str, int]
) -> None:
    paths = [write_raw(tmp_path / name, lines) for name, lines in files.items()]
    s = ingest(store, *paths)
    assert s.conflicts == 1
    assert query(store, "runs", "SELECT exit_code FROM t WHERE uid = 'u-x'") == [(kept,)]
    [(source, line_no, reason, raw)] = query(
        store, "quarantine", "SELECT source, line_no, reason, raw FROM t"
    )
    assert (source, line_no) == (str(tmp_path / loser[0]), loser[1])
    assert "u-x" in reason and "different content" in reason
    assert json.loads(raw)["exit_code"] != kept


def test_uid_conflict_with_already_stored_event(store: Store, tmp_path: Path) -> None:
    ingest(store, write_raw(tmp_path / "a.log", [run_v(1)]))
    s = ingest(store, write_raw(tmp_path / "b.log", [run_v(2), RUN_B]))
    assert (s.stored, s.quarantined, s.conflicts) == (1, 1, 1)
    assert query(store, "runs", "SELECT exit_code FROM t WHERE uid = 'u-x'") == [(101,)]
    assert query(store, "quarantine", "SELECT source, line_no FROM t") == [
        (str(tmp_path / "b.log"), 1)
    ]


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(run_v(2, at=T0 + DAY), id="other-day"),
        pytest.param({**make_azure_run(VM), "uid": "u-x"}, id="other-cloud"),
    ],
)
def test_uid_conflict_with_stored_event_in_another_partition(
    store: Store, tmp_path: Path, second: dict
) -> None:
    ingest(store, write_raw(tmp_path / "a.log", [run_v(1)]))
    s = ingest(store, write_raw(tmp_path / "b.log", [second]))
    assert query(store, "runs", "SELECT count(*) FROM t WHERE uid = 'u-x'") == [(1,)]
    assert (s.stored, s.quarantined) == (0, 1)


# --------------------------------------------------------------------------- quarantine rows


def bad(event: dict) -> bytes:
    """An invalid event with its own uid (so that, if accepted, it is not a uid conflict)."""
    return json.dumps({**event, "uid": "u-bad"}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b'\xff\xfe{"event": "ssm.run"}', "not UTF-8", id="invalid-utf8"),
        pytest.param(b"\xc3\x28", "not UTF-8", id="invalid-utf8-sequence"),
        pytest.param(b"not json", "invalid JSON", id="not-json"),
        pytest.param(b'{"event": "ssm.run", ', "invalid JSON", id="cut-json"),
        pytest.param(b"[1, 2]", "expected a JSON object", id="array"),
        pytest.param(b'{"code": "TDS00I"}', "missing field event", id="no-event"),
        pytest.param(bad({**JOIN_C, "success": "yes"}), "success", id="join-success-not-bool"),
        pytest.param(
            bad({k: v for k, v in RUN_A.items() if k != "instance_id"}),
            "missing field instance_id",
            id="ssm-run-without-key",
        ),
        pytest.param(
            bad({k: v for k, v in RUN_B.items() if k != "vm_id"}),
            "missing field vm_id",
            id="azure-run-without-key",
        ),
        pytest.param(bad({**RUN_A, "time": "yesterday"}), "time", id="bad-time"),
        pytest.param(bad({**RUN_A, "time": "2026-05-04 10:00:00"}), "time", id="time-not-rfc3339"),
        pytest.param(bad({k: v for k, v in RUN_A.items() if k != "time"}), "missing field time",
                     id="no-time-anywhere"),
        pytest.param(bad({**RUN_A, "exit_code": "one"}), "exit_code", id="word-exit-code"),
        pytest.param(bad({**RUN_A, "exit_code": 1.5}), "exit_code", id="float-exit-code"),
        pytest.param(bad({**RUN_A, "exit_code": 2**64}), "exit_code", id="exit-code-over-int64"),
        pytest.param(bad({**JOIN_C, "attributes": "x"}), "attributes", id="join-attributes-string"),
        pytest.param(b"oops\r", "invalid JSON", id="crlf-kept-in-raw"),
    ],
)
def test_quarantine_row_carries_source_line_reason_and_raw_bytes(
    store: Store, tmp_path: Path, raw: bytes, reason: str
) -> None:
    f = write_raw(tmp_path / "a.log", [RUN_A, "", raw, RUN_B])
    s = ingest(store, f)
    assert (s.stored, s.quarantined) == (2, 1)
    [row] = query(
        store,
        "quarantine",
        "SELECT ingest_id, source, line_no, reason, raw, "
        "quarantined_at IS NOT NULL, ingest_date IS NOT NULL FROM t",
    )
    assert row[:3] == (s.ingest_id, str(f), 3)
    assert reason in row[3]
    assert row[4] == raw  # exact bytes, invalid UTF-8 and \r included
    assert row[5:] == (True, True)


def test_truncated_gzip_partial_line_is_quarantined(store: Store, tmp_path: Path) -> None:
    import gzip

    events = [make_run(f"i-{i:03d}", uid=f"u-{i:03d}", stdout="z" * (i % 40)) for i in range(200)]
    blob = gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    f = tmp_path / "export.jsonl.gz"
    f.write_bytes(blob[: len(blob) // 2])
    s = ingest(store, f)
    assert s.quarantined == 1 and s.stored == s.read - 1 and s.stored > 0
    [(line_no, reason, raw)] = query(store, "quarantine", "SELECT line_no, reason, raw FROM t")
    assert line_no == s.stored + 1 and "gzip" in reason
    assert json.dumps(events[line_no - 1]).encode().startswith(raw)


# --------------------------------------------------------------------------- derived uids


@pytest.mark.parametrize(
    "strip",
    [
        pytest.param(lambda e: {k: v for k, v in e.items() if k != "uid"}, id="uid-absent"),
        pytest.param(lambda e: {**e, "uid": ""}, id="uid-empty"),
        pytest.param(lambda e: {**e, "uid": None}, id="uid-null"),
    ],
)
def test_events_without_uid_get_a_stable_derived_uid(store: Store, tmp_path: Path, strip) -> None:
    events = [
        strip(make_run("i-1")),
        strip(make_run("i-2")),
        strip(make_run("i-1", at=T0 + DAY)),
        strip(make_join("i-1")),
    ]
    f = write_raw(tmp_path / "a.log", events)
    s = ingest(store, f)
    assert s.stored == 4
    uids = query(store, "runs", "SELECT uid FROM t ORDER BY time, instance_id")
    uids += query(store, "joins", "SELECT uid FROM t")
    want = [models.derived_uid(events[i]) for i in (0, 1, 2, 3)]
    assert [u for (u,) in uids] == want
    assert len(set(want)) == 4  # different events, different uids
    assert all(len(u) == 36 and u.count("-") == 4 for u in want)
    again = ingest(store, f)
    assert (again.stored, again.duplicates) == (0, 4)


def test_derived_uid_ignores_key_order_and_spacing(store: Store, tmp_path: Path) -> None:
    ev = {k: v for k, v in make_run("i-1").items() if k != "uid"}
    same = dict(reversed(list(ev.items())))
    ingest(store, write_raw(tmp_path / "a.log", [json.dumps(ev)]))
    s = ingest(
        store,
        write_raw(tmp_path / "b.jsonl", [json.dumps(same, indent=None, separators=(",", ":"))]),
    )
    assert (s.stored, s.duplicates) == (0, 1)


# --------------------------------------------------------------------------- window


@pytest.mark.parametrize(
    ("window", "kept"),
    [
        pytest.param(None, ["e0", "e1", "e2", "e3", "j"], id="no-window"),
        pytest.param((T0, T0 + 2 * DAY), ["e1", "e2", "j"], id="start-inclusive-end-exclusive"),
        pytest.param(
            (T0 + timedelta(microseconds=1), T0 + 3 * DAY), ["e2", "e3"], id="just-after-start"
        ),
        pytest.param(
            (datetime(2026, 5, 4, 17, tzinfo=timezone(timedelta(hours=5))), T0 + 2 * DAY),
            ["e2"],
            id="aware-non-utc-bounds",
        ),
        pytest.param((T0 + 10 * DAY, T0 + 11 * DAY), [], id="nothing-inside"),
    ],
)
def test_since_until_window_skips_outside_events(
    store: Store, tmp_path: Path, window, kept
) -> None:
    events = [
        make_run("i-1", at=T0 - DAY, uid="e0"),
        make_run("i-1", at=T0, uid="e1"),
        make_azure_run(VM, at=T0 + DAY, uid="e2"),
        make_run("i-1", at=T0 + 2 * DAY, uid="e3"),
        make_join("i-1", at=T0, uid="j"),
        other_event(T0),
    ]
    s = ingest(store, write_raw(tmp_path / "a.log", events), window=window)
    assert s.stored == len(kept)
    assert s.skipped == 1 + (5 - len(kept))  # the other event type, plus everything outside
    got = query(store, "runs", "SELECT uid FROM t") + query(store, "joins", "SELECT uid FROM t")
    assert sorted(u for (u,) in got) == kept


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "utc_ns", "day"),
    [
        pytest.param(
            "2026-05-04T10:00:00.123456789Z", 1777888800_123456789, "2026-05-04", id="nanoseconds"
        ),
        pytest.param(
            "2026-05-04T10:00:00.000000001Z", 1777888800_000000001, "2026-05-04", id="one-ns"
        ),
        pytest.param("2026-05-04T10:00:00Z", 1777888800_000000000, "2026-05-04", id="no-fraction"),
        pytest.param("2026-05-04T10:00:00.5Z", 1777888800_500000000, "2026-05-04", id="one-digit"),
        pytest.param(
            "2026-05-04T12:00:00.000000007+02:00",
            1777888800_000000007,
            "2026-05-04",
            id="plus-offset",
        ),
        pytest.param(
            "2026-05-04T05:30:00.25-04:30", 1777888800_250000000, "2026-05-04", id="minus-offset"
        ),
        pytest.param(
            "2026-05-05T01:00:00+02:00",
            1777935600_000000000,
            "2026-05-04",
            id="offset-moves-to-previous-utc-day",
        ),
        pytest.param(
            "2026-05-03T23:30:00.999999999-01:00",
            1777854600_999999999,
            "2026-05-04",
            id="offset-moves-to-next-utc-day",
        ),
    ],
)
def test_times_keep_nanoseconds_and_are_utc(
    store: Store, tmp_path: Path, text, utc_ns, day
) -> None:
    assert models.parse_time_ns(text) == utc_ns  # the table itself is right
    ev = {**make_run("i-1", uid="t-run"), "time": text}
    join = {**make_join("i-1", uid="t-join"), "time": text}
    ingest(store, write_raw(tmp_path / "a.log", [ev, join]))
    for ds in ("runs", "joins"):
        [(ns, time_text, event_date)] = query(
            store, ds, "SELECT epoch_ns(time), time_text, event_date FROM t"
        )
        assert ns == utc_ns
        assert time_text == text  # the original text is kept
        assert str(event_date) == day
    files = store.manifest().datasets["runs"]
    assert [f.split("/")[1] for f in files] == [f"event_date={day}"]


# --------------------------------------------------------------------------- partitions and kinds


def test_partition_folders_hold_only_their_cloud_and_day(store: Store, tmp_path: Path) -> None:
    events = [
        make_run("i-1", at=T0 - DAY + timedelta(hours=13)),
        make_run("i-2", at=T0),
        make_run("i-1", at=T0 + timedelta(hours=13, minutes=59, seconds=59, microseconds=999999)),
        make_azure_run(VM, at=T0),
        make_azure_run(VM, at=T0 + DAY),
        make_join("i-1", at=T0 - DAY),
        make_join("i-2", at=T0),
    ]
    s = ingest(store, write_raw(tmp_path / "a.log", events))
    assert (s.runs, s.joins) == (5, 2)
    want = {
        "runs/cloud=aws/event_date=2026-05-03": ("ssm.run", "2026-05-03", 1),
        "runs/cloud=aws/event_date=2026-05-04": ("ssm.run", "2026-05-04", 2),
        "runs/cloud=azure/event_date=2026-05-04": ("azure.run", "2026-05-04", 1),
        "runs/cloud=azure/event_date=2026-05-05": ("azure.run", "2026-05-05", 1),
        "joins/event_date=2026-05-03": ("instance.join", "2026-05-03", 1),
        "joins/event_date=2026-05-04": ("instance.join", "2026-05-04", 1),
    }
    folders = sorted(
        p.parent.relative_to(store.root).as_posix()
        for ds in ("runs", "joins")
        for p in (store.root / ds).rglob("*.parquet")
    )
    assert folders == sorted(want)
    con = duckdb.connect()
    for folder, (event, day, n) in want.items():
        rows = con.execute(
            "SELECT DISTINCT event, CAST(time AS DATE)::VARCHAR, count(*) OVER () FROM "
            "read_parquet($1, hive_partitioning = false)",
            [str(store.root / folder / "*.parquet")],
        ).fetchall()
        assert rows == [(event, day, n)], folder
    # every file named in the manifest exists, and every data file is in the manifest
    m = store.manifest()
    for ds in ("runs", "joins"):
        on_disk = sorted(
            p.relative_to(store.root / ds).as_posix() for p in (store.root / ds).rglob("*.parquet")
        )
        assert sorted(m.datasets[ds]) == on_disk


def test_run_rows_carry_derived_and_provenance_columns(store: Store, tmp_path: Path) -> None:
    aws = make_run(
        "i-0a",
        "TDS00W",
        exit_code=150,
        account="111122223333",
        region="eu-west-1",
        stdout=" out \n",
        stderr="err",
        uid="u-aws",
    )
    az = make_azure_run(VM, "TAZ00E", exit_code=0, api_error="boom", uid="u-az")
    f = write_raw(
        tmp_path / "a.log", [aws, az, {**aws, "uid": "u-ok", "code": "TDS00I", "exit_code": 1}]
    )
    s = ingest(store, f)
    rows = query(
        store,
        "runs",
        "SELECT uid, cloud, instance_key, account_id, region, exit_code, "
        "is_failure, stdout, api_error, source, ingest_id, extra FROM t ORDER BY uid",
    )
    assert [r[:9] for r in rows] == [
        ("u-aws", "aws", "i-0a", "111122223333", "eu-west-1", 150, True, " out \n", ""),
        (
            "u-az",
            "azure",
            VM.lower(),
            aws["account_id"] and az["subscription_id"],
            "westeurope",
            0,
            True,
            "",
            "boom",
        ),
        ("u-ok", "aws", "i-0a", "111122223333", "eu-west-1", 1, False, " out \n", ""),
    ]
    assert {r[9] for r in rows} == {str(f)} and {r[10] for r in rows} == {s.ingest_id}
    assert rows[1][11] is None  # no keys beyond the model: typed columns hold the whole event
    cols = [k for k in az if k != "time"]
    [back] = query(store, "runs", f"SELECT {', '.join(cols)}, time_text FROM t WHERE uid = 'u-az'")
    assert dict(zip([*cols, "time"], back, strict=True)) == az


def test_instance_join_goes_to_joins_and_other_types_are_skipped(
    store: Store, tmp_path: Path
) -> None:
    join = make_join("i-0a", code="TJ002E", method="ec2", uid="u-j")
    events = [
        join,
        other_event(event="session.start"),
        other_event(event="ssm.run.extra"),
        {**other_event(event="discovery.config.create"), "uid": "u-d"},
    ]
    s = ingest(store, write_raw(tmp_path / "a.log", events))
    assert (s.stored, s.joins, s.runs, s.skipped) == (1, 1, 0, 3)
    [row] = query(
        store,
        "joins",
        "SELECT uid, event, code, is_failure, node_name, host_id, role, "
        "method, token_name, attributes FROM t",
    )
    assert row[:9] == (
        "u-j",
        "instance.join",
        "TJ002E",
        True,
        "ip-i-0a",
        "i-0a",
        "Node",
        "ec2",
        "aws-discovery",
    )
    assert json.loads(row[9]) == join["attributes"]
    assert "runs" not in store.manifest().datasets


def test_unknown_keys_are_kept_in_extra(store: Store, tmp_path: Path) -> None:
    """Typed columns + `extra` give back every field Teleport wrote (newer versions add keys)."""
    newer = {**make_run("i-new", uid="u-new"), "matcher": {"tags": {"env": ["prod"]}},
             "odd \"key\"": 1}
    join = {"event": "instance.join", "uid": "j-new", "code": "TJ002I",
            "time": "2026-05-04T10:00:00Z", "host_id": "h", "instance_id": "i-new"}
    f = write_lines(tmp_path / "a.log", [make_run("i-old", uid="u-old"), newer, join])
    ingest(store, f)
    got = dict(query(store, "runs", "SELECT uid, extra FROM t"))
    assert got["u-old"] is None
    assert json.loads(got["u-new"]) == {"matcher": {"tags": {"env": ["prod"]}}, "odd \"key\"": 1}
    # a key the join model does not define is extra there, though runs have such a column
    assert [json.loads(e) for (e,) in query(store, "joins", "SELECT extra FROM t")] == [
        {"instance_id": "i-new"}]


def test_extra_counts_keys_whose_typed_field_is_null(store: Store, tmp_path: Path) -> None:
    """A known key holding JSON null (NULL typed field) neither hides an unknown key nor is one."""
    nulls = {"stderr": None, "api_error": None}
    f = write_lines(tmp_path / "a.log", [{**make_run("i-1", uid="u-1"), **nulls},
                                         {**make_run("i-2", uid="u-2"), **nulls, "new": 1}])
    ingest(store, f)
    got = dict(query(store, "runs", "SELECT uid, extra FROM t"))
    assert got["u-1"] is None
    assert json.loads(got["u-2"]) == {"new": 1}
